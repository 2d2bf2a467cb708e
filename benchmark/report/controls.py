"""The suite's controls: does it detect a difference that is there, and none where there is none?

A control task (``TaskSpec.control``, tasks/controls.py) is built so the answer is known in advance.
Its comparisons are decided by exactly the claims' rule (``verdicts.decide_table``: paired differences
DiffRes − X, superiority, one-sided at 0.025 per direction with Holm over the comparisons of one control
task) and are never evidence for a claim.

- positive: full DiffRes (family ``learned resolution``, no ``variant_of``, guide loss on) minus each
  ``uniform reduction`` front-end at the same task, backbone, input hop and δ, superiority. The control
  is DETECTED when every one of these comparisons on the task holds (a comparison with fewer than 2
  pairs cannot hold, so it leaves the control not detected); NOT DETECTED otherwise; NOT RUN when none
  has 2 pairs.
- negative: it guards against the suite finding a DiffRes advantage where none can exist. At δ <= 0.5,
  full DiffRes minus each ``uniform reduction`` front-end at the same hop and δ, and minus the
  ``reference`` (``spec``, no reduction) at the same hop, superiority. The control is FALSELY DETECTED
  when any of them holds; PASSED when none does; NOT RUN when none has 2 pairs. A comparison that is
  *refuted* (DiffRes significantly worse) is reported as a result with its interval, not a verdict on
  the suite: nothing guarantees DiffRes keeps up where there is nothing to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.pairs import PAIR_TABLE_COLUMNS, compare, full_diffres, reducing_baseline
from benchmark.report.runs import Runs, is_reference, task_control
from benchmark.report.verdicts import DECISION_COLUMNS, decide_table, fmt_diff

POSITIVE, NEGATIVE = "positive", "negative"
NEGATIVE_MAX_RATE = 0.5  # the negative control is built so that nothing differs at δ <= 0.5
DETECTED, NOT_DETECTED, PASSED, FALSELY_DETECTED = "detected", "not detected", "passed", "falsely detected"
CONTROL_COLUMNS = ["task", "kind", *PAIR_TABLE_COLUMNS[1:], *DECISION_COLUMNS]
RULES = {
    POSITIVE: "full DiffRes must beat every uniform-reduction front-end at the same hop and δ (superiority, "
              "Holm over the task's comparisons); detected when all of them hold",
    NEGATIVE: f"the suite must find no DiffRes advantage at δ ≤ {NEGATIVE_MAX_RATE:g}, where none can exist: "
              "superiority of full DiffRes over each uniform-reduction front-end (same hop, δ) and over the "
              "reference (same hop), the claims' rule; falsely detected when any holds",
}


@dataclass(frozen=True)
class ControlResult:
    task: str
    kind: str  # POSITIVE | NEGATIVE
    outcome: str  # DETECTED / NOT_DETECTED (positive), PASSED / FALSELY_DETECTED (negative), or stats.NOT_RUN
    text: str  # the numbers behind the outcome
    comparisons: pd.DataFrame  # CONTROL_COLUMNS

    @property
    def failed(self) -> bool:
        return self.outcome in (NOT_DETECTED, FALSELY_DETECTED)

    @property
    def not_run(self) -> bool:
        return self.outcome == stats.NOT_RUN

    @property
    def rule(self) -> str:
        return RULES[self.kind]


def _line(r) -> str:
    flag = f", {int(r.untrained_pairs)} pair(s) with an untrained run" if r.untrained_pairs else ""
    return (f"{r.treatment} − {r.control}: {fmt_diff(r.mean_diff, r.ci95_low, r.ci95_high)}, simultaneous "
            f"(Bonferroni) [{r.ci_low_bonferroni:+.4f}, {r.ci_high_bonferroni:+.4f}], p (Holm) {r.p_verdict:.3g}, "
            f"n={int(r.n_pairs)}{flag}")


def _positive(runs: Runs, on_task: pd.Series) -> tuple[str, str, pd.DataFrame]:
    df = runs.table
    comps = compare(runs, full_diffres(df) & on_task, reducing_baseline(df) & on_task,
                    ["task", "backbone", "hop_ms", "reduction_rate"])
    decided = decide_table(comps, stats.SUPERIORITY, 0.0)
    tested = decided[decided["verdict"].isin(stats.VERDICTS)]
    if tested.empty:
        return stats.NOT_RUN, "no DiffRes / uniform-reduction pair with ≥ 2 seeds or folds on this task", decided
    holds = decided["verdict"] == stats.HOLDS
    outcome = DETECTED if holds.all() else NOT_DETECTED
    weakest = tested.sort_values(["ci_low_bonferroni", "treatment", "control"]).iloc[0]
    text = (f"holds on {int(holds.sum())} of {len(decided)} comparisons "
            f"({len(decided) - len(tested)} with < 2 pairs); weakest: {_line(weakest)}")
    return outcome, text, decided


def _negative(runs: Runs, on_task: pd.Series) -> tuple[str, str, pd.DataFrame]:
    df = runs.table
    low = df["reduction_rate"] <= NEGATIVE_MAX_RATE + 1e-9
    diffres = full_diffres(df) & on_task & low
    same = ["task", "backbone", "hop_ms"]
    comps = pd.concat([compare(runs, diffres, reducing_baseline(df) & on_task & low, [*same, "reduction_rate"]),
                       compare(runs, diffres, is_reference(df["frontend"]) & on_task, same)], ignore_index=True)
    decided = decide_table(comps, stats.SUPERIORITY, 0.0)
    tested = decided[decided["verdict"].isin(stats.VERDICTS)]
    if tested.empty:
        return stats.NOT_RUN, "no DiffRes / uniform-reduction / reference pair with ≥ 2 seeds or folds at δ ≤ " \
                              f"{NEGATIVE_MAX_RATE:g} on this task", decided
    holds = tested[tested["verdict"] == stats.HOLDS]
    worse = tested[tested["verdict"] == stats.REFUTED]
    outcome = FALSELY_DETECTED if len(holds) else PASSED
    shown = holds if len(holds) else tested.iloc[[int(np.argmax(tested["mean_diff"].to_numpy()))]]
    text = (f"a DiffRes advantage holds on {len(holds)} of {len(tested)} comparisons; "
            + ("found: " if len(holds) else "largest difference: ")
            + "; ".join(_line(r) for r in shown.itertuples(index=False)))
    if len(worse):  # a result, not a verdict: the control guards only against inventing an advantage
        text += (f". DiffRes is worse on {len(worse)} (result, not a verdict): "
                 + "; ".join(_line(r) for r in worse.itertuples(index=False)))
    return outcome, text, decided


def check_controls(runs: Runs) -> list[ControlResult]:
    """One result per control task in the suite, sorted by task name; [] when the suite has none."""
    df = runs.table
    kinds = task_control(df["task"])
    results = []
    for task in sorted(df.loc[kinds.notna(), "task"].unique()):
        kind = kinds[df["task"] == task].iloc[0]
        outcome, text, decided = (_positive if kind == POSITIVE else _negative)(runs, df["task"] == task)
        decided = decided.assign(kind=kind)
        decided["task"] = task
        results.append(ControlResult(task, kind, outcome, text, decided[CONTROL_COLUMNS].reset_index(drop=True)))
    return results
