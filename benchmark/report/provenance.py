"""Which code trained each run: its MLflow tag ``git_commit`` read against the current checkout.

The trainer tags a run with the HEAD sha, suffixed ``-dirty`` when the tree had uncommitted changes
("unknown" outside git). A run is

- ``clean-current``: its commit's training code equals the current HEAD's;
- ``dirty``: trained from uncommitted code (nobody can say which);
- ``stale``: a clean commit whose training code differs from HEAD's (``git diff --quiet <commit> HEAD --
  TRAINING_CODE``);
- ``unknown``: no tag, "unknown", or a commit this repository does not hold.

Only clean-current runs enter verdicts, controls and leaderboards unless the report is asked to include
the others (``build_report(include_stale=True)``, ``diffres-bench report --include-stale``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.paths import TRAINING_CODE  # the code that decides what a run learns, defined once
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
