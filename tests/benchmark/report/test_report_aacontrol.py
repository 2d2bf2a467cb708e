"""The A/A null control: one setting on two seed streams fires on a planted bias, in either direction, and passes
without one; suite files may declare it without changing their grid."""

import pytest
from report_helpers import make_runs

from benchmark.report import aacontrol, controls, stats
from benchmark.report.runs import ReportDataError

NOISE = (0.004, -0.006, 0.001, 0.007, -0.003, 0.002, -0.005, 0.0, 0.006, -0.002)
SETTING = {"task": "t", "frontend": "diffres", "hop_ms": 10.0, "reduction_rate": 0.5}
STREAMS = [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]


def _runs(bias_b: float, other_bias_b: float = 0.0):
    """Stream A at seeds 0-4, stream B at 10-14 of one diffres setting (B shifted by ``bias_b``), and the same for
    avgpool (B shifted by ``other_bias_b``); equal accuracy up to small seed noise."""
    rows = []
    for fe, bias in (("diffres", bias_b), ("avgpool", other_bias_b)):
        for i in range(5):
            rows += [("t", "b", fe, 10.0, 0.5, i, 0.8 + NOISE[i]),
                     ("t", "b", fe, 10.0, 0.5, 10 + i, 0.8 + NOISE[5 + i] + bias)]
    return make_runs(rows)


def _controls():
    return aacontrol.parse_aa_controls([{**SETTING, "streams": STREAMS},
                                        {**SETTING, "frontend": "avgpool", "streams": STREAMS}], "suite.yaml")


def test_aa_control_passes_without_a_difference():
    results = aacontrol.check_aa(_runs(0.0), _controls())
    assert [r.outcome for r in results] == [controls.PASSED, controls.PASSED]
    assert all(r.kind == controls.AA and not r.failed for r in results)
    c = results[0].comparisons.iloc[0]
    assert c["n_pairs"] == 5 and c["verdict"] == stats.INCONCLUSIVE and c["alpha_ci"] == pytest.approx(0.025 / 2)
    assert c["treatment"] == "frontend=diffres, hop_ms=10.0, reduction_rate=0.5 (stream A)"
    assert results[0].text.endswith("(stream A: seeds 0, 1, 2, 3, 4; stream B: seeds 10, 11, 12, 13, 14)")
    assert c["mean_diff"] == pytest.approx(sum(NOISE[:5]) / 5 - sum(NOISE[5:]) / 5)


@pytest.mark.parametrize(("bias", "verdict", "words"), [(-0.05, stats.HOLDS, "stream A better"),
                                                        (0.05, stats.REFUTED, "stream B better")])
def test_aa_control_fires_on_a_planted_bias_in_either_direction(bias, verdict, words):
    diffres, avgpool = aacontrol.check_aa(_runs(bias), _controls())
    assert diffres.outcome == controls.FALSELY_DETECTED and diffres.failed
    assert diffres.comparisons.iloc[0]["verdict"] == verdict and diffres.text.startswith(words)
    assert avgpool.outcome == controls.PASSED  # Holm over both A/A comparisons; the unbiased one stays quiet


def test_aa_control_not_run_without_both_streams():
    runs = make_runs([("t", "b", "diffres", 10.0, 0.5, s, 0.8) for s in range(5)])
    [result] = aacontrol.check_aa(runs, _controls()[:1])
    assert result.not_run and "fewer than 2 paired seeds" in result.text


@pytest.mark.parametrize("entry", [{**SETTING, "streams": [[0, 1], [2]]}, {**SETTING, "streams": [[0, 1], [1, 2]]},
                                   {"frontend": "diffres", "streams": STREAMS}, {**SETTING}])
def test_aa_control_entries_are_validated(entry):
    with pytest.raises(ReportDataError, match=r"suite.yaml: aa_control\[0\]"):
        aacontrol.parse_aa_controls([entry], "suite.yaml")


def test_a_suite_file_accepts_aa_control_and_keeps_its_grid(tmp_path):
    from benchmark.paths import SUITES_DIR
    from benchmark.study.suites import load_suite

    text = (SUITES_DIR / "quick.yaml").read_text().split("aa_control:")[0]  # quick's own A/A control replaced
    path = tmp_path / "quick-aa.yaml"
    path.write_text(text.replace("name: quick\n", "name: quick-aa\n") + "aa_control:\n"
                    "  - {task: toy-rhythm, frontend: spec, hop_ms: 10.0, streams: [[0, 1, 2], [3, 4, 5]]}\n")
    quick, with_aa = load_suite("quick"), load_suite(path)
    assert with_aa.keys == quick.keys and [e["frontend"] for e in quick.aa_control] == ["avgpool"]
    [entry] = aacontrol.parse_aa_controls(with_aa.aa_control, str(path))
    assert entry.streams == ((0, 1, 2), (3, 4, 5)) and entry.task == "toy-rhythm"


def test_aa_controls_are_replicated_on_halves_of_their_pairs():
    from benchmark.report import replication

    table = replication.replication(_runs(-0.05), [], stats.DEFAULT_MARGIN, tuple(_controls()))
    aa = table[table["source"] == "a/a control"].set_index("treatment")
    assert len(aa) == 2 and set(aa["n_pairs_a"]) == {3} and set(aa["n_pairs_b"]) == {2}
    diffres = aa.loc["frontend=diffres, hop_ms=10.0, reduction_rate=0.5 (stream A)"]
    assert (diffres["verdict_full"], diffres["agreement_a"]) == (stats.HOLDS, "decided and agree")


def test_the_second_stream_serves_the_aa_control_alone():
    """Claims and the other controls never see stream B's runs (no partner there); the A/A control still does."""
    runs = _runs(0.0)
    kept = aacontrol.second_streams_apart(runs, _controls()[:1])
    diffres = kept.table[kept.table["frontend"] == "diffres"]
    assert sorted(diffres["seed"]) == [0, 1, 2, 3, 4] and len(kept.table) == len(runs.table) - 5
    assert len(kept.table[kept.table["frontend"] == "avgpool"]) == 10  # not declared: kept whole
    assert aacontrol.second_streams_apart(runs, ()) is runs
