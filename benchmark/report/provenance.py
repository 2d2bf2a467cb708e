"""Which code, which libraries and which numerics trained each run.

Code: the run's ``engine_digest`` tag (``benchmark.tracking.engine``: the code that can move a number, its
docstrings and comments dropped) against the checkout's, and, for runs logged before that tag, its
``git_commit`` tag read against the checkout. Libraries: the run's ``<package>_version`` tags against the
installed versions of torch, torchaudio, timm and numpy: a run trained under other versions is ``stale``.

A run whose engine digest is the checkout's is ``clean-current`` whatever its commit (a commit that only
moved prose or code outside the engine needs no declaration); one whose digest differs is
``clean-equivalent`` when the suite's recheck retrained runs of its digest under the checkout's, every one
identical (``rechecked_digests``), and ``stale`` otherwise.

The trainer tags a run with the HEAD sha, suffixed ``-dirty`` when the tree had uncommitted changes
("unknown" outside git). A run is

- ``clean-current``: its commit's training code equals the current HEAD's;
- ``clean-equivalent``: its commit is an ancestor of HEAD, and every commit since then that touched the
  training code is declared numerics-neutral in ``results/numerics/neutral_commits.csv`` (a structural
  change: moved modules, new checks, new tools), each with the evidence that it moves no number (stored
  runs retrained at that commit, identical to the last digit; the canary digest unchanged);
- ``dirty``: trained from uncommitted code (nobody can say which);
- ``stale``: a clean commit whose training code differs from HEAD's (``git diff --quiet <commit> HEAD --
  TRAINING_CODE``) by a commit not declared neutral;
- ``unknown``: no tag, "unknown", or a commit this repository does not hold.

Only clean-current and clean-equivalent runs enter verdicts, controls and leaderboards unless the report
is asked to include the others (``build_report(include_stale=True)``, ``diffres-bench report
--include-stale``).

Numerics: its ``numerics_*`` tags (``benchmark.tracking.numerics``), grouped by machine, thread count and canary
digest, each digest looked up among the committed canaries (``results/numerics/canary.csv``): a run whose
digest is committed was computed bit for bit like that machine's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.paths import CANARY_CSV, NEUTRAL_COMMITS, TRAINING_CODE  # the code that decides what a run learns
from benchmark.tracking.engine import dependency_versions, engine_digest, same_version
from benchmark.tracking.provenance import DIRTY_SUFFIX, UNKNOWN

CLEAN_CURRENT, EQUIVALENT, DIRTY, STALE = "clean-current", "clean-equivalent", "dirty", "stale"
DECIDABLE = (CLEAN_CURRENT, EQUIVALENT)  # what verdicts read unless asked for more
NEUTRAL_COLUMNS = ["commit", "subject", "evidence"]


def _git(repo: Path, *args: str) -> int:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode
    except FileNotFoundError:  # no git on this machine: nothing can be traced
        return -1


def _git_lines(repo: Path, *args: str) -> list[str] | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return done.stdout.split() if done.returncode == 0 else None


def neutral_commits(repo: Path) -> pd.DataFrame:
    """The commits declared numerics-neutral in ``repo`` (``NEUTRAL_COMMITS``, NEUTRAL_COLUMNS; empty when the
    file is absent). A malformed file is an error naming it: a silent misread would move verdicts."""
    path = Path(repo) / NEUTRAL_COMMITS
    if not path.is_file():
        return pd.DataFrame(columns=NEUTRAL_COLUMNS)
    table = pd.read_csv(path, dtype=str).fillna("")
    missing = [c for c in NEUTRAL_COLUMNS if c not in table.columns]
    bad = table[~table.get("commit", pd.Series(dtype=str)).str.fullmatch(r"[0-9a-f]{40}")] if not missing else None
    if missing or (bad is not None and len(bad)):
        raise ValueError(f"{path}: " + (f"columns {missing} missing (expected {NEUTRAL_COLUMNS})" if missing else
                                        f"field 'commit', value {bad['commit'].iloc[0]!r}: a full 40-digit sha"))
    return table


def classify(commit: str, repo: Path, neutral: frozenset[str] = frozenset()) -> str:
    """The provenance of one ``git_commit`` tag against ``repo``'s HEAD (see the module docstring); ``neutral``:
    the full shas declared numerics-neutral."""
    tag = (commit or "").strip()
    if tag.endswith(DIRTY_SUFFIX):
        return DIRTY
    if not tag or tag == UNKNOWN or _git(repo, "cat-file", "-e", f"{tag}^{{commit}}") != 0:
        return UNKNOWN
    code = _git(repo, "diff", "--quiet", tag, "HEAD", "--", *TRAINING_CODE)
    if code == 0:
        return CLEAN_CURRENT
    if code != 1:
        return UNKNOWN
    if neutral and _git(repo, "merge-base", "--is-ancestor", tag, "HEAD") == 0:
        since = _git_lines(repo, "rev-list", f"{tag}..HEAD", "--", *TRAINING_CODE)
        if since and set(since) <= neutral:
            return EQUIVALENT
    return STALE


def classify_commits(commits: Iterable[str], repo: Path) -> dict[str, str]:
    """``classify`` of each distinct tag (git runs once per tag, not per run)."""
    neutral = frozenset(neutral_commits(repo)["commit"])
    return {tag: classify(tag, repo, neutral) for tag in dict.fromkeys(commits)}


RECHECK_COLUMNS = {"committed_engine_digest", "engine_digest", "identical"}


def rechecked_digests(recheck: pd.DataFrame | None, current: str) -> frozenset[str]:
    """The engine digests a suite's recheck (``results/<suite>/recheck.csv``, ``benchmark.benches.recheck``) shows
    to compute what the checkout's digest ``current`` computes: runs trained at digest A, retrained at digest B,
    every one identical, make A and B equivalent; the answer is every digest joined to ``current`` by a chain of
    such steps (an engine change checked on one machine after another: each step's rows name their machine).
    The tool reads the evidence; nobody declares it."""
    if recheck is None or not RECHECK_COLUMNS <= set(recheck.columns):
        return frozenset()
    rows = recheck[recheck["committed_engine_digest"].notna() & recheck["engine_digest"].notna()]
    steps = rows.groupby([rows["committed_engine_digest"].astype(str), rows["engine_digest"].astype(str)])[
        "identical"].agg(lambda s: bool(s.astype(str).eq("True").all()))
    older: dict[str, set[str]] = {}  # rerun digest -> the committed digests it reproduced
    for (committed, rerun), ok in steps.items():
        if ok and committed and committed != rerun:
            older.setdefault(rerun, set()).add(committed)
    found, todo = set(), [current]
    while todo:
        for digest in older.get(todo.pop(), ()):
            if digest not in found and digest != current:
                found.add(digest)
                todo.append(digest)
    return frozenset(found)


def provenance_column(runs: pd.DataFrame, repo: Path, recheck: pd.DataFrame | None = None) -> pd.Series:
    """Per run (same index as ``runs``, which holds ``git_commit`` and, for newer runs, ``engine_digest`` and
    the ``<package>_version`` tags): its provenance (module docstring); ``recheck``: the suite's recheck.csv."""
    def tag(name: str) -> pd.Series:
        values = runs[name] if name in runs else pd.Series("", index=runs.index)
        return pd.Series(values.fillna("").astype(str).to_numpy(dtype=object), index=runs.index)

    commits, digests = tag("git_commit"), tag("engine_digest")
    out = commits.map(classify_commits(commits, repo))
    has_digest = (digests != "").to_numpy(dtype=bool)
    out[has_digest & (out == CLEAN_CURRENT).to_numpy(dtype=bool)] = STALE  # its engine is not the checkout's...
    current = engine_digest(Path(repo))
    out[has_digest & digests.isin(rechecked_digests(recheck, current)).to_numpy(dtype=bool)] = EQUIVALENT
    out[has_digest & (digests == current).to_numpy(dtype=bool)] = CLEAN_CURRENT  # ...or it is
    for name, installed in dependency_versions().items():
        other = ~tag(name).map(lambda v, i=installed: same_version(v, i)).to_numpy(dtype=bool)
        out[other & out.isin(DECIDABLE).to_numpy(dtype=bool)] = STALE
    return out


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
