"""`benchmark.benches.recheck`: committed runs retrained in a throwaway store and compared to the last digit."""

from __future__ import annotations

import mlflow
import pandas as pd

from benchmark.benches.recheck import main, recheck, sample_runs
from benchmark.study import load_suite
from benchmark.tracking.engine import engine_digest
from benchmark.training.train import run

TINY = """
name: tiny-recheck
base: {task: toy-transients, epochs: 1, max_train_clips: 16, max_eval_clips: 16, batch_size: 8, n_mels: 16}
grids:
  - {frontend: [spec], seed: [0, 1]}
  - {frontend: [avgpool, diffres], reduction_rate: [0.5, 0.75], seed: [0]}
"""


def _committed(tmp_path) -> tuple[str, pd.DataFrame]:
    """A tiny suite trained once, its runs written as a runs.csv would hold them."""
    path = tmp_path / "tiny-recheck.yaml"
    path.write_text(TINY)
    uri = f"sqlite:///{tmp_path / 'committed.db'}"
    rows = []
    for cfg in load_suite(path).configs:
        result = run(cfg, tracking_uri=uri, experiment="tiny", checkpoint_dir=tmp_path / "ckpt", progress=False)
        loss = mlflow.MlflowClient(uri).get_run(result.run_id).data.metrics["final_train_loss"]
        rows.append({"task": cfg.task, "frontend": cfg.frontend, "hop_ms": cfg.hop_ms,
                     "reduction_rate": cfg.reduction_rate, "seed": cfg.seed, "test_metric": result.test_metric,
                     "final_train_loss": loss, "used": True, "config_hash": cfg.config_hash})
    return str(path), pd.DataFrame(rows)


def test_a_rerun_of_the_same_code_is_identical_and_a_changed_number_is_not(tmp_path):
    suite, committed = _committed(tmp_path)
    runs_csv = tmp_path / "runs.csv"
    committed.to_csv(runs_csv, index=False, float_format="%.6g")
    table = recheck(suite, runs_csv=runs_csv)
    assert len(table) == 5 and table["identical"].all()  # one run per setting: spec's lowest seed, 4 reductions
    assert set(table["seed"]) == {0}
    assert set(table["engine_digest"]) == {engine_digest()}  # the digest each rerun ran at, the evidence's key
    changed = committed.loc[0, "config_hash"]
    committed.loc[0, "test_metric"] += 0.005  # a committed number this code does not give
    committed.to_csv(runs_csv, index=False, float_format="%.6g")
    out = tmp_path / "recheck.csv"
    assert committed.loc[0, "frontend"] != "diffres"
    assert main(["--suite", suite, "--runs", str(runs_csv), "--out", str(out), "--exclude", "frontend=diffres"]) == 1
    written = pd.read_csv(out).set_index("config_hash")
    assert "diffres" not in set(written["frontend"]) and len(written) == 3  # spec, avgpool at δ 0.5 and 0.75
    assert not written.loc[changed, "identical"] and written.drop(index=changed)["identical"].all()
    assert written.loc[changed, "committed_test"] != written.loc[changed, "rerun_test"]


def test_the_sample_takes_one_run_per_setting_spread_over_the_settings():
    runs = pd.DataFrame({"task": ["a"] * 6 + ["b"] * 2, "frontend": ["x", "x", "y", "y", "z", "z", "x", "x"],
                         "hop_ms": 10.0, "reduction_rate": 0.5, "seed": [1, 0, 0, 1, 3, 2, 0, 1],
                         "used": True, "config_hash": list("abcdefgh"), "test_metric": 0.5})
    every = sample_runs(runs)
    assert list(zip(every["task"], every["frontend"], every["seed"], strict=True)) == [
        ("a", "x", 0), ("a", "y", 0), ("a", "z", 2), ("b", "x", 0)]
    assert list(sample_runs(runs, 2)["config_hash"]) == ["b", "g"]  # first and last setting
