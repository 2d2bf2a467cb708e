"""The front-end bench's before/after mode: a git revision against the working tree, in real processes."""

import subprocess

from benchmark.benches import bench_frontends


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
