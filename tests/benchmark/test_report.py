"""The report builder on a tiny real study: runs logged by the real MLflow client into sqlite in tmp_path."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmark import report, stats

SUITE = "tiny"
RATES = (0.25, 0.5, 0.75)
BASE = {"spec": 0.80, "diffres": 0.83, "changehop": 0.70, "avgpool": 0.74, "pool3ch": 0.76}
SEED_EFFECT = {0: 0.0, 1: 0.01, 2: -0.01}


def _config_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _accuracy(frontend: str, hop_ms: float, rate: float, seed: int) -> float:
    wiggle = 0.002 * ((seed * 7 + int(rate * 4) * 3 + int(hop_ms)) % 3)
    drop = 0.0 if frontend == "diffres" else 0.08 * rate
    return BASE[frontend] - drop + SEED_EFFECT[seed] + wiggle + (0.01 if hop_ms == 5.0 else 0.0)


def _grid():
    rows = []
    for task, hops, frontends in (("toy-a", (10.0, 5.0), ("changehop", "avgpool", "diffres", "pool3ch")),
                                  ("toy-b", (10.0,), ("avgpool", "diffres"))):
        for hop in hops:
            for seed in (0, 1, 2):
                rows.append((task, "spec", hop, 0.0, seed))
                rows += [(task, fe, hop, rate, seed) for fe in frontends for rate in RATES]
    return rows


class Study:
    def __init__(self, root: Path, suite: str = SUITE, uri: str | None = None):
        self.uri = uri or f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment(suite, artifact_location=(root / suite).as_uri())
        self.root = root
        self.suite = suite

    def log(self, task, frontend, hop_ms, rate, seed, status="FINISHED", accuracy=None, examples=False):
        params = {"task": task, "fold": None, "backbone": "mobilenetv3_small_050", "frontend": frontend,
                  "hop_ms": hop_ms, "reduction_rate": rate, "n_mels": 64, "seed": seed, "lr": 0.001,
                  "epochs": 2, "guide_loss_weight": 1.0}
        t_in = int(300 * 10 / hop_ms)
        t_out = max(1, int(t_in * (1 - rate)))
        run = self.client.create_run(self.exp, run_name=f"{task}/{frontend}/h{hop_ms}/d{rate}/s{seed}")
        rid = run.info.run_id
        acc = _accuracy(frontend, hop_ms, rate, seed) if accuracy is None else accuracy
        ts = int(time.time() * 1000)
        fe_flops = 0.0 if frontend in ("spec", "changehop") else (2e4 if frontend == "diffres" else 1e3) * t_in
        metrics = {"val_metric": acc + 0.01, "test_metric": acc, "flops_frontend": fe_flops,
                   "flops_backbone": 1e5 * t_out, "flops_total": fe_flops + 1e5 * t_out,
                   "params_frontend": 82000.0 if frontend == "diffres" else 0.0, "params_backbone": 5e5,
                   "params_total": 5e5 + (82000.0 if frontend == "diffres" else 0.0), "latency_ms": 3.5,
                   "t_in": float(t_in), "t_out": float(t_out)}
        tags = {"config_hash": _config_hash(params), "suite": self.suite, "metric_name": "accuracy",
                "git_commit": "abc1234", "device": "cpu", "torch_version": "2.14.1", "timm_version": "1.0.0"}
        self.client.log_batch(rid, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()]
                              + [Metric("train_loss", 1.0 / (e + 1), ts, e) for e in range(2)],
                              params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        if examples:
            rng = np.random.default_rng(seed)
            (self.root / rid).mkdir()
            path = self.root / rid / report.EXAMPLES_ARTIFACT
            np.savez(path, mel=rng.normal(size=(3, t_in, 64)), score=rng.uniform(size=(3, t_in)),
                     merged=rng.normal(size=(3, t_out, 64)),
                     resolution_enc=np.sin(np.arange(t_out * 64).reshape(1, t_out, 64) / 9.0).repeat(3, 0))
            self.client.log_artifact(rid, str(path))
        self.client.set_terminated(rid, status)
        return rid


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    s = Study(root)
    for task, fe, hop, rate, seed in _grid():
        examples = fe == "diffres" and hop == 10.0 and rate == 0.5 and seed == 0
        s.log(task, fe, hop, rate, seed, examples=examples)
    # A re-run of an existing config (same config_hash): the later one wins.
    s.log("toy-a", "diffres", 10.0, 0.5, 1, accuracy=0.9)
    # A failed run that would otherwise be the best of its setting.
    s.log("toy-a", "spec", 10.0, 0.0, 0, status="FAILED", accuracy=0.99)
    out = tmp_path_factory.mktemp("out")
    paths = report.build_report(SUITE, s.uri, out / "results", out / "reports")
    return s, out, paths


def test_outputs_exist_with_columns(study):
    _, out, paths = study
    lb = pd.read_csv(paths.leaderboard)
    for column in ["task", "backbone", "frontend", "hop_ms", "reduction_rate", "metric", "mean", "std",
                   "ci95_low", "ci95_high", "n", "flops_frontend", "flops_backbone", "flops_total",
                   "relative_cost", "params_total", "latency_ms", "t_in", "t_out"]:
        assert column in lb.columns
    assert paths.leaderboard == out / "results" / SUITE / "leaderboard.csv"
    assert sorted(p.name for p in paths.task_tables) == ["toy-a.csv", "toy-b.csv"]
    assert pd.read_csv(out / "results" / SUITE / "toy-b.csv")["task"].eq("toy-b").all()
    names = {p.name for p in paths.figures}
    assert names == {"accuracy_vs_flops.png", "accuracy_vs_reduction_rate.png", "accuracy_vs_hop.png",
                     "diffres_examples_toy-a.png", "diffres_examples_toy-b.png"}
    for p in paths.figures:
        assert p.stat().st_size > 10_000
    text = paths.report.read_text()
    for p in paths.figures:
        assert f"]({p.name})" in text
    assert "paper value not available" in text


def test_one_row_per_setting_and_dedup(study):
    _, _, paths = study
    lb = pd.read_csv(paths.leaderboard)
    keys = ["task", "backbone", "frontend", "hop_ms", "reduction_rate"]
    assert not lb.duplicated(keys).any()
    assert len(lb) == len({(t, f, h, r) for t, f, h, r, _ in _grid()})
    assert lb["n"].eq(3).all()  # 3 seeds; the duplicate config collapsed, the FAILED run ignored
    row = lb[(lb.task == "toy-a") & (lb.frontend == "diffres") & (lb.hop_ms == 10) & (lb.reduction_rate == 0.5)]
    seeds = [_accuracy("diffres", 10.0, 0.5, 0), 0.9, _accuracy("diffres", 10.0, 0.5, 2)]
    assert row["mean"].iloc[0] == pytest.approx(np.mean(seeds), abs=1e-6)  # latest duplicate kept
    spec = lb[(lb.task == "toy-a") & (lb.frontend == "spec") & (lb.hop_ms == 10)]
    assert spec["mean"].iloc[0] < 0.9  # the FAILED 0.99 run is not in it
    assert spec["relative_cost"].iloc[0] == pytest.approx(1.0)
    assert lb.iloc[0]["frontend"] == "spec"


def test_load_runs_counts(study):
    s, _, _ = study
    runs = report.load_runs(SUITE, s.uri)
    assert runs.n_duplicates == 1 and runs.n_not_finished == 1
    assert runs.table["config_hash"].is_unique
    assert runs.extra_keys == ()


def test_claim_verdicts_in_report(study):
    _, out, paths = study
    text = paths.report.read_text()
    claims = pd.read_csv(paths.comparisons)
    assert set(claims["claim_id"].astype(str)) == {"1", "2", "3"}
    assert "| 1 |" in text and "| 4 |" in text
    # diffres is built 3 points above spec and above every pooling baseline on every seed.
    assert "| **holds** |" in text
    assert text.count("| **not run** |") == 3  # claims 4, 5a, 5b have no runs in this suite


def test_idempotent(study):
    s, out, paths = study
    outputs = [paths.leaderboard, *paths.task_tables, paths.comparisons, paths.report, *paths.figures]
    before = {p: p.read_bytes() for p in outputs}
    again = report.build_report(SUITE, s.uri, out / "results", out / "reports")
    assert again == paths
    for p, data in before.items():
        assert p.read_bytes() == data, p


def _runs(rows):
    df = pd.DataFrame(rows, columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed",
                                     "test_metric"]).assign(fold=report.NO_FOLD)
    return report.Runs(df, (), len(df), 0, 0)


def test_claim_checks_on_constructed_data():
    claims = {c.claim_id: c for c in report.load_claims()}
    rows = []
    for seed, noise in enumerate([0.0, 0.01, -0.01]):
        rows.append(("t", "b", "spec", 10.0, 0.0, seed, 0.80 + noise))
        rows.append(("t", "b", "diffres", 10.0, 0.5, seed, 0.83 + noise + 0.001 * seed))  # better than spec
        rows.append(("t", "b", "avgpool", 10.0, 0.5, seed, 0.90 + noise))  # beats diffres
    results = {r.claim.claim_id: r for r in report.check_claims(_runs(rows), list(claims.values()))}
    assert results["1"].verdict == stats.HOLDS
    assert results["2"].verdict == stats.DOES_NOT_HOLD
    assert results["3"].verdict == stats.NOT_RUN and "hop h < 10 ms" in results["3"].evidence
    assert results["4"].verdict == stats.NOT_RUN
    comp = results["1"].comparisons.iloc[0]
    assert comp["mean_diff"] == pytest.approx(0.031) and comp["n_pairs"] == 3
    assert comp["ci95_low"] == pytest.approx(0.031 - 4.302652729749464 * 0.001 / np.sqrt(3))


def test_claim3_pairs_high_resolution_diffres_with_10ms_spec():
    rows = []
    for seed in range(3):
        rows.append(("t", "b", "spec", 10.0, 0.0, seed, 0.80 + 0.01 * seed))
        rows.append(("t", "b", "diffres", 5.0, 0.5, seed, 0.79 + 0.01 * seed))  # slightly worse
        rows.append(("t", "b", "diffres", 5.0, 0.25, seed, 0.99))  # wrong δ for claim 3: ignored
    result = report.check_claims(_runs(rows), [c for c in report.load_claims() if c.claim_id == "3"])[0]
    assert result.verdict == stats.DOES_NOT_HOLD
    assert len(result.comparisons) == 1
    assert result.comparisons.iloc[0]["mean_diff"] == pytest.approx(-0.01)


def test_missing_experiment_is_a_clear_error(tmp_path):
    with pytest.raises(report.ReportDataError, match="no MLflow experiment named 'nope'"):
        report.build_report("nope", f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "r", tmp_path / "p")


def test_single_hop_skips_hop_figure(study, tmp_path):
    s = Study(tmp_path, suite="one-hop", uri=study[0].uri)  # a second experiment in the same store
    for seed in (0, 1):
        s.log("toy-b", "spec", 10.0, 0.0, seed)
        s.log("toy-b", "avgpool", 10.0, 0.5, seed)
    paths = report.build_report("one-hop", s.uri, tmp_path / "results", tmp_path / "reports")
    names = {p.name for p in paths.figures}
    assert "accuracy_vs_hop.png" not in names and "accuracy_vs_flops.png" in names
    text = paths.report.read_text()
    assert "accuracy_vs_hop.png: no task has more than one input hop size" in text
    assert "diffres_examples_toy-b.png: no finished diffres run" in text


def test_pairs_are_matched_on_fold_and_seed():
    df = pd.DataFrame([("t", "b", fe, 10.0, rate, seed, fold, acc)
                       for seed in (0, 1) for fold in (1, 2)
                       for fe, rate, acc in (("spec", 0.0, 0.5 + 0.1 * fold + 0.01 * seed),
                                             ("diffres", 0.25, 0.52 + 0.1 * fold + 0.01 * seed))],
                      columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed", "fold",
                               "test_metric"])
    runs = report.Runs(df, (), len(df), 0, 0)
    comp = report.compare(runs, df["frontend"] == "diffres", df["frontend"] == "spec", ["task", "backbone", "hop_ms"])
    assert len(comp) == 1 and comp.iloc[0]["n_pairs"] == 4
    assert comp.iloc[0]["mean_diff"] == pytest.approx(0.02)
    assert comp.iloc[0]["ci95_high"] - comp.iloc[0]["ci95_low"] == pytest.approx(0.0, abs=1e-9)


def test_report_imports_no_training_code():
    code = ("import sys, benchmark.report; bad = [m for m in ('torch', 'timm', 'benchmark.train', "
            "'benchmark.model') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_diffres_variants_and_ablations_are_never_claim_2_baselines():
    from benchmark.report import _reducing_baseline

    names = ["spec", "avgpool", "changehop", "diffres", "diffres-noenc", "diffres-separable", "pool3ch"]
    kept = pd.Series(names)[_reducing_baseline(pd.DataFrame({"frontend": names})).to_numpy()].tolist()
    assert kept == ["avgpool", "changehop", "pool3ch"]
