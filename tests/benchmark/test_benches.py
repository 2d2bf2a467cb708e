"""The benches on small sizes: the front-end bench's before/after mode (a git revision against the working
tree, in real processes) and the training bench through the trainer's own pieces."""

import ast
import inspect
import subprocess

import torch

from benchmark.benches import bench_frontends, bench_training


def test_compare_times_a_revision_against_the_working_tree_and_cleans_up():
    root = bench_frontends.RESULTS.parent
    before = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True, text=True).stdout
    table = bench_frontends.compare_table("HEAD", rounds=1, batch=2, t_in=200, n_mels=16, rate=0.5)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True).stdout.strip()
    assert set(table["tree"]) == {head, "working tree"}
    assert len(table) == 2 * 2 * len(bench_frontends.ALLOCATORS)  # trees x score networks x allocators
    assert (table["fwd_bwd_seconds"] > 0).all() and (table["peak_mib"] >= 0).all()
    assert (table["processes"] == 1).all()
    after = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True, text=True).stdout
    assert after == before  # the temporary worktree is gone


def test_the_training_bench_times_the_trainers_own_step():
    rows = bench_training.bench_embedded("toy-transients", ["spec"], batches=1, device=torch.device("cpu"))
    (row,) = rows
    assert (row["frontend"], row["reduction_rate"], row["t_out"], row["clips"]) == ("spec", 0.0, row["t_in"], 32)
    assert row["seconds"] > 0 and row["device"].startswith("cpu")
    tree = ast.parse(inspect.getsource(bench_training))
    imported = [a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names]
    assert not [name for name in imported if name.startswith("_")]  # no private names of the trainer
