"""Provenance on a real temporary git repository: clean-current, stale, dirty and unknown commits, and a report
that keeps every run but clean-current out of its verdicts unless asked."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from report_helpers import Study

from benchmark import report
from benchmark.report import provenance


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository with three commits: the first, one that changes only the report, one that changes training."""
    root = tmp_path / "repo"
    for path in ("diffres/model.py", "benchmark/training/train.py", "benchmark/report/markdown.py", "README.md"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("v1\n")
    _git(root.parent, "init", "-q", str(root))
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first")
    first = _git(root, "rev-parse", "HEAD")
    (root / "benchmark/report/markdown.py").write_text("v2\n")  # report code only: training code unchanged
    (root / "README.md").write_text("v2\n")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "report")
    report_only = _git(root, "rev-parse", "HEAD")
    (root / "benchmark/training/train.py").write_text("v2\n")  # training code changes
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "train")
    return root, first, report_only, _git(root, "rev-parse", "HEAD")


def test_each_commit_is_classified_against_head(repo):
    root, first, report_only, head = repo
    assert provenance.classify(head, root) == provenance.CLEAN_CURRENT
    assert provenance.classify(report_only, root) == provenance.STALE  # benchmark/training/train.py changed since
    assert provenance.classify(first, root) == provenance.STALE
    assert provenance.classify(head + "-dirty", root) == provenance.DIRTY
    assert provenance.classify("", root) == provenance.UNKNOWN
    assert provenance.classify("unknown", root) == provenance.UNKNOWN
    assert provenance.classify("0" * 40, root) == provenance.UNKNOWN  # not a commit of this repository
    assert provenance.classify(head, root.parent) == provenance.UNKNOWN  # not a git repository at all


def test_a_change_outside_the_training_code_keeps_a_run_current(repo):
    root, _, report_only, head = repo
    (root / "benchmark/training/train.py").write_text("v1\n")  # back to the old training code, committed
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "revert train")
    assert provenance.classify(report_only, root) == provenance.CLEAN_CURRENT  # only report code differs
    assert provenance.classify(head, root) == provenance.STALE


def _declare_neutral(root: Path, *commits: str) -> None:
    path = root / "results/numerics/neutral_commits.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("commit,subject,evidence\n" + "".join(f"{c},moved a module,8 of 8 runs identical\n"
                                                           for c in commits))


def test_a_run_is_equivalent_when_every_training_change_since_is_declared_neutral(repo):
    root, first, report_only, head = repo
    assert provenance.classify_commits([report_only], root) == {report_only: provenance.STALE}
    _declare_neutral(root, head)  # the one training-code commit since report_only (and since first)
    assert provenance.classify_commits([first, report_only, head], root) == {
        first: provenance.EQUIVALENT, report_only: provenance.EQUIVALENT, head: provenance.CLEAN_CURRENT}
    (root / "diffres/model.py").write_text("v3\n")  # a training change nobody declared
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "real change")
    assert provenance.classify_commits([report_only, head], root) == {report_only: provenance.STALE,
                                                                      head: provenance.STALE}
    # a commit off HEAD's history is never equivalent, even when it is declared
    _git(root, "checkout", "-q", "-b", "side", first)
    (root / "diffres/model.py").write_text("side\n")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "side")
    side = _git(root, "rev-parse", "HEAD")
    _git(root, "checkout", "-q", "-")
    _declare_neutral(root, head, side)
    assert provenance.classify(side, root, frozenset([head, side])) == provenance.STALE


def test_a_malformed_neutral_commits_file_is_an_error_naming_it(repo):
    root, _, report_only, _ = repo
    _declare_neutral(root, "abc123")
    with pytest.raises(ValueError, match=r"neutral_commits.csv: field 'commit', value 'abc123': a full 40-digit sha"):
        provenance.classify_commits([report_only], root)
    (root / "results/numerics/neutral_commits.csv").write_text("sha,why\n")
    with pytest.raises(ValueError, match=r"columns \['commit', 'subject', 'evidence'\] missing"):
        provenance.classify_commits([report_only], root)


def test_stale_runs_are_listed_and_kept_out_of_the_verdicts_unless_asked(repo, tmp_path):
    root, first, _, head = repo
    s = Study(tmp_path, suite="prov")
    stale_ids = []
    for seed in range(3):
        for fe, rate, acc in (("spec", 0.0, 0.80), ("diffres", 0.5, 0.83)):
            s.log("toy-b", fe, 10.0, rate, seed, accuracy=acc + 0.01 * seed + 0.001 * seed * seed, git_commit=head)
        stale_ids.append(s.log("toy-b", "avgpool", 10.0, 0.5, seed, accuracy=0.70 + 0.01 * seed, git_commit=first))
    paths = report.build_report("prov", s.uri, tmp_path / "results", tmp_path / "reports", repo=root)
    runs = pd.read_csv(paths.runs)
    assert dict(zip(runs["run_id"], runs["provenance"])) == {
        **{r: provenance.STALE for r in stale_ids},
        **{r: provenance.CLEAN_CURRENT for r in runs["run_id"] if r not in stale_ids}}
    assert set(runs.loc[runs["provenance"] == provenance.STALE, "git_commit"]) == {first}
    claims = pd.read_csv(paths.comparisons, dtype={"claim_id": str})
    assert "avgpool" not in " ".join(claims["control"]) and "2" not in set(claims["claim_id"])
    assert "avgpool" not in pd.read_csv(paths.leaderboard)["frontend"].tolist()
    text = paths.report.read_text()
    section = text.split("## Provenance")[1].split("## Run health")[0]
    assert all(r in section for r in stale_ids) and "clean-current: 6, stale: 3" in section
    assert "--include-stale" not in text.splitlines()[2]

    both = report.build_report("prov", s.uri, tmp_path / "r2", tmp_path / "p2", repo=root, include_stale=True)
    assert "2" in set(pd.read_csv(both.comparisons, dtype={"claim_id": str})["claim_id"])
    assert both.report.read_text().splitlines()[2].startswith("**This report was built with `--include-stale`")


