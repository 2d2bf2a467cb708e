"""Do the decisions replicate? Every claim comparison and control comparison decided again on two disjoint
halves of the seeds, and two claims.csv files (a run and its rerun) side by side.

Halves: the suite's distinct seeds, sorted, split by position — half A the 1st, 3rd, 5th, ... seed, half B
the 2nd, 4th, ... — so every pair (seed, fold) falls in exactly one half and each half keeps every fold of
its seeds. Each half is decided by exactly the full report's rule (its own Holm families), and each half's
decision is classed against the FULL decision (``agreement_a``, ``agreement_b``) as well as against the
other half (``agreement``).

Two decisions of one comparison fall in one of four classes (``agreement``): ``decided and agree`` (both
decided, the same verdict); ``undecided in both`` (both inconclusive); ``decided in one only`` (one holds
or is refuted, the other is inconclusive); ``flip`` (one holds, the other is refuted). Only the first is a
replicated finding (``decided_agree``, the headline number); ``undecided in both`` agrees but finds
nothing. Outside the four, ``not run`` when either side could not be decided at all (fewer than 2 pairs,
not comparable, or missing).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from benchmark.report import stats
from benchmark.report.aacontrol import AAControl, check_aa, second_streams_apart
from benchmark.report.claims import Claim
from benchmark.report.controls import check_controls
from benchmark.report.judging import check_claims
from benchmark.report.runs import Runs

KEYS = ["source", "task", "backbone", "treatment", "control"]
AGREE, UNDECIDED_BOTH, ONE_ONLY, FLIP = "decided and agree", "undecided in both", "decided in one only", "flip"
NOT_RUN = "not run"
AGREEMENTS = (AGREE, UNDECIDED_BOTH, ONE_ONLY, FLIP, NOT_RUN)
HALVES = ("a", "b")
REPLICATION_COLUMNS = [*KEYS, "verdict_full", "n_pairs_full", "mean_diff_full",
                       *[f"{c}_{h}" for h in HALVES for c in ("verdict", "n_pairs", "mean_diff")], "agreement",
                       *[f"agreement_{h}" for h in HALVES]]


def agreement(first: str, second: str) -> str:
    """Which of the four classes two verdicts of one comparison fall in, or ``not run`` (module docstring)."""
    if first not in stats.VERDICTS or second not in stats.VERDICTS:
        return NOT_RUN
    decided = (first != stats.INCONCLUSIVE) + (second != stats.INCONCLUSIVE)
    if decided == 0:
        return UNDECIDED_BOTH
    if decided == 1:
        return ONE_ONLY
    return AGREE if first == second else FLIP


def seed_halves(seeds) -> tuple[list[int], list[int]]:
    """The distinct seeds, sorted, at even positions (half A) and odd positions (half B)."""
    ordered = sorted({int(s) for s in seeds})
    return ordered[0::2], ordered[1::2]


def decisions(runs: Runs, claims: list[Claim], margin: float, aa: tuple[AAControl, ...] = (),
              aa_runs: Runs | None = None) -> pd.DataFrame:
    """One row per decided comparison (claims and controls, A/A ones included): KEYS, verdict, n_pairs, mean_diff.
    ``aa_runs``: the runs the A/A controls read (default ``runs``)."""
    paired = second_streams_apart(runs, aa)
    frames = [r.comparisons.assign(source=f"claim {r.claim.claim_id}") for r in check_claims(paired, claims, margin)]
    frames += [c.comparisons.assign(source=f"{c.kind} control")
               for c in [*check_controls(paired), *check_aa(runs if aa_runs is None else aa_runs, aa)]]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*KEYS, "verdict", "n_pairs", "mean_diff"])
    return pd.concat(frames, ignore_index=True)[[*KEYS, "verdict", "n_pairs", "mean_diff"]]


def replication(runs: Runs, claims: list[Claim], margin: float, aa: tuple[AAControl, ...] = ()) -> pd.DataFrame:
    """REPLICATION_COLUMNS: each comparison decided on all seeds and on each half of them, with the class of half
    A against half B (``agreement``) and of each half against the full decision (``agreement_a``, ``_b``).
    An A/A control's halves are its pairs at even and at odd positions of its streams."""
    table = decisions(runs, claims, margin, aa).rename(columns={"verdict": "verdict_full", "n_pairs": "n_pairs_full",
                                                            "mean_diff": "mean_diff_full"})
    for position, (half, seeds) in enumerate(zip(HALVES, seed_halves(runs.table["seed"]), strict=True)):
        part = dataclasses.replace(runs, table=runs.table[runs.table["seed"].isin(seeds)].reset_index(drop=True))
        decided = decisions(part, claims, margin, _aa_half(aa, position), runs) if len(part.table) else \
            pd.DataFrame(columns=[*KEYS, "verdict", "n_pairs", "mean_diff"])  # one seed: half B is empty
        decided = decided.rename(columns={c: f"{c}_{half}" for c in ("verdict", "n_pairs", "mean_diff")})
        table = table.merge(decided, on=KEYS, how="left")
    for half in HALVES:
        table[f"verdict_{half}"] = table[f"verdict_{half}"].fillna(stats.NOT_RUN)
        table[f"n_pairs_{half}"] = table[f"n_pairs_{half}"].fillna(0).astype(int)
    table["agreement"] = [agreement(a, b) for a, b in zip(table["verdict_a"], table["verdict_b"], strict=True)]
    for half in HALVES:
        table[f"agreement_{half}"] = [agreement(f, h) for f, h in zip(table["verdict_full"], table[f"verdict_{half}"],
                                                                      strict=True)]
    return table[REPLICATION_COLUMNS].sort_values(KEYS, kind="mergesort").reset_index(drop=True)


