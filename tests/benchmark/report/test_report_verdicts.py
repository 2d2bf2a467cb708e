"""Decided verdicts end to end on a real MLflow store with known test metrics: non-inferiority inside the
margin, inconclusive superiority and why it cannot be decided, Holm within a claim across tasks, the
margin from the suite YAML, runs.csv and the runs that did not train."""

import pandas as pd
import pytest
from report_helpers import Study

from benchmark import report
from benchmark.report import build as report_build
from benchmark.report import stats

SEEDS = (0, 1, 2, 3)
CLOSE = (0.001, -0.001, 0.0, 0.0)  # diffres - spec: -0.004 on average, a tenth of a point of noise
NOISY_A = (0.01, -0.01, 0.01, -0.01)  # diffres - avgpool: +0.002 on average, a point of noise
NOISY_C = (0.012, 0.012, -0.012, -0.012)  # diffres - changehop: +0.003 on average


def accuracy(task: str, frontend: str, seed: int) -> float:
    spec = 0.80 + 0.01 * seed + (0.02 if task == "toy-a" else 0.0)
    diffres = spec - 0.004 + CLOSE[seed]
    return {"spec": spec, "diffres": diffres, "avgpool": diffres - 0.002 - NOISY_A[seed],
            "changehop": diffres - 0.003 - NOISY_C[seed]}[frontend]


def health(frontend: str, trained: float = 1.0) -> dict:
    # changehop runs are "old": they logged no health. diffres peaked at its last epoch.
    if frontend == "changehop":
        return {}
    return {"trained": trained, "epochs_run": 4.0, "best_epoch": 3.0 if frontend == "diffres" else 1.0,
            "final_train_loss": 0.5, "chance_loss": 1.6, "chance_metric": 0.2, "stopped_early": 0.0}


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    root = tmp_path_factory.mktemp("verdicts")
    s = Study(root, suite="verdicts")
    untrained_run = None
    for task in ("toy-a", "toy-b"):
        for seed in SEEDS:
            for fe, rate in (("spec", 0.0), ("diffres", 0.5), ("avgpool", 0.5), ("changehop", 0.5)):
                dead = task == "toy-a" and fe == "avgpool" and seed == 0
                rid = s.log(task, fe, 10.0, rate, seed, accuracy=accuracy(task, fe, seed),
                            extra_metrics=health(fe, 0.0 if dead else 1.0))
                untrained_run = rid if dead else untrained_run
    s.log("toy-b", "spec", 10.0, 0.0, 0, accuracy=accuracy("toy-b", "spec", 0), extra_metrics=health("spec"))
    paths = report.build_report("verdicts", s.uri, root / "results", root / "reports")
    return s, paths, untrained_run


def _claim(paths, claim_id: str) -> pd.DataFrame:
    df = pd.read_csv(paths.comparisons, dtype={"claim_id": str})
    return df[df["claim_id"] == claim_id].reset_index(drop=True)


def test_claims_csv_has_the_decision_columns(decided):
    _, paths, _ = decided
    df = pd.read_csv(paths.comparisons)
    for column in ["test", "margin", "verdict", "ci95_low", "ci95_high", "ci_low_bonferroni", "ci_high_bonferroni",
                   "alpha_ci", "p_holds", "p_holds_holm", "p_refute", "p_refute_holm", "p_verdict", "mdd",
                   "pairs_needed", "std_diff", "n_pairs", "untrained_pairs", "unpaired_treatment", "unpaired_control",
                   "nonfinite_treatment", "nonfinite_control", "not_comparable"]:
        assert column in df.columns
    assert not {"direction", "holds"} & set(df.columns)
    assert set(df["verdict"]) <= {*stats.VERDICTS, stats.NOT_RUN}
    # every run of the grid has its partner and a finite metric: nothing was dropped
    assert (df[["unpaired_treatment", "unpaired_control", "nonfinite_treatment", "nonfinite_control"]] == 0).all().all()


