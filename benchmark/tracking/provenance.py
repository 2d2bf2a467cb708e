"""Which code a run was trained from: the checkout's commit, whether its training code is committed,
and the guard that keeps suites whose results are published from training uncommitted code.

A run is tagged with `git_commit` (`benchmark.training.train`): HEAD's sha, with "-dirty" when the training code
(`paths.TRAINING_CODE`: tracked changes or untracked files) differs from HEAD, "unknown" outside git. A
dirty run's code is in no commit, so nobody can train it again; `reproduce`, `study` and `worker` refuse
a dirty tree unless asked (`--allow-dirty`, or `DIFFRES_BENCH_ALLOW_DIRTY=1`, which local workers
inherit), and the report keeps dirty runs out of its verdicts (`benchmark.report`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from benchmark.paths import ALLOW_DIRTY_ENV, REPO_ROOT, TRAINING_CODE

DIRTY_SUFFIX = "-dirty"
UNKNOWN = "unknown"


class DirtyTreeError(ValueError):
    """The training code has uncommitted changes and the caller did not allow it."""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                          check=True).stdout


def changed_files(root: str | os.PathLike = REPO_ROOT) -> list[str]:
    """Training-code files that differ from HEAD (modified, staged, deleted or untracked, not ignored)."""
    out = _git(Path(root), "status", "--porcelain", "--untracked-files=all", "--", *TRAINING_CODE)
    return sorted(line[3:] for line in out.splitlines() if line.strip())


def git_commit(root: str | os.PathLike = REPO_ROOT) -> str:
    """HEAD, with "-dirty" when the training code differs from it; "unknown" outside a git checkout."""
    try:
        head = _git(Path(root), "rev-parse", "HEAD").strip()
        dirty = bool(changed_files(root))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return head + (DIRTY_SUFFIX if dirty else "")


def dirty_allowed() -> bool:
    return os.environ.get(ALLOW_DIRTY_ENV, "") == "1"


def require_clean_tree(allow_dirty: bool = False, root: str | os.PathLike = REPO_ROOT) -> str:
    """The commit runs will be tagged with; raises DirtyTreeError when the training code is uncommitted
    and neither `allow_dirty` nor $DIFFRES_BENCH_ALLOW_DIRTY=1 says otherwise. Outside git ("unknown")
    nothing can be checked and nothing is refused: such runs show as unknown provenance in the report."""
    commit = git_commit(root)
    if commit.endswith(DIRTY_SUFFIX) and not (allow_dirty or dirty_allowed()):
        files = changed_files(root)
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        raise DirtyTreeError(
            f"the training code in {root} has uncommitted changes ({shown}): runs trained from it could not "
            f"be traced to any commit. Commit first (then the runs carry that commit), or pass --allow-dirty "
            f"(or set {ALLOW_DIRTY_ENV}=1): the runs are then tagged {commit[:12]}…{DIRTY_SUFFIX} and the "
            f"report keeps them out of its verdicts unless asked")
    return commit
