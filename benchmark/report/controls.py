"""The suite's controls: does it detect a difference that is there, and none where there is none?

A control task (``TaskSpec.control``, tasks/controls.py) is built so the answer is known in advance.
Its comparisons are decided by exactly the claims' rule (``verdicts.decide_table``: paired differences
DiffRes − X, superiority, one-sided at 0.025 per direction with Holm over the comparisons of one control
task, the seeds × clips t where the runs logged per-clip predictions) and are never evidence for a claim.

- positive: full DiffRes (family ``learned resolution``, no ``variant_of``, guide loss on) minus each
  ``uniform reduction`` front-end at the same task, backbone, input hop and δ, superiority. The control
  is DETECTED when every one of these comparisons on the task holds (a comparison with fewer than 2
  pairs cannot hold, so it leaves the control not detected); NOT DETECTED otherwise; NOT RUN when none
  has 2 pairs.
- negative: it guards against the suite finding a DiffRes advantage where none can exist. At δ <= 0.5,
  full DiffRes minus each ``uniform reduction`` front-end at the same hop and δ, and minus the
  ``reference`` (``spec``, no reduction) at the same hop, superiority. Two-sided: the control is FALSELY
  DETECTED when any of them is decided either way (holds: an advantage; refuted: a disadvantage), since
  the task is built so that neither exists; PASSED when none is; NOT RUN when none has 2 pairs.
- a/a (``aacontrol``): one setting trained on two seed streams, stream A against stream B; any decided
  difference is a false detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.pairs import PAIR_TABLE_COLUMNS, compare, full_diffres, reducing_baseline
from benchmark.report.predictions import correctness
from benchmark.report.runs import Runs, is_reference, task_control
from benchmark.report.verdicts import CLIP_COLUMNS, DECISION_COLUMNS, decide_table, fmt_diff

POSITIVE, NEGATIVE, AA = "positive", "negative", "a/a"
NEGATIVE_MAX_RATE = 0.5  # the negative control is built so that nothing differs at δ <= 0.5
DETECTED, NOT_DETECTED, PASSED, FALSELY_DETECTED = "detected", "not detected", "passed", "falsely detected"
CONTROL_COLUMNS = ["task", "kind", *PAIR_TABLE_COLUMNS[1:], *DECISION_COLUMNS, *CLIP_COLUMNS]
RULES = {
    POSITIVE: "full DiffRes must beat every uniform-reduction front-end at the same hop and δ (superiority, "
              "Holm over the task's comparisons); detected when all of them hold",
    NEGATIVE: f"the suite must find no DiffRes advantage at δ ≤ {NEGATIVE_MAX_RATE:g}, where none can exist: "
              "superiority of full DiffRes over each uniform-reduction front-end (same hop, δ) and over the "
              "reference (same hop), the claims' rule; falsely detected when any is decided, either way",
    AA: "one setting trained on two seed streams, the i-th seed of stream A paired with the i-th of stream B: "
        "there is nothing to find, so any difference decided either way (superiority each way, Holm over all "
        "A/A comparisons of the suite) is a false detection",
}


@dataclass(frozen=True)
class ControlResult:
    task: str
    kind: str  # POSITIVE | NEGATIVE | AA
    outcome: str  # DETECTED / NOT_DETECTED (positive), PASSED / FALSELY_DETECTED (negative, a/a), or stats.NOT_RUN
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


def control_line(r) -> str:
    """One comparison of a control in words: difference, simultaneous interval, p, n and the rule."""
    flag = f", {int(r.untrained_pairs)} pair(s) with an untrained run" if r.untrained_pairs else ""
    clips = f" × {int(r.n_clips)} clips" if r.n_clips else ""
    return (f"{r.treatment} − {r.control}: {fmt_diff(r.mean_diff, r.ci95_low, r.ci95_high)}, simultaneous "
            f"(Bonferroni) [{r.ci_low_bonferroni:+.4f}, {r.ci_high_bonferroni:+.4f}], p (Holm) {r.p_verdict:.3g}, "
            f"n={int(r.n_pairs)}{clips} ({r.rule}){flag}")


def _positive(runs: Runs, on_task: pd.Series, correct) -> tuple[str, str, pd.DataFrame]:
    df = runs.table
    comps = compare(runs, full_diffres(df) & on_task, reducing_baseline(df) & on_task,
                    ["task", "backbone", "hop_ms", "reduction_rate"])
    decided = decide_table(comps, stats.SUPERIORITY, 0.0, correct)
    tested = decided[decided["verdict"].isin(stats.VERDICTS)]
    if tested.empty:
        return stats.NOT_RUN, "no DiffRes / uniform-reduction pair with ≥ 2 seeds or folds on this task", decided
    holds = decided["verdict"] == stats.HOLDS
    outcome = DETECTED if holds.all() else NOT_DETECTED
    weakest = tested.sort_values(["ci_low_bonferroni", "treatment", "control"]).iloc[0]
    text = (f"holds on {int(holds.sum())} of {len(decided)} comparisons "
            f"({len(decided) - len(tested)} with < 2 pairs); weakest: {control_line(weakest)}")
    return outcome, text, decided


def _negative(runs: Runs, on_task: pd.Series, correct) -> tuple[str, str, pd.DataFrame]:
    df = runs.table
    low = df["reduction_rate"] <= NEGATIVE_MAX_RATE + 1e-9
    diffres = full_diffres(df) & on_task & low
    same = ["task", "backbone", "hop_ms"]
    comps = pd.concat([compare(runs, diffres, reducing_baseline(df) & on_task & low, [*same, "reduction_rate"]),
                       compare(runs, diffres, is_reference(df["frontend"]) & on_task, same)], ignore_index=True)
    decided = decide_table(comps, stats.SUPERIORITY, 0.0, correct)
    tested = decided[decided["verdict"].isin(stats.VERDICTS)]
    if tested.empty:
        return stats.NOT_RUN, "no DiffRes / uniform-reduction / reference pair with ≥ 2 seeds or folds at δ ≤ " \
                              f"{NEGATIVE_MAX_RATE:g} on this task", decided
    holds = tested[tested["verdict"] == stats.HOLDS]
    worse = tested[tested["verdict"] == stats.REFUTED]
    found = tested[tested["verdict"] != stats.INCONCLUSIVE]
    outcome = FALSELY_DETECTED if len(found) else PASSED
    shown = found if len(found) else tested.iloc[[int(np.argmax(tested["mean_diff"].abs().to_numpy()))]]
    text = (f"a difference is decided on {len(found)} of {len(tested)} comparisons (DiffRes better on "
            f"{len(holds)}, worse on {len(worse)}); "
            + ("found: " if len(found) else "largest difference: ")
            + "; ".join(control_line(r) for r in shown.itertuples(index=False)))
    return outcome, text, decided


def check_controls(runs: Runs) -> list[ControlResult]:
    """One result per control task in the suite, sorted by task name; [] when the suite has none. The A/A
    controls, declared by the suite file rather than by a task, are ``aacontrol.check_aa``'s."""
    df = runs.table
    kinds = task_control(df["task"])
    correct = correctness(runs.predictions)
    results = []
    for task in sorted(df.loc[kinds.notna(), "task"].unique()):
        kind = kinds[df["task"] == task].iloc[0]
        outcome, text, decided = (_positive if kind == POSITIVE else _negative)(runs, df["task"] == task, correct)
        decided = decided.assign(kind=kind)
        decided["task"] = task
        results.append(ControlResult(task, kind, outcome, text, decided[CONTROL_COLUMNS].reset_index(drop=True)))
    return results