def _aa_half(aa: tuple[AAControl, ...], position: int) -> tuple[AAControl, ...]:
    """Each A/A control on its pairs at even (half A) or odd (half B) positions of its streams: the two seeds of a
    pair need not fall in the same half of the suite's seeds."""
    return tuple(dataclasses.replace(c, streams=(c.streams[0][position::2], c.streams[1][position::2])) for c in aa)


def agreement_counts(table: pd.DataFrame, column: str = "agreement") -> dict[str, int]:
    """How many rows of a replication or comparison table per class of ``column``, in AGREEMENTS order."""
    return {a: int((table[column] == a).sum()) for a in AGREEMENTS}


def decided_agree(table: pd.DataFrame, column: str = "agreement") -> int:
    """The headline number: comparisons decided the same way by both decisions ("decided and agree")."""
    return agreement_counts(table, column)[AGREE]


COMPARE_KEYS = ["claim_id", "task", "backbone", "treatment", "control"]
CONTROL_COMPARE_KEYS = ["kind", "task", "backbone", "treatment", "control"]


def compare_claims_files(first: Path, second: Path) -> pd.DataFrame:
    """Two claims.csv files (e.g. a run and its rerun on other seeds or another machine) side by side: one row
    per comparison in either, with each file's verdict, mean difference and n pairs, and their class
    (a comparison only one file has is "not run" in the other). Two controls.csv files (column ``kind``, no
    ``claim_id``) are compared the same way, keyed by the control's kind (``compare_controls_files``)."""
    if all(Path(p).is_file() for p in (first, second)) and all(
            "claim_id" not in _header(p) and "kind" in _header(p) for p in (first, second)):
        return compare_controls_files(first, second)
    return _side_by_side(first, second, COMPARE_KEYS, "claims")


def compare_controls_files(first: Path, second: Path) -> pd.DataFrame:
    """Two controls.csv files side by side, as ``compare_claims_files`` does claims, keyed by kind and arms."""
    return _side_by_side(first, second, CONTROL_COMPARE_KEYS, "controls")


def _header(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns)


def _side_by_side(first: Path, second: Path, keys: list[str], kind: str) -> pd.DataFrame:
    tables = []
    for path in (first, second):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{kind} file not found: {path}")
        t = pd.read_csv(path, dtype={"claim_id": str})
        missing = set(keys + ["verdict", "mean_diff", "n_pairs"]) - set(t.columns)
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; expected a results/<suite>/{kind}.csv")
        tables.append(t[[*keys, "verdict", "mean_diff", "n_pairs"]])
    both = tables[0].merge(tables[1], on=keys, how="outer", suffixes=("_first", "_second"))
    for side in ("first", "second"):
        both[f"verdict_{side}"] = both[f"verdict_{side}"].fillna(stats.NOT_RUN)
        both[f"n_pairs_{side}"] = both[f"n_pairs_{side}"].fillna(0).astype(int)
    both["agreement"] = [agreement(a, b) for a, b in zip(both["verdict_first"], both["verdict_second"], strict=True)]
    both["mean_diff_first"] = both["mean_diff_first"].astype(float).round(6)
    both["mean_diff_second"] = both["mean_diff_second"].astype(float).round(6)
    columns = [*keys, "verdict_first", "verdict_second", "mean_diff_first", "mean_diff_second",
               "n_pairs_first", "n_pairs_second", "agreement"]
    return both[columns].sort_values(keys, kind="mergesort").reset_index(drop=True)


def counts_text(table: pd.DataFrame, half: bool = False, column: str = "agreement") -> str:
    """e.g. "12 comparisons: 8 decided and agree, 2 undecided in both, 1 decided in one only, 1 flip, 0 not run"."""
    counts = agreement_counts(table, column)
    names = {NOT_RUN: "not run at half n" if half else NOT_RUN}
    return f"{len(table)} comparisons: " + ", ".join(f"{n} {names.get(a, a)}" for a, n in counts.items())



RUN_KEYS = ["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed", "fold"]
NO_COUNTERPART = "no run of this setting in the other file"
HIDDEN_FIELDS = "fields runs.csv does not hold (config_hash differs)"


