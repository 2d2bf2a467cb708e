"""The claims: verdicts on the tiny study and on constructed data; selection by registry metadata; the
registered claims carry their tests and generate their files."""

import numpy as np
import pandas as pd
import pytest
from report_helpers import make_runs

from benchmark import report
from benchmark.report import claims as report_claims
from benchmark.report import pairs as report_pairs
from benchmark.report import stats
from benchmark.report.verdicts import NOT_COMPARABLE


def _verdicts(result) -> list[str]:
    return result.comparisons["verdict"].tolist()


def test_claim_verdicts_in_report(study):
    _, out, paths = study
    text = paths.report.read_text()
    claims = pd.read_csv(paths.comparisons)
    assert set(claims["claim_id"].astype(str)) == {"1", "2", "3"}
    assert "| 1 |" in text and "| 4 |" in text
    # diffres is built 3 points above spec and above every pooling baseline on every seed.
    assert "| **holds** |" in text
    assert text.count("| not run | not run: needs") == 3  # claims 4, 5a, 5b have no runs in this suite
    assert "does not hold" not in text
    assert set(claims.loc[claims["claim_id"].astype(str) == "2", "verdict"]) == {stats.HOLDS}


def test_each_registered_claim_carries_its_test():
    tests = {c.claim_id: c.test for c in report.paper_claims()}
    assert tests == {"1": stats.NON_INFERIORITY, "2": stats.SUPERIORITY, "3": stats.SUPERIORITY,
                     "4": stats.SUPERIORITY, "5a": stats.SUPERIORITY, "5b": stats.SUPERIORITY}
    # claim 3 says a high-resolution input *improves* accuracy: superiority, non-inferiority beside it
    assert {c.claim_id: c.weaker_test for c in report.paper_claims() if c.weaker_test} == {"3": stats.NON_INFERIORITY}


def test_a_claim_is_one_entry_and_an_unregistered_one_is_refused():
    """A claim is registered with its check: there is no claim without one, an id is registered once, and a
    Claim made by hand that is not registered is refused by name, listing the registered ids."""
    with pytest.raises(KeyError, match=r"unknown claim '7'; known claims: 1, 2, 3, 4, 5a, 5b"):
        report.check_claims(make_runs([]), [report.Claim("7", "y", stats.SUPERIORITY, "s")])
    with pytest.raises(ValueError, match="claim '2' is already registered"):
        report_claims.registry().add("2", report.Claim("2", "again", stats.SUPERIORITY, "s"), lambda: None)


def test_a_claim_with_an_unknown_test_is_a_clear_error():
    with pytest.raises(ValueError, match="claim 1: field 'test', value 'equivalence'; expected one of"):
        report.Claim("1", "x", "equivalence", "s")
    with pytest.raises(ValueError, match="claim 3: field 'weaker_test', value 'superiority'; expected empty or"):
        report.Claim("3", "x", stats.SUPERIORITY, "s", weaker_test=stats.SUPERIORITY)


def test_a_newly_registered_claim_is_judged_and_listed(tmp_path):
    """Registering a claim (words, test, arms) is all it takes: the report judges it and the generated
    claims.csv and docs table list it."""
    claim = report.Claim("9", "max pooling beats average pooling.", stats.SUPERIORITY, "nowhere")
    report_claims.registry().add("9", claim, lambda: report.ClaimCheck(
        lambda d: d["frontend"] == "maxpool", lambda d: d["frontend"] == "avgpool",
        ["task", "backbone", "hop_ms", "reduction_rate"], "maxpool minus avgpool", "maxpool and avgpool runs"))
    try:
        runs = _three_seeds(("maxpool", 0.5, 0.80), ("avgpool", 0.5, 0.75))
        result = report.check_claims(runs, report.paper_claims("9"))[0]
        assert _verdicts(result) == [stats.HOLDS] and result.check == "maxpool minus avgpool"
        table = report_claims.claims_table()
        assert table["claim_id"].tolist()[-1] == "9" and table["compared"].tolist()[-1] == "maxpool minus avgpool"
        docs = tmp_path / "benchmark.md"
        docs.write_text(f"before\n{report_claims.TABLE_BEGIN}\nold\n{report_claims.TABLE_END}\nafter\n")
        text = report_claims.generated(tmp_path / "claims.csv", docs)[docs]
        assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
        assert "| 9 | max pooling beats average pooling. | superiority | maxpool minus avgpool |" in text
    finally:
        report_claims.registry().remove("9")


