"""Replication: every comparison decided on two disjoint halves of the seeds beside the full decision, and two
claims.csv files side by side."""

import pandas as pd
import pytest
from report_helpers import make_runs

from benchmark import report
from benchmark.report import replication, stats


def test_agreement_of_two_verdicts():
    h, r, i = stats.HOLDS, stats.REFUTED, stats.INCONCLUSIVE
    assert [replication.agreement(a, b) for a, b in ((h, h), (h, r), (r, h), (h, i), (i, i), (h, stats.NOT_RUN))] \
        == ["decided and agree", "flip", "flip", "decided in one only", "undecided in both", "not run"]
    assert replication.agreement(r, r) == replication.AGREE
    assert replication.seed_halves([4, 0, 2, 1, 3, 2]) == ([0, 2, 4], [1, 3])


def test_halves_are_decided_by_the_same_rule():
    # 6 seeds. DiffRes - avgpool: +0.1 on every seed (holds everywhere). DiffRes - changehop: +0.05 on seeds 0, 2,
    # 4 (half A) and -0.05 on 1, 3, 5 (half B): a flip, while all seeds together are inconclusive.
    rows = []
    for seed in range(6):
        wiggle = 0.001 * (seed % 3)
        rows += [("t", "b", "diffres", 10.0, 0.5, seed, 0.8 + 0.01 * seed),
                 ("t", "b", "avgpool", 10.0, 0.5, seed, 0.7 + 0.01 * seed + wiggle),
                 ("t", "b", "changehop", 10.0, 0.5, seed, 0.8 + 0.01 * seed + (-0.05 if seed % 2 == 0 else 0.05)
                  + wiggle)]
    claim2 = report.paper_claims("2")
    table = replication.replication(make_runs(rows), claim2, stats.DEFAULT_MARGIN).set_index("control")
    avg, hop = table.loc["avgpool @ 10 ms, δ=0.5"], table.loc["changehop @ 10 ms, δ=0.5"]
    assert (avg["verdict_full"], avg["verdict_a"], avg["verdict_b"], avg["agreement"]) == (
        stats.HOLDS, stats.HOLDS, stats.HOLDS, "decided and agree")
    assert (avg["agreement_a"], avg["agreement_b"]) == ("decided and agree", "decided and agree")
    assert (hop["verdict_a"], hop["verdict_b"], hop["agreement"]) == (stats.HOLDS, stats.REFUTED, "flip")
    assert hop["verdict_full"] == stats.INCONCLUSIVE  # each half against it: decided in one only
    assert (hop["agreement_a"], hop["agreement_b"]) == ("decided in one only", "decided in one only")
    assert replication.decided_agree(table) == 1 and replication.decided_agree(table, "agreement_b") == 1
    assert (avg["n_pairs_full"], avg["n_pairs_a"], avg["n_pairs_b"]) == (6, 3, 3)
    assert hop["mean_diff_a"] == pytest.approx(0.05 - 0.001) and table["source"].eq("claim 2").all()
    one_seed = make_runs([r for r in rows if r[5] == 0])  # half B empty: every comparison "not run" there
    assert set(replication.replication(one_seed, claim2, stats.DEFAULT_MARGIN)["n_pairs_b"]) == {0}
    assert replication.counts_text(table, half=True) == (
        "2 comparisons: 1 decided and agree, 0 undecided in both, 0 decided in one only, 1 flip, 0 not run at half n")


def test_the_report_writes_the_replication_table(study):
    _, _, paths = study
    table = pd.read_csv(paths.replication)
    assert list(table.columns) == replication.REPLICATION_COLUMNS
    claims = pd.read_csv(paths.comparisons)
    assert len(table) == len(claims)  # the tiny study has no control task
    # 3 seeds: half A holds seeds 0 and 2, half B seed 1 alone, which decides nothing
    assert set(table["n_pairs_b"]) == {1} and set(table["agreement"]) == {"not run"}
    text = paths.report.read_text()
    assert "## Replication on half the seeds" in text and "(A: 0, 2; B: 1)" in text


