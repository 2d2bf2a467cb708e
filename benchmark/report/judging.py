"""The registered claims (``claims``) judged on a suite's runs: paired comparisons decided by each claim's test.

Every comparison of one claim, over all tasks of the suite, is one Holm family (``verdicts.decide_table``).
Control tasks (``TaskSpec.control``) are never evidence for a claim; ``controls`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.report.claims import Claim, check_of
from benchmark.report.pairs import PAIR_COUNT_COLUMNS, compare
from benchmark.report.predictions import correctness
from benchmark.report.runs import Runs, task_control
from benchmark.report.verdicts import (
    CLIP_COLUMNS,
    DECISION_COLUMNS,
    NOT_COMPARABLE,
    PAIRED_COLUMNS,
    claim_reading,
    decide_table,
    summary_of,
)

# A claim with a weaker reading (Claim.weaker_test) is decided under both; `verdict` is the claim's.
WEAKER_COLUMNS = ["weaker_test", "weaker_margin", "weaker_verdict", "weaker_p_verdict"]
COMPARISON_COLUMNS = ["claim_id", "task", "backbone", "treatment", "control", *PAIRED_COLUMNS,
                      *DECISION_COLUMNS, *WEAKER_COLUMNS, *PAIR_COUNT_COLUMNS, *CLIP_COLUMNS]


@dataclass(frozen=True)
class ClaimResult:
    """A claim's decided comparisons (COMPARISON_COLUMNS less claim_id), their counts and a one-line reading."""

    claim: Claim
    check: str  # the comparison in words
    comparisons: pd.DataFrame
    summary: stats.ClaimSummary
    reading: str
    margin: float  # the test's margin: the suite's for non-inferiority, 0 for superiority

    @property
    def not_run(self) -> bool:
        return self.summary.text == stats.NOT_RUN

    @property
    def tasks(self) -> list[str]:
        return sorted(self.comparisons["task"].unique())


def check_claims(runs: Runs, claims: list[Claim], margin: float = stats.DEFAULT_MARGIN) -> list[ClaimResult]:
    """Each claim's comparisons decided by its test; Holm over all of a claim's comparisons, on every task
    of the suite except the control tasks."""
    df = runs.table
    evidence = task_control(df["task"]).isna()  # control tasks test the suite, not the paper
    correct = correctness(runs.predictions)
    results = []
    for claim in claims:
        check = check_of(claim.claim_id)  # an unregistered claim id: KeyError listing the registered ones
        comps = compare(runs, check.treatment(df) & evidence, check.control(df) & evidence,
                        check.match_in(runs.extra_keys), check.across)
        words, needs = check.test, check.needs
        decided = decide_table(comps, claim.test, margin, correct)
        weaker = pd.DataFrame(index=decided.index, columns=WEAKER_COLUMNS, dtype=object).fillna("")
        if claim.weaker_test:
            other = decide_table(comps, claim.weaker_test, margin, correct)
            weaker = pd.DataFrame({"weaker_test": claim.weaker_test, "weaker_margin": other["margin"],
                                   "weaker_verdict": other["verdict"], "weaker_p_verdict": other["p_verdict"]},
                                  index=decided.index, columns=WEAKER_COLUMNS)
        decided = pd.concat([decided, weaker], axis=1)[COMPARISON_COLUMNS[1:]]
        summary = summary_of(decided)
        applied = margin if claim.test == stats.NON_INFERIORITY else 0.0
        reading = claim_reading(decided, summary, claim.test, margin, needs)
        if claim.weaker_test and not decided.empty:
            reading += (f" Weaker reading ({claim.weaker_test}): "
                        f"{summary_of(decided.assign(verdict=decided['weaker_verdict'])).text}.")
        if summary.text == stats.NOT_RUN and check.explain is not None:
            reading += check.explain(df[evidence])
        results.append(ClaimResult(claim, words, decided, summary, reading, applied))
    return results


SUMMARY_COLUMNS = ["claim_id", "test", "margin", "tasks", "n_comparisons", "holds", "refuted", "inconclusive",
                   "not_run", "untrained_pairs", "median_n_pairs", "median_ci_half_width_bonferroni", "median_mdd",
                   "reading"]


def claims_summary(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim (results/<suite>/claims_summary.csv and REPORT.md's headline)."""
    rows = []
    for r in results:
        c, s = r.comparisons, r.summary
        tested = c[~c["verdict"].isin([stats.NOT_RUN, NOT_COMPARABLE])]
        rows.append({"claim_id": r.claim.claim_id, "test": r.claim.test, "margin": r.margin,
                     "tasks": ";".join(r.tasks), "n_comparisons": len(c), "holds": s.n_holds,
                     "refuted": s.n_refuted, "inconclusive": s.n_inconclusive, "not_run": s.n_not_run,
                     "untrained_pairs": int(c["untrained_pairs"].sum()),
                     "median_n_pairs": tested["n_pairs"].median() if len(tested) else np.nan,
                     "median_ci_half_width_bonferroni":
                         ((tested["ci_high_bonferroni"] - tested["ci_low_bonferroni"]) / 2).median()
                     if len(tested) else np.nan,
                     "median_mdd": tested["mdd"].median() if len(tested) else np.nan, "reading": r.reading})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
