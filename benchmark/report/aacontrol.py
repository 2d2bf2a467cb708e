"""The A/A null control: one setting trained twice, on two disjoint seed streams, decided against itself.

A suite YAML declares it (``aa_control``, kept as written by ``benchmark.study.suites``)::

    aa_control:
      - {task: esc50, frontend: diffres, hop_ms: 10, reduction_rate: 0.5, streams: [[0, 1, 2], [10, 11, 12]]}

Each entry is a setting (RunConfig fields: task, frontend, hop_ms, reduction_rate, ...; the runs of those
values) and two equally long seed streams; the grid points themselves are ordinary entries the suite's grids
already list. Stream A's i-th seed is paired with stream B's i-th seed (each fold with the same fold), and the
difference A − B is decided by the claims' rule (``verdicts.decide_table``, superiority, which decides
either way: "holds" is A better, "refuted" B better), Holm over every A/A comparison of the suite. Both arms
are the same setting, so there is nothing to find: any decided comparison is a false detection, and the
share of them over many suites estimates the rule's real false-detection rate (nominal: at most 2 × 0.025
per family).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.controls import (
    AA,
    CONTROL_COLUMNS,
    FALSELY_DETECTED,
    PASSED,
    ControlResult,
    control_line,
)
from benchmark.report.health import is_untrained
from benchmark.report.pairs import PAIR_TABLE_COLUMNS
from benchmark.report.predictions import correctness
from benchmark.report.runs import PAIR_KEYS, ReportDataError, Runs
from benchmark.report.verdicts import PAIRS, decide_table

STREAMS = "streams"


@dataclass(frozen=True)
class AAControl:
    """One A/A control: the setting's (field, value) pairs and the two seed streams, paired by position."""

    setting: tuple[tuple[str, object], ...]
    streams: tuple[tuple[int, ...], tuple[int, ...]]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.setting if k != "task")

    @property
    def task(self) -> str:
        return str(dict(self.setting).get("task", ""))


def parse_aa_controls(entries: Sequence[object], where: str) -> list[AAControl]:
    """The suite file's ``aa_control`` entries, validated; errors name ``where``, the entry and the value."""
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}: aa_control[{i}]"
        if not isinstance(entry, Mapping) or "task" not in entry or STREAMS not in entry:
            raise ReportDataError(f"{at}={entry!r}: expected a mapping with `task`, the setting's other fields and "
                                  "`streams: [[seeds of A], [seeds of B]]`")
        streams = entry[STREAMS]
        ok = (isinstance(streams, Sequence) and len(streams) == 2
              and all(isinstance(s, Sequence) and all(isinstance(x, int) and not isinstance(x, bool) for x in s)
                      for s in streams))
        if not ok or len(streams[0]) != len(streams[1]) or len(streams[0]) < 2 \
                or set(streams[0]) & set(streams[1]):
            raise ReportDataError(f"{at}: streams={streams!r}: expected two disjoint, equally long lists of >= 2 "
                                  "integer seeds")
        setting = tuple(sorted((str(k), v) for k, v in entry.items() if k != STREAMS))
        out.append(AAControl(setting, (tuple(streams[0]), tuple(streams[1]))))
    return out


def matches_setting(table: pd.DataFrame, setting: tuple[tuple[str, object], ...]) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for key, value in setting:
        if key not in table.columns:  # a field the suite does not vary: every run has the value it set
            continue
        column = table[key]
        mask &= (pd.to_numeric(column, errors="coerce") == float(value)) if isinstance(value, (int, float)) \
            else (column.astype(str) == str(value))
    return mask


def second_streams_apart(runs: Runs, controls: Sequence[AAControl]) -> Runs:
    """``runs`` less the runs that only an A/A control's second stream holds (its setting, a seed of stream B
    that stream A lacks): they serve the A/A control alone, so the claims and the other controls never see them
    as runs without a partner."""
    if not controls:
        return runs
    table = runs.table
    drop = pd.Series(False, index=table.index)
    for c in controls:
        only_b = sorted(set(c.streams[1]) - set(c.streams[0]))
        drop |= matches_setting(table, c.setting) & table["seed"].isin(only_b)
    return dataclasses.replace(runs, table=table[~drop].reset_index(drop=True))