def test_two_claims_files_side_by_side(tmp_path):
    cols = ["claim_id", "task", "backbone", "treatment", "control", "verdict", "mean_diff", "n_pairs"]
    pd.DataFrame([["1", "t", "b", "d", "s", stats.HOLDS, 0.02, 5], ["2", "t", "b", "d", "a", stats.HOLDS, 0.03, 5]],
                 columns=cols).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame([["1", "t", "b", "d", "s", stats.INCONCLUSIVE, 0.01, 5],
                  ["3", "t", "b", "d", "x", stats.HOLDS, 0.1, 5]], columns=cols).to_csv(tmp_path / "b.csv", index=False)
    both = replication.compare_claims_files(tmp_path / "a.csv", tmp_path / "b.csv")
    assert both[["claim_id", "verdict_first", "verdict_second", "agreement"]].values.tolist() == [
        ["1", stats.HOLDS, stats.INCONCLUSIVE, "decided in one only"], ["2", stats.HOLDS, stats.NOT_RUN, "not run"],
        ["3", stats.NOT_RUN, stats.HOLDS, "not run"]]
    (tmp_path / "bad.csv").write_text("claim_id,verdict\n1,holds\n")
    with pytest.raises(ValueError, match=r"lacks columns .*expected a results/<suite>/claims.csv"):
        replication.compare_claims_files(tmp_path / "a.csv", tmp_path / "bad.csv")


def test_four_classes_on_a_synthetic_pair_of_claim_tables(tmp_path):
    cols = ["claim_id", "task", "backbone", "treatment", "control", "verdict", "mean_diff", "n_pairs"]
    h, r, i = stats.HOLDS, stats.REFUTED, stats.INCONCLUSIVE
    first = [h, h, r, i, h, i]
    second = [h, r, r, i, i, h]
    for name, verdicts in (("a", first), ("b", second)):
        pd.DataFrame([[str(k), "t", "b", "d", f"x{k}", v, 0.01, 5] for k, v in enumerate(verdicts)],
                     columns=cols).to_csv(tmp_path / f"{name}.csv", index=False)
    both = replication.compare_claims_files(tmp_path / "a.csv", tmp_path / "b.csv")
    assert both["agreement"].tolist() == ["decided and agree", "flip", "decided and agree", "undecided in both",
                                          "decided in one only", "decided in one only"]
    assert replication.decided_agree(both) == 2
    assert replication.counts_text(both) == ("6 comparisons: 2 decided and agree, 1 undecided in both, "
                                             "2 decided in one only, 1 flip, 0 not run")


def test_two_controls_files_side_by_side(tmp_path):
    cols = ["task", "kind", "backbone", "treatment", "control", "verdict", "mean_diff", "n_pairs"]
    pd.DataFrame([["t", "negative", "b", "d", "s", stats.INCONCLUSIVE, 0.0, 5],
                  ["t", "a/a", "b", "d (seeds 0, 1)", "d (seeds 2, 3)", stats.HOLDS, 0.02, 2]],
                 columns=cols).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame([["t", "negative", "b", "d", "s", stats.INCONCLUSIVE, 0.01, 5],
                  ["t", "a/a", "b", "d (seeds 0, 1)", "d (seeds 2, 3)", stats.INCONCLUSIVE, 0.0, 2]],
                 columns=cols).to_csv(tmp_path / "b.csv", index=False)
    both = replication.compare_claims_files(tmp_path / "a.csv", tmp_path / "b.csv")  # what compare-claims calls
    assert both.equals(replication.compare_controls_files(tmp_path / "a.csv", tmp_path / "b.csv"))
    assert both[["kind", "agreement"]].values.tolist() == [["a/a", "decided in one only"],
                                                           ["negative", "undecided in both"]]


