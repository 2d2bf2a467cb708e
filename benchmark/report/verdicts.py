"""Deciding a family of paired comparisons, and reading a claim's family in one line.

``decide_table`` adds ``stats.decide``'s verdict and Holm-adjusted numbers to a table of paired
comparisons (one Holm family: every row of the table); ``claim_reading`` says in one line how a
claim's family came out and, when no comparison was decided, why not, with the numbers: the
Holm-adjusted interval against the margin and the observed difference, and the minimum detectable
difference (MDD) against the observed distance from the threshold. The claims and the controls
are both decided here, so they follow the same rules.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark import stats

PAIRED_COLUMNS = ["n_pairs", "mean_diff", "std_diff", "ci95_low", "ci95_high"]
# margin: the one the test applied (the suite's for non-inferiority, 0 for superiority).
DECISION_COLUMNS = ["test", "margin", "ci_low_adj", "ci_high_adj", "p_value", "p_adjusted", "mdd", "verdict"]


def decide_table(comps: pd.DataFrame, test: str, margin: float) -> pd.DataFrame:
    """``comps`` (with PAIRED_COLUMNS) plus DECISION_COLUMNS; Holm's correction runs over all its rows."""
    diffs = [stats.PairedDifference(r.mean_diff, r.ci95_low, r.ci95_high, int(r.n_pairs), r.std_diff)
             for r in comps.itertuples(index=False)]
    decided = stats.decide(diffs, test, margin)
    applied = float(margin) if test == stats.NON_INFERIORITY else 0.0
    return comps.assign(test=test, margin=applied,
                        ci_low_adj=[c.ci_low for c in decided], ci_high_adj=[c.ci_high for c in decided],
                        p_value=[c.p_value for c in decided], p_adjusted=[c.p_adjusted for c in decided],
                        mdd=[c.mdd for c in decided], verdict=[c.verdict for c in decided])


def mirror(comps: pd.DataFrame) -> pd.DataFrame:
    """The same comparisons read the other way round: control - treatment."""
    return comps.assign(treatment=comps["control"], control=comps["treatment"], mean_diff=-comps["mean_diff"],
                        ci95_low=-comps["ci95_high"], ci95_high=-comps["ci95_low"])


def summary_of(decided: pd.DataFrame) -> stats.ClaimSummary:
    """``stats.claim_summary`` of the rows of a ``decide_table``."""
    return stats.claim_summary([
        stats.Comparison(r.test, -r.margin, r.mean_diff, r.std_diff, int(r.n_pairs), r.ci_low_adj, r.ci_high_adj,
                         math.nan, math.nan, r.p_value, r.p_adjusted, math.nan, r.mdd, r.verdict)
        for r in decided.itertuples(index=False)])


def fmt_diff(mean: float, low: float, high: float) -> str:
    if not math.isfinite(low):
        return f"{mean:+.4f} [no CI]"
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def _median(values) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else math.nan


def undecided_numbers(decided: pd.DataFrame) -> dict[str, float]:
    """Medians over the tested comparisons: n pairs, adjusted half-width, MDD, |mean - threshold|, and the
    pairs per comparison that would make the MDD equal the observed distance (MDD ~ 1/sqrt(n))."""
    tested = decided[decided["verdict"] != stats.NOT_RUN]
    gap = (tested["mean_diff"] + tested["margin"]).abs()  # threshold = -margin
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(gap > 0, tested["n_pairs"] * (tested["mdd"] / gap) ** 2, math.inf)
    return {"n_pairs": _median(tested["n_pairs"]),
            "half_width_adj": _median((tested["ci_high_adj"] - tested["ci_low_adj"]) / 2.0),
            "mdd": _median(tested["mdd"]), "gap": _median(gap), "pairs_needed": _median(needed),
            "k": float(len(tested))}


def claim_reading(decided: pd.DataFrame, summary: stats.ClaimSummary, test: str, margin: float,
                  needs: str) -> str:
    """One line: how the claim's comparisons came out, or why the suite cannot decide it (with numbers)."""
    n = len(decided)
    if summary.text == stats.NOT_RUN:
        return f"not run: needs {needs}."
    if summary.n_holds and summary.n_refuted:
        return (f"mixed: holds on {summary.n_holds} of {n} comparisons and is refuted on {summary.n_refuted} "
                "(see the comparisons).")
    if summary.n_holds:
        return f"supported on {summary.n_holds} of {n} comparisons, refuted on none."
    if summary.n_refuted:
        return f"refuted on {summary.n_refuted} of {n} comparisons, supported on none."
    u = undecided_numbers(decided)
    against = (f"the margin {margin:.4f}" if test == stats.NON_INFERIORITY else "0 (superiority)")
    needed = u["pairs_needed"]
    more = ("no observed difference to detect" if not math.isfinite(needed)
            else f"about {math.ceil(needed)} pairs per comparison would be needed to detect the observed "
                 "differences")
    return (f"cannot decide: none of {int(u['k'])} tested comparisons is decided. Median Holm-adjusted CI "
            f"half-width {u['half_width_adj']:.4f} (threshold {against}); median observed distance from the "
            f"threshold {u['gap']:.4f} against a median MDD of {u['mdd']:.4f} at n = {u['n_pairs']:g} pairs "
            f"(Holm family of {int(u['k'])}); {more}.")