def aa_comparisons(runs: Runs, control: AAControl) -> pd.DataFrame:
    """One row (PAIR_TABLE_COLUMNS plus ``pairs``): stream A − stream B over the paired seeds and folds."""
    table = runs.table if "config_hash" in runs.table.columns else \
        runs.table.assign(config_hash=[f"row:{i}" for i in runs.table.index])
    if "trained" not in table.columns:
        table = table.assign(trained=np.nan)
    rows = table[matches_setting(table, control.setting)]
    arms = []
    for stream in control.streams:
        order = {seed: i for i, seed in enumerate(stream)}
        arm = rows[rows["seed"].isin(order)]
        arms.append(arm.assign(position=arm["seed"].map(order)))
    a, b = arms
    several = [k for k in ("backbone", "frontend") if k in rows.columns and rows[k].nunique() > 1]
    merged = a.merge(b, on=["position", "fold"], suffixes=("_t", "_c"))
    finite = np.isfinite(merged["test_metric_t"]) & np.isfinite(merged["test_metric_c"])
    ok = merged[finite]
    d = stats.paired_difference(ok["test_metric_t"], ok["test_metric_c"])
    # the arms are named by stream, not by their seeds, so that the halves' decisions line up with the full one
    row = {"task": control.task, "backbone": ";".join(sorted(rows["backbone"].astype(str).unique())),
           "treatment": f"{control.label} (stream A)", "control": f"{control.label} (stream B)",
           "n_pairs": d.n_pairs, "mean_diff": d.mean_diff, "std_diff": d.std_diff, "ci95_low": d.ci_low,
           "ci95_high": d.ci_high,
           "untrained_pairs": int((is_untrained(ok["trained_t"]) | is_untrained(ok["trained_c"])).sum()),
           "unpaired_treatment": len(a) - len(merged), "unpaired_control": len(b) - len(merged),
           "nonfinite_treatment": int((~np.isfinite(merged["test_metric_t"])).sum()),
           "nonfinite_control": int((~np.isfinite(merged["test_metric_c"])).sum()),
           # runs of the setting that differ in a field it does not name: not one setting, never decided
           "not_comparable": "; ".join(f"{k}: {', '.join(sorted(rows[k].astype(str).unique()))}" for k in several)
           or ("" if not merged.duplicated(["position", *PAIR_KEYS[1:]]).any()
               else "the setting matches several runs per seed; name more fields"),
           PAIRS: list(zip(ok["config_hash_t"], ok["config_hash_c"], ok["test_metric_t"] - ok["test_metric_c"],
                           strict=True))}
    return pd.DataFrame([row], columns=[*PAIR_TABLE_COLUMNS, PAIRS])


def check_aa(runs: Runs, controls: Sequence[AAControl]) -> list[ControlResult]:
    """One result per A/A control, in the suite file's order; one Holm family over all of them."""
    if not controls:
        return []
    comps = pd.concat([aa_comparisons(runs, c) for c in controls], ignore_index=True)
    decided = decide_table(comps, stats.SUPERIORITY, 0.0, correctness(runs.predictions)).assign(kind=AA)
    results = []
    for i, control in enumerate(controls):
        row = decided.iloc[[i]]
        r = next(row.itertuples(index=False))
        if r.verdict not in stats.VERDICTS:
            outcome = stats.NOT_RUN
            text = (f"not run: {r.not_comparable}" if r.not_comparable
                    else f"fewer than 2 paired seeds of {control.label} on {control.task} in both streams")
        else:
            outcome = PASSED if r.verdict == stats.INCONCLUSIVE else FALSELY_DETECTED
            found = {stats.HOLDS: "stream A better", stats.REFUTED: "stream B better"}.get(r.verdict, "nothing decided")
            seeds = "; ".join(f"stream {n}: seeds {', '.join(map(str, st))}"
                              for n, st in zip("AB", control.streams, strict=True))
            text = f"{found}: {control_line(r)} ({seeds})"
        results.append(ControlResult(control.task, AA, outcome, text, row[CONTROL_COLUMNS].reset_index(drop=True)))
    return results
