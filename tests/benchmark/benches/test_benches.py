"""The benches on small sizes: the front-end bench's before/after mode (a git revision against the working
tree, in real processes), the training bench through the trainer's own pieces, the loader bench on a
synthetic cache in the waveform cache's own schema, and the throughput bench from waveforms."""

import ast
import csv
import inspect
import subprocess

import torch

from benchmark.benches import bench_frontends, bench_loader, bench_throughput, bench_training


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


def test_the_paper_size_bench_feeds_the_trainer_waveforms_of_the_tasks_frame_count(monkeypatch):
    """The model takes waveforms [B, N]: a synthetic waveform whose filterbank output has the task's frames."""
    monkeypatch.setattr(bench_training, "PAPER_SIZES", {"speechcommands": 100})
    (row,) = bench_training.bench_paper_sizes(["spec"], steps=1, device=torch.device("cpu"))
    assert (row["backbone"], row["n_mels"], row["t_in"], row["t_out"]) == ("efficientnet_b2", 128, 100, 100)


def test_the_loader_bench_reads_a_synthetic_cache_in_the_real_caches_schema(tmp_path, monkeypatch):
    import pyarrow as pa

    from tasks import get_task
    from tasks.wavecache import load_waveforms

    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(tmp_path / "cache"))
    real = load_waveforms(get_task("toy-transients"), "val", None, 16000)
    synthetic = tmp_path / "s.arrow"
    bench_loader.write_synthetic_cache(synthetic, get_task("toy-transients"), 5)
    schema = [pa.ipc.open_file(pa.memory_map(str(p), "r")).schema for p in (real.path, synthetic)]
    assert schema[0].equals(schema[1])  # the bench reads what a run reads
    monkeypatch.setattr(bench_loader, "EPOCH_BYTES", 2**20)
    out = tmp_path / "bench_loader.csv"
    bench_loader.main(["--tasks", "speechcommands", "--workers", "0,1", "--repeats", "1", "--out", str(out)])
    rows = list(csv.DictReader(out.open()))
    loader = [r for r in rows if r["kind"] == "loader"]
    assert [r["workers"] for r in loader] == ["0", "1"] and {r["clips"] for r in loader} == {str(8 * 128)}
    features = [r for r in rows if r["kind"] == "features"]
    assert [float(r["hop_ms"]) for r in features] == [10.0, 5.0, 2.0, 1.0]
    assert all(float(r["clips_per_s"]) > 0 and float(r["ms_per_clip"]) > 0 for r in rows)


def test_the_throughput_bench_trains_from_waveforms_at_the_settings_hop():
    row = bench_throughput.bench("speechcommands", None, "diffres", 0.5, 1.0, steps=1, batch_size=2,
                                 device=torch.device("cpu"))
    assert (row["t_in"], row["t_out"], row["hop_ms"], row["amp"]) == (1001, 500, 1.0, False)
    assert row["clips_per_s"] > 0 and row["forward_flops_per_clip"] > 0
    assert {s.split(":")[2] for s in bench_throughput.SETTINGS} == {"10", "1"}


def test_the_cli_bench_times_help_against_import_torch(tmp_path, monkeypatch):
    import pandas as pd

    from benchmark.benches import bench_cli

    monkeypatch.setattr(bench_cli, "CASES", {k: bench_cli.CASES[k] for k in ("import torch", "--help")})
    bench_cli.main(["--repeats", "1", "--out", str(tmp_path / "bench_cli.csv")])
    table = pd.read_csv(tmp_path / "bench_cli.csv").set_index("case")
    assert table.loc["import torch", "ratio_to_import_torch"] == 1.0  # the ratio is measured, not asserted
    assert table.loc["--help", "median_s"] > 0 and table.loc["--help", "repeats"] == 1