def test_non_inferiority_holds_with_a_negative_difference_inside_the_margin(decided):
    _, paths, _ = decided
    claim1 = _claim(paths, "1")
    assert len(claim1) == 2 and set(claim1["test"]) == {stats.NON_INFERIORITY}
    assert claim1["margin"].eq(stats.DEFAULT_MARGIN).all()
    assert claim1["mean_diff"].to_numpy() == pytest.approx([-0.004, -0.004])
    assert (claim1["ci95_high"] < 0).all()  # diffres is measurably worse than spec, yet within the margin
    assert (claim1["ci_low_bonferroni"] > -stats.DEFAULT_MARGIN).all()
    assert (claim1["ci_low_bonferroni"] <= claim1["ci95_low"]).all()
    assert claim1["verdict"].tolist() == [stats.HOLDS, stats.HOLDS]
    # Same numbers as stats.decide on the pairs, with Holm over both tasks.
    diffs = [[accuracy(t, "diffres", s) - accuracy(t, "spec", s) for s in SEEDS] for t in ("toy-a", "toy-b")]
    expected = stats.decide(diffs, stats.NON_INFERIORITY, stats.DEFAULT_MARGIN)
    assert claim1["ci_low_bonferroni"].to_numpy() == pytest.approx([c.ci_low for c in expected], rel=1e-5)
    assert claim1["mdd"].to_numpy() == pytest.approx([c.mdd for c in expected], rel=1e-5)


def test_superiority_inside_the_noise_is_inconclusive_and_the_report_says_why(decided):
    _, paths, _ = decided
    claim2 = _claim(paths, "2")
    assert len(claim2) == 4 and set(claim2["test"]) == {stats.SUPERIORITY} and claim2["margin"].eq(0).all()
    assert set(claim2["verdict"]) == {stats.INCONCLUSIVE}
    assert ((claim2["ci_low_bonferroni"] < 0) & (claim2["ci_high_bonferroni"] > 0)).all()
    summary = pd.read_csv(paths.claims_summary, dtype={"claim_id": str}).set_index("claim_id")
    row = summary.loc["2"]
    assert (row["holds"], row["refuted"], row["inconclusive"], row["n_comparisons"]) == (0, 0, 4, 4)
    assert row["tasks"] == "toy-a;toy-b"
    assert row["reading"].startswith("cannot decide: none of 4 tested comparisons is decided")
    assert f"median MDD of {row['median_mdd']:.4f}" in row["reading"]
    assert f"half-width {row['median_ci_half_width_bonferroni']:.4f}" in row["reading"]
    text = paths.report.read_text()
    assert row["reading"] in text and "does not hold" not in text
    assert summary.loc["1", "reading"] == "supported on 2 of 2 comparisons, refuted on none."


def test_holm_runs_over_the_comparisons_of_a_claim_across_tasks(decided):
    _, paths, _ = decided
    claim2 = _claim(paths, "2")
    assert set(claim2["task"]) == {"toy-a", "toy-b"}
    assert claim2["p_holds_holm"].to_numpy() == pytest.approx(stats.holm(claim2["p_holds"].to_numpy()), rel=1e-5)
    assert (claim2["p_holds_holm"] > claim2["p_holds"]).all()
    assert claim2["p_refute_holm"].to_numpy() == pytest.approx(stats.holm(claim2["p_refute"].to_numpy()), rel=1e-5)
    claim1 = _claim(paths, "1")  # its own family of 2: not corrected for claim 2's 4
    assert claim1["p_holds_holm"].to_numpy() == pytest.approx(stats.holm(claim1["p_holds"].to_numpy()), rel=1e-5)
    assert (claim2["alpha_ci"] == 0.025 / 4).all() and (claim1["alpha_ci"] == 0.025 / 2).all()


def test_runs_csv_has_one_row_per_finished_run(decided):
    s, paths, untrained_run = decided
    runs = pd.read_csv(paths.runs)
    loaded = report.load_runs("verdicts", s.uri)
    assert len(runs) == loaded.n_finished == 2 * 4 * 4 + 1
    assert runs["run_id"].is_unique and runs["used"].sum() == len(loaded.table) and (~runs["used"]).sum() == 1
    for column in ["task", "frontend", "hop_ms", "reduction_rate", "seed", "fold", "test_metric", "val_metric",
                   "best_epoch", "epochs_run", "trained", "config_hash", "run_id"]:
        assert column in runs.columns
    assert runs.loc[runs["run_id"] == untrained_run, "trained"].tolist() == [0.0]
    assert runs.loc[runs["frontend"] == "changehop", "trained"].isna().all()  # old runs: unknown, not untrained
    assert runs["fold"].isna().all()