def test_two_runs_files_run_by_run_through_the_cli(tmp_path, capsys):
    from benchmark.cli import main

    cols = ["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed", "fold", "test_metric", "used",
            "config_hash"]
    pd.DataFrame([["t", "b", "spec", 10, 0.0, 0, "", 0.9, True, "h0"],
                  ["t", "b", "spec", 10, 0.0, 1, "", 0.8, True, "h1"],
                  ["t", "b", "spec", 10, 0.0, 1, "", 0.1, False, "h1"],  # a duplicate the report set aside
                  ["t", "b", "avgpool", 10, 0.5, 0, "", 0.7, True, "h3"]], columns=cols).to_csv(tmp_path / "a.csv",
                                                                                                index=False)
    pd.DataFrame([["t", "b", "spec", 10, 0.0, 0, "", 0.9, True, "h0"],
                  ["t", "b", "spec", 10, 0.0, 1, "", 0.85, True, "h1"],
                  ["t", "b", "spec", 10, 0.0, 2, "", 0.5, True, "h2"]], columns=cols).to_csv(tmp_path / "b.csv",
                                                                                            index=False)
    a, b, c = (str(tmp_path / f"{n}.csv") for n in "abc")
    assert main(["compare-runs", a, b, "--out", c]) == 0
    assert "2 runs in both (same config_hash): 1 identical" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "c.csv")
    assert len(table) == 4
    row = table[(table["frontend"] == "spec") & (table["seed"] == 1)].iloc[0]
    assert row["diff"] == pytest.approx(0.05) and not row["identical"]
    assert row["config_hash_first"] == row["config_hash_second"] == "h1"
    assert set(table.loc[table["config_hash_first"].isna() | table["config_hash_second"].isna(), "differs"]) == \
        {replication.NO_COUNTERPART}
    with pytest.raises(FileNotFoundError, match="runs file not found"):
        replication.compare_runs_files(tmp_path / "a.csv", tmp_path / "missing.csv")
    pd.read_csv(tmp_path / "a.csv").drop(columns="config_hash").to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks columns \['config_hash'\]"):
        replication.compare_runs_files(tmp_path / "old.csv", tmp_path / "b.csv")


def test_runs_of_differing_configs_are_not_paired(tmp_path, capsys):
    # The same task x backbone x front-end x hop x delta x seed, trained 5 epochs on 256 clips in one file and
    # with the suite's recipe in the other: two configs (two hashes), never one pair with a difference.
    from benchmark.cli import main

    cols = ["task", "backbone", "frontend", "hop_ms", "reduction_rate", "min_epochs", "seed", "fold", "test_metric",
            "config_hash"]
    pd.DataFrame([["t", "b", "spec", 10, 0.0, 10, 0, "", 0.9, "aaa"],
                  ["t", "b", "spec", 10, 0.0, 10, 1, "", 0.8, "bbb"]],
                 columns=cols).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame([["t", "b", "spec", 10, 0.0, 10, 0, "", 0.4, "ccc"],
                  ["t", "b", "spec", 10, 0.0, 2, 1, "", 0.3, "ddd"]],
                 columns=cols).to_csv(tmp_path / "b.csv", index=False)
    table = replication.compare_runs_files(tmp_path / "a.csv", tmp_path / "b.csv")
    assert len(table) == 4 and table["diff"].isna().all() and not table["identical"].any()
    by_hash = {(r.config_hash_first if isinstance(r.config_hash_first, str) else r.config_hash_second): r.differs
               for r in table.itertuples()}
    assert by_hash == {"aaa": replication.HIDDEN_FIELDS, "ccc": replication.HIDDEN_FIELDS,
                       "bbb": "min_epochs", "ddd": "min_epochs"}
    a, b, c = (str(tmp_path / f"{n}.csv") for n in "abc")
    assert main(["compare-runs", a, b, "--out", c]) == 0
    out = capsys.readouterr().out
    assert "0 runs in both (same config_hash): 0 identical; 4 in one file only (4 whose setting the other file " \
           "ran with another config, not compared: min_epochs, fields runs.csv does not hold)" in out
    assert {"config_hash_first", "config_hash_second", "differs"} <= set(pd.read_csv(c).columns)