def test_the_committed_claims_files_are_generated_from_the_registry(tmp_path):
    assert report_claims.stale_files() == []  # else: diffres-bench claims --write
    docs = tmp_path / "benchmark.md"
    docs.write_text("no markers here\n")
    with pytest.raises(ValueError, match="benchmark.md: expected the markers"):
        report_claims.generated(tmp_path / "claims.csv", docs)


def test_claim_checks_on_constructed_data():
    claims = {c.claim_id: c for c in report.paper_claims()}
    rows = []
    for seed, noise in enumerate([0.0, 0.01, -0.01]):
        rows.append(("t", "b", "spec", 10.0, 0.0, seed, 0.80 + noise))
        rows.append(("t", "b", "diffres", 10.0, 0.5, seed, 0.83 + noise + 0.001 * seed))  # better than spec
        rows.append(("t", "b", "avgpool", 10.0, 0.5, seed, 0.90 + noise))  # beats diffres
    results = {r.claim.claim_id: r for r in report.check_claims(make_runs(rows), list(claims.values()))}
    assert _verdicts(results["1"]) == [stats.HOLDS]
    assert _verdicts(results["2"]) == [stats.REFUTED]  # avgpool is clearly better: refuted, not "inconclusive"
    assert results["3"].not_run and "hop h < 10 ms" in results["3"].reading
    assert results["4"].not_run
    comp = results["1"].comparisons.iloc[0]
    assert comp["mean_diff"] == pytest.approx(0.031) and comp["n_pairs"] == 3
    assert comp["ci95_low"] == pytest.approx(0.031 - 4.302652729749464 * 0.001 / np.sqrt(3))


def test_claim3_pairs_high_resolution_diffres_with_10ms_spec():
    rows = []
    for seed in range(3):
        rows.append(("t", "b", "spec", 10.0, 0.0, seed, 0.80 + 0.01 * seed))
        rows.append(("t", "b", "diffres", 5.0, 0.5, seed, 0.79 + 0.01 * seed))  # slightly worse
        rows.append(("t", "b", "diffres", 5.0, 0.25, seed, 0.99))  # wrong δ for claim 3: ignored
    result = report.check_claims(make_runs(rows), report.paper_claims("3"))[0]
    assert len(result.comparisons) == 1
    assert result.comparisons.iloc[0]["mean_diff"] == pytest.approx(-0.01)
    # Superiority (the claim): 1 point worse on every seed is refuted. Non-inferiority (the weaker reading,
    # beside it): exactly at the default margin up to round-off, inconclusive (one tolerance); worse beyond a
    # half-point margin, refuted.
    row = result.comparisons.iloc[0]
    assert _verdicts(result) == [stats.REFUTED] and row["test"] == stats.SUPERIORITY
    assert (row["weaker_test"], row["weaker_verdict"]) == (stats.NON_INFERIORITY, stats.INCONCLUSIVE)
    assert "Weaker reading (non-inferiority)" in result.reading
    strict = report.check_claims(make_runs(rows), report.paper_claims("3"), 0.005)[0]
    assert strict.comparisons["weaker_verdict"].tolist() == [stats.REFUTED] and strict.margin == 0.0
    assert strict.comparisons["weaker_margin"].tolist() == [0.005]


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


def test_diffres_variants_and_ablations_are_never_claim_2_baselines():
    names = ["spec", "avgpool", "changehop", "diffres", "diffres-noenc", "diffres-separable", "pool3ch"]
    kept = pd.Series(names)[report_pairs.reducing_baseline(pd.DataFrame({"frontend": names})).to_numpy()].tolist()
    assert kept == ["avgpool", "changehop", "pool3ch"]


def _three_seeds(*frontends: tuple[str, float, float]) -> report.Runs:
    return make_runs([("t", "b", fe, 10.0, rate, seed, acc + 0.01 * seed)
                      for seed in range(3) for fe, rate, acc in frontends])


def test_a_newly_registered_uniform_reduction_is_a_claim_2_baseline(throwaway_frontend):
    name = throwaway_frontend("uniform reduction")
    runs = _three_seeds(("diffres", 0.5, 0.83), (name, 0.5, 0.70), ("avgpool", 0.5, 0.74))
    claim2 = report.paper_claims("2")
    result = report.check_claims(runs, claim2)[0]
    assert sorted(result.comparisons["control"]) == sorted(["avgpool @ 10 ms, δ=0.5", f"{name} @ 10 ms, δ=0.5"])
    assert _verdicts(result) == [stats.HOLDS, stats.HOLDS]