def compare_runs_files(first: Path, second: Path) -> pd.DataFrame:
    """Two runs.csv files (e.g. the committed one and yours) run by run, paired on `config_hash` (a run's
    identity: every RunConfig field), never on a subset of the fields: one row per config hash that either file
    used, with RUN_KEYS (plus `filterbank` where both have it), each file's hash and test metric, their
    difference (second − first), whether they are equal to the digit the CSVs hold (`identical`) and, for a
    row only one file has, which config fields differ from the other file's runs of the same setting
    (`differs`: the RunConfig columns both files hold that differ, else HIDDEN_FIELDS, or NO_COUNTERPART)."""
    from benchmark.config import field_names

    tables = []
    for path in (first, second):
        if not Path(path).is_file():
            raise FileNotFoundError(f"runs file not found: {path}")
        t = pd.read_csv(path, dtype={"fold": str, "config_hash": str})
        missing = set(RUN_KEYS + ["test_metric", "config_hash"]) - set(t.columns)
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; expected a results/<suite>/runs.csv")
        if "used" in t.columns:  # duplicates a report set aside are not the run it decided on
            t = t[t["used"].astype(str).str.lower() == "true"]
        t = t.copy()
        t["fold"] = t["fold"].fillna("")
        tables.append(t.reset_index(drop=True))
    keys = RUN_KEYS + (["filterbank"] if all("filterbank" in t.columns for t in tables) else [])
    # Config fields both files show (the varying ones a report writes); compared as text, as the CSVs hold them.
    shown = [c for c in field_names() if c not in keys and all(c in t.columns for t in tables)]
    rows = []
    for side, (own, other) in enumerate(((tables[0], tables[1]), (tables[1], tables[0]))):
        other_hashes = set(other["config_hash"])
        for _, run in own.iterrows():
            matched = run["config_hash"] in other_hashes
            if matched and side == 1:
                continue  # written once, from the first file
            row = {k: run[k] for k in keys}
            match = other[other["config_hash"] == run["config_hash"]].iloc[0] if matched else None
            hashes = (run["config_hash"], match["config_hash"] if matched else None)
            metrics = (run["test_metric"], match["test_metric"] if matched else float("nan"))
            if side == 1:
                hashes, metrics = hashes[::-1], metrics[::-1]
            row.update(config_hash_first=hashes[0], config_hash_second=hashes[1], test_metric_first=metrics[0],
                       test_metric_second=metrics[1],
                       differs="" if matched else _differing_fields(run, other, keys, shown))
            rows.append(row)
    both = pd.DataFrame(rows, columns=[*keys, "config_hash_first", "config_hash_second", "test_metric_first",
                                       "test_metric_second", "differs"])
    both["diff"] = (both["test_metric_second"].astype(float) - both["test_metric_first"].astype(float)).round(6)
    both["identical"] = both["diff"].eq(0)
    columns = [*keys, "config_hash_first", "config_hash_second", "test_metric_first", "test_metric_second", "diff",
               "identical", "differs"]
    return both[columns].sort_values([*keys, "config_hash_first", "config_hash_second"], kind="mergesort",
                                     na_position="last").reset_index(drop=True)


def _differing_fields(run: pd.Series, other: pd.DataFrame, keys: list[str], shown: list[str]) -> str:
    """What sets `run` apart from the other file's runs of its setting (same `keys`)."""
    same = other[(other[keys].astype(str) == run[keys].astype(str)).all(axis=1)]
    if same.empty:
        return NO_COUNTERPART
    fields = sorted({c for _, o in same.iterrows() for c in shown if not _same_value(o[c], run[c])})
    return ", ".join(fields) if fields else HIDDEN_FIELDS


def runs_counts_text(table: pd.DataFrame) -> str:
    """e.g. "145 runs in both (same config_hash): 140 identical; |diff| median 0, max 0.02; 30 in one file only
    (12 whose setting the other file ran with another config: epochs, lr)"."""
    common = table.dropna(subset=["test_metric_first", "test_metric_second"])
    diff = common["diff"].abs()
    text = f"{len(common)} runs in both (same config_hash): {int(common['identical'].sum())} identical"
    if len(common):
        text += f"; |diff| median {diff.median():.3g}, 90th percentile {diff.quantile(0.9):.3g}, max {diff.max():.3g}"
    alone = table.drop(common.index)
    text += f"; {len(alone)} in one file only"
    other_config = alone[alone["differs"] != NO_COUNTERPART]
    if len(other_config):
        fields = sorted({f for d in other_config["differs"] for f in d.split(", ") if d != HIDDEN_FIELDS})
        hidden = (other_config["differs"] == HIDDEN_FIELDS).any()
        named = ", ".join(fields + (["fields runs.csv does not hold"] if hidden else []))
        text += (f" ({len(other_config)} whose setting the other file ran with another config, not compared: "
                 f"{named})")
    return text


def _same_value(a: object, b: object) -> bool:
    """Equal as numbers where both read as numbers (10 and 10.0), else as text; two blanks are equal."""
    if pd.isna(a) and pd.isna(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
