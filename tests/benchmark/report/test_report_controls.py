"""The controls: a positive control the suite detects, a negative control it falsely detects (the banner at
the top of REPORT.md), and control tasks kept out of the claims."""

import pandas as pd
import pytest
from report_helpers import Study, make_runs, registered_tasks

from benchmark import report
from benchmark.report import controls as report_controls
from benchmark.report import stats

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    with registered_tasks() as register:
        positive, negative = register("positive"), register("negative")
        tmp_path = tmp_path_factory.mktemp("controls")
        yield positive, negative, _build(tmp_path, positive, negative)


def _build(tmp_path, positive: str, negative: str):
    s = Study(tmp_path, suite="controlled")
    for seed in SEEDS:
        wiggle = 0.003 * seed * seed
        # Positive control: DiffRes far above both uniform reductions at δ = 0.75.
        for fe, acc in (("diffres", 0.90), ("avgpool", 0.55), ("changehop", 0.50)):
            s.log(positive, fe, 10.0, 0.75, seed, accuracy=acc + 0.01 * seed + (wiggle if fe != "diffres" else 0))
        # Negative control: DiffRes beats avgpool by 10 points at δ = 0.5 (the suite "finds" an advantage
        # where none can exist), and loses 10 points to spec (a false detection too: the control is two-sided).
        s.log(negative, "spec", 10.0, 0.0, seed, accuracy=0.80 + 0.01 * seed + wiggle)
        s.log(negative, "diffres", 10.0, 0.5, seed, accuracy=0.70 + 0.01 * seed - wiggle)
        s.log(negative, "avgpool", 10.0, 0.5, seed, accuracy=0.60 + 0.01 * seed)
        # At δ = 0.75 the negative control promises nothing: not compared.
        s.log(negative, "avgpool", 10.0, 0.75, seed, accuracy=0.20)
        s.log(negative, "diffres", 10.0, 0.75, seed, accuracy=0.90)
        # An ordinary task: the evidence for the claims.
        s.log("toy-b", "diffres", 10.0, 0.5, seed, accuracy=0.83 + 0.01 * seed)
        s.log("toy-b", "avgpool", 10.0, 0.5, seed, accuracy=0.74 + 0.01 * seed + wiggle)
    return report.build_report("controlled", s.uri, tmp_path / "results", tmp_path / "reports")


def test_positive_control_detected_and_negative_control_falsely_detected(controlled):
    positive, negative, paths = controlled
    text = paths.report.read_text()
    section = text.split("## Does the suite detect what it should")[1].split("## The claims at a glance")[0]
    lines = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(lines) == 2
    pos = next(line for line in lines if positive in line)
    neg = next(line for line in lines if negative in line)
    assert "(positive control)" in pos and "**detected**: holds on 2 of 2 comparisons" in pos
    assert "avgpool" in pos and "n=3" in pos  # the weakest comparison, with its numbers
    assert "(negative control)" in neg and ("**falsely detected**: a difference is decided on 2 of 2 comparisons "
                                            "(DiffRes better on 1, worse on 1)") in neg
    assert "found: diffres @ 10 ms, δ=0.5 − avgpool @ 10 ms, δ=0.5: +0.0950" in neg
    assert "; diffres @ 10 ms, δ=0.5 − spec @ 10 ms, δ=0: -0.1" in neg
    assert "(paired t: no per-clip predictions)" in neg  # these runs logged no test_predictions.csv


def test_a_failed_control_puts_a_banner_at_the_very_top(controlled):
    positive, negative, paths = controlled
    lines = paths.report.read_text().splitlines()
    assert lines[0].startswith("# DiffRes benchmark report")
    assert lines[2].startswith(f"**This suite failed its controls: negative control `{negative}` falsely detected")
    assert positive not in lines[2]