def test_a_registered_ablation_of_the_resolution_encoding_is_claim_5b(throwaway_frontend):
    name = throwaway_frontend("learned resolution", variant_of="diffres", ablates="resolution encoding")
    runs = _three_seeds(("diffres", 0.5, 0.83), (name, 0.5, 0.80), ("diffres-noenc", 0.5, 0.81))
    result = report.check_claims(runs, report.paper_claims("5b"))[0]
    assert sorted(result.comparisons["control"]) == sorted([f"{name} @ 10 ms, δ=0.5", "diffres-noenc @ 10 ms, δ=0.5"])
    assert name in result.check and "diffres-noenc" in result.check
    claim2 = report.check_claims(runs, report.paper_claims("2"))[0]
    assert claim2.not_run  # an ablation is never a reducing baseline


def test_a_learnable_filterbank_is_claim_4(throwaway_frontend):
    name = throwaway_frontend("learnable filterbank")
    runs = _three_seeds(("diffres", 0.5, 0.83), (name, 0.5, 0.80))
    result = report.check_claims(runs, report.paper_claims("4"))[0]
    assert _verdicts(result) == [stats.HOLDS]
    assert result.comparisons["control"].tolist() == [f"{name} @ 10 ms, δ=0.5"]


def test_guide_loss_ablation_is_the_recipe_setting_of_diffres_itself():
    df = pd.DataFrame([("t", "b", fe, 10.0, 0.5, seed, w, acc + 0.01 * seed)
                       for seed in range(3)
                       for fe, w, acc in (("diffres", "1.0", 0.83), ("diffres", "0.0", 0.80),
                                          ("diffres-separable", "0.0", 0.70))],
                      columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed",
                               "guide_loss_weight", "test_metric"]).assign(fold=report.NO_FOLD)
    runs = report.Runs(df, ("guide_loss_weight",), len(df), 0, 0)
    result = report.check_claims(runs, report.paper_claims("5a"))[0]
    assert _verdicts(result) == [stats.HOLDS]
    assert result.comparisons["control"].tolist() == ["diffres @ 10 ms, δ=0.5 (guide_loss_weight=0.0)"]
    assert result.comparisons["treatment"].tolist() == ["diffres @ 10 ms, δ=0.5 (guide_loss_weight=1.0)"]


def test_unknown_front_ends_are_in_no_claim():
    runs = _three_seeds(("spec", 0.0, 0.80), ("diffres", 0.5, 0.83), ("leaf", 0.5, 0.5), ("diffres-noguide", 0.5, 0.5))
    for result in report.check_claims(runs, report.paper_claims()):
        for column in ("treatment", "control"):
            assert not result.comparisons[column].str.startswith(("leaf", "diffres-noguide")).any()


def test_claim_5a_not_run_says_why_when_the_guide_loss_never_acted():
    rows = [("t", "b", fe, 10.0, rate, seed, 0.8 + 0.01 * seed) for seed in range(3)
            for fe, rate in (("spec", 0.0), ("diffres", 0.5))]
    runs = make_runs(rows)
    table = runs.table.assign(train_aux_loss=np.where(runs.table["frontend"] == "diffres", 0.0, np.nan))
    quiet = report.Runs(table, runs.extra_keys, len(table), 0, 0)
    claim = report.paper_claims("5a")
    result = report.check_claims(quiet, claim)[0]
    assert result.not_run and "guide loss is 0.0 in the last epoch of all 3 DiffRes runs" in result.reading
    acted = report.Runs(table.assign(train_aux_loss=0.02), runs.extra_keys, len(table), 0, 0)
    assert "guide loss is 0.0" not in report.check_claims(acted, claim)[0].reading


def test_claim_4_is_diffres_on_mel_against_each_learnable_filterbank_with_spec():
    rows = [("t", "b", fe, 10.0, rate, fb, seed, acc + 0.01 * seed + 0.002 * (seed * seed % 3))
            for seed in range(3)
            for fe, rate, fb, acc in (("diffres", 0.5, "mel", 0.83), ("spec", 0.0, "leaf", 0.78),
                                      ("spec", 0.0, "sincnet", 0.90), ("spec", 0.0, "mel", 0.80),
                                      ("diffres", 0.5, "leaf", 0.60))]
    df = pd.DataFrame(rows, columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "filterbank",
                                     "seed", "test_metric"]).assign(fold=report.NO_FOLD)
    runs = report.Runs(df, ("filterbank",), len(df), 0, 0)
    result = report.check_claims(runs, report.paper_claims("4"))[0]
    by_control = dict(zip(result.comparisons["control"], result.comparisons["verdict"]))
    # the mel spec run is claim 1's reference, not a learnable front-end; DiffRes on LEAF is no treatment
    assert by_control == {"spec @ 10 ms, δ=0 (filterbank=leaf)": stats.HOLDS,
                          "spec @ 10 ms, δ=0 (filterbank=sincnet)": stats.REFUTED}
    assert set(result.comparisons["treatment"]) == {"diffres @ 10 ms, δ=0.5 (filterbank=mel)"}
    assert "leaf" in result.check or "learnable filterbank" in result.check