def test_no_current_run_is_a_clear_error_naming_the_flag(repo, tmp_path):
    root, first, _, _ = repo
    s = Study(tmp_path, suite="old")
    s.log("toy-b", "spec", 10.0, 0.0, 0, git_commit=first)
    with pytest.raises(report.ReportDataError, match=r"none of the 1 runs .*--include-stale"):
        report.build_report("old", s.uri, tmp_path / "results", tmp_path / "reports", repo=root)


def test_the_numerics_table_names_the_committed_machine_each_digest_matches(tmp_path):
    canaries = tmp_path / "canary.csv"
    pd.DataFrame([{"digest": "aaaa", "cpu": "Intel X", "threads": "1", "isa_env": ""},
                  {"digest": "aaaa", "cpu": "Intel Y", "threads": "1", "isa_env": ""},
                  {"digest": "bbbb", "cpu": "AMD Z", "threads": "1", "isa_env": "MKL_CBWR=AVX2"}]).to_csv(canaries,
                                                                                                    index=False)
    runs = pd.DataFrame({"numerics_cpu": ["Intel X", "Intel X", "AMD Z", "AMD W", ""],
                         "numerics_cpu_capability": ["AVX512", "AVX512", "AVX2", "AVX2", ""],
                         "numerics_threads": ["1", "1", "1", "1", ""],
                         "numerics_canary": ["aaaa", "aaaa", "bbbb", "cccc", ""]})
    table = provenance.numerics_table(runs, canaries).set_index("numerics_canary")
    assert table.loc["aaaa", "runs"] == 2
    assert table.loc["aaaa", "committed_canary"] == "Intel X (1 thread(s)); Intel Y (1 thread(s))"
    assert table.loc["bbbb", "committed_canary"] == "AMD Z (1 thread(s), MKL_CBWR=AVX2)"
    assert table.loc["cccc", "committed_canary"] == "not committed"
    assert table.loc["", "committed_canary"] == "–"  # logged before the canary, or on a GPU
    assert provenance.numerics_table(runs.drop(columns="numerics_canary"), canaries)["committed_canary"].eq("–").all()


def test_the_engine_digest_decides_and_other_library_versions_make_a_run_stale(repo):
    """A run whose engine digest is the checkout's is current from any commit; one with another digest, or
    trained under another torch, is stale."""
    root, first, _, head = repo
    from benchmark.tracking.engine import dependency_versions, engine_digest

    now, versions = engine_digest(root), dependency_versions()
    runs = pd.DataFrame({"git_commit": [first, head, head, head],
                         "engine_digest": [now, "0" * 16, now, ""],
                         "torch_version": [versions["torch_version"]] * 2 + ["1.13.0", ""]})
    assert provenance.provenance_column(runs, root).tolist() == [
        provenance.CLEAN_CURRENT, provenance.STALE, provenance.STALE, provenance.CLEAN_CURRENT]


def test_a_recheck_at_the_checkouts_digest_makes_older_digests_equivalent(repo):
    """The tool reads the evidence: runs of digest d are clean-equivalent when the suite's recheck retrained runs of
    d under the checkout's digest and every one came out identical; one different rerun, or a recheck under
    another digest, is no evidence."""
    root, _, _, head = repo
    from benchmark.tracking.engine import engine_digest

    now = engine_digest(root)
    runs = pd.DataFrame({"git_commit": [head] * 3, "engine_digest": ["a" * 16, "b" * 16, "c" * 16]})
    recheck = pd.DataFrame({"committed_engine_digest": ["a" * 16, "a" * 16, "b" * 16, "b" * 16, "c" * 16],
                            "engine_digest": [now, now, now, now, "d" * 16],
                            "identical": [True, True, True, False, True]})
    assert provenance.rechecked_digests(recheck, now) == {"a" * 16}
    assert provenance.provenance_column(runs, root, recheck).tolist() == [
        provenance.EQUIVALENT, provenance.STALE, provenance.STALE]
    assert provenance.provenance_column(runs, root).tolist() == [provenance.STALE] * 3
    assert provenance.rechecked_digests(recheck.drop(columns="identical"), now) == frozenset()


def test_rechecks_chain_from_digest_to_digest_and_a_broken_step_stops_the_chain():
    """a -> b checked identical (say on the machine that trained a), b -> now checked identical (on another):
    runs of a and of b are equivalent to now; c -> a with one different rerun joins nothing."""
    now, a, b, c = "n" * 16, "a" * 16, "b" * 16, "c" * 16
    recheck = pd.DataFrame({"committed_engine_digest": [a, a, b, c, c],
                            "engine_digest": [b, b, now, a, a],
                            "identical": [True, True, True, True, False]})
    assert provenance.rechecked_digests(recheck, now) == {a, b}
    broken = recheck.assign(identical=[True, False, True, True, True])
    assert provenance.rechecked_digests(broken, now) == {b}