def test_an_untrained_run_is_listed_and_its_comparisons_flagged(decided):
    _, paths, untrained_run = decided
    claims = pd.read_csv(paths.comparisons, dtype={"claim_id": str})
    flagged = claims[claims["untrained_pairs"] > 0]
    assert flagged[["claim_id", "task", "control"]].values.tolist() == [["2", "toy-a", "avgpool @ 10 ms, δ=0.5"]]
    assert flagged["untrained_pairs"].tolist() == [1] and flagged["n_pairs"].tolist() == [4]  # kept, not dropped
    text = paths.report.read_text()
    health_section = text.split("## Run health")[1].split("## How to read")[0]
    assert "runs that did not train (`trained` = 0): 1" in health_section and untrained_run in health_section
    assert "**inconclusive** ⚠ 1 untrained" in text
    assert "| 2 | superiority | 0 | toy-a, toy-b | 0 | 0 | 4 | 0 | 1 |" in text
    # diffres (8 runs) peaked at its last epoch; spec and avgpool (16 + 1 re-run, de-duplicated) did not.
    assert "`best_epoch == epochs_run - 1`): 8 of 24 runs (33 %)" in health_section
    assert "(`trained`): 24 of 32" in health_section


def test_margin_comes_from_the_suite_yaml(decided, tmp_path, monkeypatch):
    s, _, _ = decided
    (tmp_path / "verdicts.yaml").write_text("margin: 0.002\nbase: {task: toy-transients}\ngrids: [{seed: [0]}]\n")
    monkeypatch.setattr(report_build, "SUITES_DIR", tmp_path)
    assert report.suite_margin("verdicts")[0] == 0.002
    assert report.suite_margin("no-such-suite") == (
        stats.DEFAULT_MARGIN, "default `stats.DEFAULT_MARGIN`: no suite file no-such-suite.yaml in benchmark/suites")
    # the stub YAML's one point is not among the logged runs: name the logged points explicitly
    logged = set(report.load_runs("verdicts", s.uri).table["config_hash"])
    paths = report.build_report("verdicts", s.uri, tmp_path / "results", tmp_path / "reports", points=logged)
    assert paths.margin == 0.002
    claim1 = _claim(paths, "1")
    assert claim1["margin"].eq(0.002).all()
    assert claim1["verdict"].tolist() == [stats.REFUTED, stats.REFUTED]  # -0.004 is outside a 0.2-point margin
    assert "Non-inferiority margin: 0.002 (key `margin` of benchmark/suites/verdicts.yaml" in paths.report.read_text()


def test_the_untrained_table_names_the_settings_that_tell_runs_apart():
    from pathlib import Path

    from benchmark.report.health import UNTRAINED_COLUMNS, health
    from benchmark.report.markdown import _health_md

    row = dict(task="toy-a", frontend="spec", hop_ms=10.0, reduction_rate=0.0, backbone="audiocnn_tiny", seed=0,
               fold=-1, test_metric=0.2, chance_metric=0.2, final_train_loss=1.6, chance_loss=1.6, epochs_run=6,
               run_id="r0", trained=1.0, best_epoch=2)
    table = pd.DataFrame([{**row, "filterbank": "mel"},
                          {**row, "filterbank": "sincnet", "run_id": "r1", "trained": 0.0}])
    h = health(report.Runs(table, ("filterbank",), len(table), 0, 0))
    assert h.extra_keys == ("filterbank",) and list(h.untrained.columns) == UNTRAINED_COLUMNS + ["filterbank"]
    text = "\n".join(_health_md(h, Path("runs.csv"), Path(".")))
    assert "| backbone | filterbank | seed |" in text and "| audiocnn_tiny | sincnet | 0 |" in text