def test_controls_csv_and_control_tasks_are_no_evidence_for_the_claims(controlled):
    positive, negative, paths = controlled
    ctrl = pd.read_csv(paths.controls)
    assert set(ctrl["task"]) == {positive, negative} and set(ctrl["test"]) == {stats.SUPERIORITY}
    neg = ctrl[ctrl["task"] == negative]
    assert len(neg) == 2  # diffres - avgpool, diffres - spec at δ = 0.5: one direction, the claims' rule
    assert neg.loc[neg["verdict"] == stats.HOLDS, ["treatment", "control"]].values.tolist() == [
        ["diffres @ 10 ms, δ=0.5", "avgpool @ 10 ms, δ=0.5"]]
    assert neg.loc[neg["verdict"] == stats.REFUTED, "control"].tolist() == ["spec @ 10 ms, δ=0"]
    assert not neg["treatment"].str.contains("0.75").any()
    claims = pd.read_csv(paths.comparisons)
    assert set(claims["task"]) == {"toy-b"}  # the 10-point avgpool win on the negative control refutes nothing
    assert "Control tasks are not evidence for the paper's claims" in paths.report.read_text()


def test_positive_control_not_detected_when_one_uniform_reduction_keeps_up(throwaway_task):
    positive = throwaway_task("positive")
    runs = make_runs([(positive, "b", fe, 10.0, 0.75, seed, acc + 0.01 * seed + 0.002 * seed * (fe == "maxpool"))
                      for seed in SEEDS for fe, acc in (("diffres", 0.9), ("avgpool", 0.5), ("maxpool", 0.9))])
    [result] = report.check_controls(runs)
    assert result.outcome == report_controls.NOT_DETECTED and result.failed
    assert "holds on 1 of 2 comparisons" in result.text and "maxpool" in result.text


def test_a_control_without_pairs_is_not_run_and_no_control_says_so(throwaway_task, study):
    negative = throwaway_task("negative")
    [result] = report.check_controls(make_runs([(negative, "b", "diffres", 10.0, 0.5, 0, 0.8)]))
    assert result.not_run and not result.failed
    assert report.check_controls(make_runs([("toy-b", "b", "diffres", 10.0, 0.5, 0, 0.8)])) == []
    assert "No control task in this suite" in study[2].report.read_text()


# results/quick/runs.csv, task toy-ctrl-texture (audiocnn_tiny, 10 ms, δ = 0.5), seeds 0-4: the committed data
TEXTURE = {"diffres": (0.8, 0.83, 0.81, 0.785, 0.79), "avgpool": (0.805, 0.875, 0.835, 0.86, 0.88),
           "changehop": (0.825, 0.84, 0.825, 0.83, 0.84)}


def test_committed_texture_data_fails_the_two_sided_negative_control(throwaway_task):
    """DiffRes is worse than avgpool (-0.048) and changehop (-0.029) on every reading; the claims' rule (0.025
    per direction over k = 2) refutes both, i.e. DiffRes is significantly worse. The negative control is
    two-sided: its task is built so that nothing differs, so a decided disadvantage is a false detection as
    much as an advantage (until issue 28 it was only reported, and this data passed)."""
    negative = throwaway_task("negative")
    runs = make_runs([(negative, "audiocnn_tiny", fe, 10.0, 0.5, seed, acc)
                      for fe, accs in TEXTURE.items() for seed, acc in enumerate(accs)])
    [result] = report.check_controls(runs)
    assert result.outcome == report_controls.FALSELY_DETECTED and result.failed
    c = result.comparisons.set_index("control")
    assert c["mean_diff"].to_dict() == pytest.approx({"avgpool @ 10 ms, δ=0.5": -0.048,
                                                      "changehop @ 10 ms, δ=0.5": -0.029})
    assert c["verdict"].tolist() == [stats.REFUTED, stats.REFUTED]
    assert c["p_verdict"].to_numpy() == pytest.approx([0.0220, 0.0220], abs=5e-4)
    assert "a difference is decided on 2 of 2 comparisons (DiffRes better on 0, worse on 2)" in result.text


def test_negative_control_passes_when_nothing_is_decided(throwaway_task):
    negative = throwaway_task("negative")
    noise = (0.01, -0.012, 0.004, -0.003, 0.002)
    runs = make_runs([(negative, "b", fe, 10.0, 0.5, seed, 0.8 + (noise[seed] if fe == "diffres" else 0.0))
                      for fe in ("diffres", "avgpool") for seed in range(5)])
    [result] = report.check_controls(runs)
    assert result.outcome == report_controls.PASSED and "decided on 0 of 1" in result.text
