"""build_report end to end on a tiny real study: which files, where, idempotent, what is skipped."""

import re
import subprocess
import sys

import pandas as pd
import pytest
from report_helpers import SUITE, Study

from benchmark import report


def test_outputs_exist_with_columns(study):
    _, out, paths = study
    lb = pd.read_csv(paths.leaderboard)
    for column in ["task", "backbone", "frontend", "hop_ms", "reduction_rate", "metric", "mean", "std",
                   "ci95_low", "ci95_high", "n", "flops_frontend", "flops_backbone", "flops_total",
                   "relative_cost", "params_total", "latency_ms", "t_in", "t_out"]:
        assert column in lb.columns
    assert paths.leaderboard == out / "results" / SUITE / "leaderboard.csv"
    assert sorted(p.name for p in paths.task_tables) == ["toy-a.csv", "toy-b.csv"]
    assert [p.name for p in (paths.comparisons, paths.claims_summary, paths.controls, paths.runs)] == [
        "claims.csv", "claims_summary.csv", "controls.csv", "runs.csv"]
    assert all(p.parent == out / "results" / SUITE for p in (paths.claims_summary, paths.controls, paths.runs))
    predictions = pd.read_parquet(paths.predictions)  # the tiny study's runs logged no test_predictions.csv
    assert paths.predictions.name == "predictions.parquet" and predictions.empty
    assert list(predictions.columns) == ["config_hash", "clip_id", "label", "pred", "p_label"]
    claims = pd.read_csv(paths.comparisons)
    assert set(claims.loc[claims["verdict"] != "not run", "rule"]) == {"paired t: no per-clip predictions"}
    assert (claims["verdict"] == claims["verdict_t"]).all()
    assert pd.read_csv(out / "results" / SUITE / "toy-b.csv")["task"].eq("toy-b").all()
    names = {p.name for p in paths.figures}
    assert names == {"accuracy_vs_flops.png", "accuracy_vs_latency.png", "accuracy_vs_reduction_rate.png",
                     "accuracy_vs_hop.png",
                     "diffres_examples_toy-a.png", "diffres_examples_toy-b.png"}
    for p in paths.figures:
        assert p.stat().st_size > 10_000
    text = paths.report.read_text()
    for p in paths.figures:
        assert f"]({p.name})" in text
    assert "paper value not available" in text
    numerics = text.split("## Numerics", 1)[1].split("\n## ", 1)[0]  # runs logged without numerics tags
    assert re.search(r"\| – \| – \| – \| – \| \d+ \| – \|", numerics)


def test_idempotent(study):
    s, out, paths = study
    outputs = [paths.leaderboard, *paths.task_tables, paths.comparisons, paths.claims_summary, paths.controls,
               paths.runs, paths.report, paths.predictions, *paths.figures]
    before = {p: p.read_bytes() for p in outputs}
    again = report.build_report(SUITE, s.uri, out / "results", out / "reports")
    assert again == paths
    for p, data in before.items():
        assert p.read_bytes() == data, p


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


def test_a_front_end_the_registry_does_not_know_is_listed_and_in_no_claim(study, tmp_path):
    s = Study(tmp_path, suite="old-runs", uri=study[0].uri)
    for seed in (0, 1, 2):
        s.log("toy-b", "spec", 10.0, 0.0, seed)
        s.log("toy-b", "diffres", 10.0, 0.5, seed)
        s.log("toy-b", "avgpool", 10.0, 0.5, seed)
        s.log("toy-b", "leaf", 10.0, 0.5, seed)  # an old run: "leaf" is not registered
    paths = report.build_report("old-runs", s.uri, tmp_path / "results", tmp_path / "reports")
    assert "leaf" in set(pd.read_csv(paths.leaderboard)["frontend"])
    claims = pd.read_csv(paths.comparisons)
    assert not claims["control"].str.startswith("leaf").any()
    assert set(claims.loc[claims["claim_id"].astype(str) == "2", "control"]) == {"avgpool @ 10 ms, δ=0.5"}
    assert "front-ends the registry does not know (family `unknown`; on the leaderboard, in no claim): leaf" \
        in paths.report.read_text()


def test_report_imports_no_training_code():
    code = ("import sys, benchmark.report; bad = [m for m in ('torch', 'timm', 'benchmark.training.train', "
            "'benchmark.model.classifier') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
