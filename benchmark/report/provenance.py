"""Which code, and which numerics, trained each run.

Code: its MLflow tag ``git_commit`` read against the current checkout.

The trainer tags a run with the HEAD sha, suffixed ``-dirty`` when the tree had uncommitted changes
("unknown" outside git). A run is

- ``clean-current``: its commit's training code equals the current HEAD's;
- ``dirty``: trained from uncommitted code (nobody can say which);
- ``stale``: a clean commit whose training code differs from HEAD's (``git diff --quiet <commit> HEAD --
  TRAINING_CODE``);
- ``unknown``: no tag, "unknown", or a commit this repository does not hold.

Only clean-current runs enter verdicts, controls and leaderboards unless the report is asked to include
the others (``build_report(include_stale=True)``, ``diffres-bench report --include-stale``).

Numerics: its ``numerics_*`` tags (``benchmark.numerics``), grouped by machine, thread count and canary
digest, each digest looked up among the committed canaries (``results/numerics/canary.csv``): a run whose
digest is committed was computed bit for bit like that machine's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.paths import CANARY_CSV, TRAINING_CODE  # the code that decides what a run learns, defined once
from benchmark.provenance import DIRTY_SUFFIX, UNKNOWN

CLEAN_CURRENT, DIRTY, STALE = "clean-current", "dirty", "stale"
PROVENANCES = (CLEAN_CURRENT, DIRTY, STALE, UNKNOWN)


def _git(repo: Path, *args: str) -> int:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode
    except FileNotFoundError:  # no git on this machine: nothing can be traced
        return -1


def classify(commit: str, repo: Path) -> str:
    """The provenance of one ``git_commit`` tag against ``repo``'s HEAD (see the module docstring)."""
    tag = (commit or "").strip()
    if tag.endswith(DIRTY_SUFFIX):
        return DIRTY
    if not tag or tag == UNKNOWN or _git(repo, "cat-file", "-e", f"{tag}^{{commit}}") != 0:
        return UNKNOWN
    code = _git(repo, "diff", "--quiet", tag, "HEAD", "--", *TRAINING_CODE)
    return CLEAN_CURRENT if code == 0 else STALE if code == 1 else UNKNOWN


def classify_commits(commits: Iterable[str], repo: Path) -> dict[str, str]:
    """``classify`` of each distinct tag (git runs once per tag, not per run)."""
    return {tag: classify(tag, repo) for tag in dict.fromkeys(commits)}


def provenance_column(git_commit: pd.Series, repo: Path) -> pd.Series:
    """Per run (same index): its provenance."""
    known = classify_commits(git_commit.fillna("").astype(str), repo)
    return git_commit.fillna("").astype(str).map(known)


def numerics_table(runs: pd.DataFrame, canary_csv: Path = CANARY_CSV) -> pd.DataFrame:
    """One row per CPU model x thread count x canary digest among ``runs`` (the report's runs table): how
    many runs, and which committed canary rows share the digest ("not committed" when none; "–" for runs
    without a digest: logged before it existed, or trained on a GPU)."""
    cols = ["numerics_cpu", "numerics_cpu_capability", "numerics_threads", "numerics_canary"]
    frame = pd.DataFrame({c: runs[c].fillna("").astype(str) if c in runs else "" for c in cols}, index=runs.index)
    committed = pd.read_csv(canary_csv, dtype=str).fillna("") if canary_csv.exists() else pd.DataFrame(
        columns=["digest", "cpu", "threads", "isa_env"])

    def committed_as(digest: str) -> str:
        if not digest:
            return "–"
        same = committed[committed["digest"] == digest]
        names = sorted({f"{r.cpu} ({r.threads} thread(s){', ' + r.isa_env if r.isa_env else ''})"
                        for r in same.itertuples(index=False)})
        return "; ".join(names) or "not committed"

    grouped = frame.groupby(cols, dropna=False).size().rename("runs").reset_index()
    grouped["committed_canary"] = grouped["numerics_canary"].map(committed_as)
    return grouped.sort_values(["runs", *cols], ascending=[False, True, True, True, True]).reset_index(drop=True)