def test_claim_1_is_on_the_mel_filterbank_and_only_claim_4_pairs_across_filterbanks():
    """Claim 1 is about the mel spectrogram: DiffRes and the spectrogram on mel only (the LEAF pair is in no
    claim-1 comparison); only claim 4 pairs across filterbanks."""
    rows = [("t", "b", fe, 10.0, rate, fb, seed, acc + 0.01 * seed + 0.002 * (seed * seed % 3))
            for seed in range(3)
            for fe, rate, fb, acc in (("diffres", 0.5, "mel", 0.83), ("spec", 0.0, "mel", 0.80),
                                      ("diffres", 0.5, "leaf", 0.70), ("spec", 0.0, "leaf", 0.78))]
    df = pd.DataFrame(rows, columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "filterbank",
                                     "seed", "test_metric"]).assign(fold=report.NO_FOLD)
    runs = report.Runs(df, ("filterbank",), len(df), 0, 0)
    claims = report.paper_claims("1", "4")
    one, four = report.check_claims(runs, claims)
    assert sorted(zip(one.comparisons["treatment"], one.comparisons["control"])) == [
        ("diffres @ 10 ms, δ=0.5 (filterbank=mel)", "spec @ 10 ms, δ=0 (filterbank=mel)")]
    assert four.comparisons["control"].tolist() == ["spec @ 10 ms, δ=0 (filterbank=leaf)"]


def test_a_recipe_field_that_differs_between_arms_makes_the_comparison_not_comparable():
    """30-epoch DiffRes against 12-epoch spec: epochs is constant inside each arm, so it is no extra key,
    yet the arms differ in it. The row is kept, names the field and values, and is never decided."""
    rows = [("t", "b", fe, 10.0, rate, epochs, seed, acc + 0.01 * seed + 0.002 * (seed * seed % 3))
            for seed in range(3)
            for fe, rate, epochs, acc in (("diffres", 0.5, "30", 0.83), ("spec", 0.0, "12", 0.80),
                                          ("avgpool", 0.5, "30", 0.75))]
    df = pd.DataFrame(rows, columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "epochs", "seed",
                                     "test_metric"]).assign(fold=report.NO_FOLD)
    runs = report.Runs(df, (), len(df), 0, 0, varying=("epochs",))
    one, two = report.check_claims(runs, report.paper_claims("1", "2"))
    row = one.comparisons.iloc[0]
    assert row["verdict"] == NOT_COMPARABLE and row["not_comparable"] == "epochs: 30 vs 12"
    assert one.summary.n_not_run == 1 and np.isnan(row["p_holds"])
    assert two.comparisons["verdict"].tolist() == [stats.HOLDS] and two.comparisons["not_comparable"].tolist() == [""]


def test_unpaired_runs_and_non_finite_metrics_are_counted_per_arm():
    rows = [("t", "b", "spec", 10.0, 0.0, seed, 0.80 + 0.01 * seed) for seed in range(4)]
    rows += [("t", "b", "diffres", 10.0, 0.5, seed, 0.82 + 0.01 * seed + 0.001 * seed * seed) for seed in range(3)]
    rows += [("t", "b", "diffres", 10.0, 0.5, 7, 0.9)]  # no spec run of seed 7
    rows[1] = ("t", "b", "spec", 10.0, 0.0, 1, float("nan"))  # spec seed 1 logged no metric
    result = report.check_claims(make_runs(rows), report.paper_claims("1"))[0]
    row = result.comparisons.iloc[0]
    assert row["n_pairs"] == 2
    assert (row["unpaired_treatment"], row["unpaired_control"]) == (1, 1)  # diffres seed 7; spec seed 3
    assert (row["nonfinite_treatment"], row["nonfinite_control"]) == (0, 1)
