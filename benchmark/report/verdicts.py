"""Deciding a family of paired comparisons, and reading a claim's family in one line.

``decide_table`` adds the verdict, Holm-adjusted p-values and Bonferroni simultaneous intervals to a table
of paired comparisons (one Holm family: every row of the table, except those ``not comparable``). A
comparison whose paired runs all logged per-clip predictions on the same test clips (accuracy tasks) is
decided by the seeds × clips t (``clipstats.clip_test``: the crossed design's variance on n_seeds − 1 df), its
interval at the Bonferroni level, so p-values and intervals count clips as well as seeds. Any other comparison
(runs from before the predictions artefact, mAP tasks, folds with different test clips) is decided by
``stats.decide``'s paired t over seeds, and column ``rule`` says which. Holm runs over the family whatever
rule gave each p-value. The paired-t decision is kept beside (``verdict_t``, ``p_verdict_t``), and the
exact sign-flip p of the per-pair differences (``p_exact``, Holm-adjusted in the direction that decided)
is a sensitivity column: its floor 2^-n leaves few seeds unable to decide by it. ``mdd`` and
``pairs_needed`` stay paired-t planning numbers.

``claim_reading`` says in one line how a claim's family came out and, when no comparison was decided, why
not, with the numbers: the simultaneous interval against the threshold, the minimum detectable difference
(MDD) against the observed distance from the threshold, and the pairs that would detect that distance. The
claims and the controls are both decided here, so they follow the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchmark.report import clipstats, stats
from benchmark.report.predictions import clip_matrix

PAIRED_COLUMNS = ["n_pairs", "mean_diff", "std_diff", "ci95_low", "ci95_high"]
NOT_COMPARABLE = "not comparable"  # the arms differ in a setting the comparison does not vary (column not_comparable)
# margin: the one the test applied (the suite's for non-inferiority, 0 for superiority). The interval is
# Bonferroni-simultaneous (each bound one-sided at alpha_ci = 0.025 / k); p_holds / p_refute are the raw
# one-sided p of the two directions, *_holm their Holm values, p_verdict the one that decided.
DECISION_COLUMNS = ["test", "margin", "ci_low_bonferroni", "ci_high_bonferroni", "alpha_ci", "p_holds",
                    "p_holds_holm", "p_refute", "p_refute_holm", "p_verdict", "mdd", "pairs_needed", "verdict"]
# Appended at the end of claims.csv and controls.csv (module docstring): which rule decided, over how many
# test clips (0: seeds only), the exact sign-flip p, and the paired-t decision beside.
CLIP_COLUMNS = ["rule", "n_clips", "p_exact", "verdict_t", "p_verdict_t"]
RULE_CLIPS = "seeds×clips t"
RULE_T = "paired t: no per-clip predictions"
PAIRS = "pairs"  # not written: a comparison's (treatment hash, control hash, metric difference) per pair


def decide_table(comps: pd.DataFrame, test: str, margin: float,
                 correct: Mapping[str, pd.Series] | None = None) -> pd.DataFrame:
    """``comps`` (with PAIRED_COLUMNS) plus DECISION_COLUMNS and CLIP_COLUMNS; Holm's correction runs over all
    its rows but those marked ``not comparable`` (a non-empty ``not_comparable`` column), which keep that
    verdict. ``correct``: per-clip correctness by config hash (``predictions.correctness``); with it, the
    comparisons whose pairs (column ``pairs``) all have predictions on the same clips are decided by the
    seeds × clips t (module docstring)."""
    refused = comps["not_comparable"].fillna("").astype(str) != "" if "not_comparable" in comps.columns \
        else pd.Series(False, index=comps.index)
    diffs = [stats.PairedDifference(r.mean_diff, r.ci95_low, r.ci95_high, int(r.n_pairs),
                                    math.nan if bad else r.std_diff)
             for r, bad in zip(comps.itertuples(index=False), refused, strict=True)]
    decided = stats.decide(diffs, test, margin)
    applied = float(margin) if test == stats.NON_INFERIORITY else 0.0
    verdicts = [NOT_COMPARABLE if bad else c.verdict for c, bad in zip(decided, refused, strict=True)]
    out = comps.assign(test=test, margin=applied,
                       ci_low_bonferroni=[c.ci_low for c in decided], ci_high_bonferroni=[c.ci_high for c in decided],
                       alpha_ci=[c.alpha_ci for c in decided], p_holds=[c.p_value for c in decided],
                       p_holds_holm=[c.p_adjusted for c in decided], p_refute=[c.p_refute for c in decided],
                       p_refute_holm=[c.p_refute_adjusted for c in decided],
                       p_verdict=[c.p_decided for c in decided], mdd=[c.mdd for c in decided],
                       pairs_needed=[c.pairs_needed for c in decided], verdict=verdicts)
    return _with_clips(out.reset_index(drop=True), -applied if test == stats.NON_INFERIORITY else 0.0, correct) \
        .set_axis(comps.index)


def _with_clips(out: pd.DataFrame, threshold: float, correct: Mapping[str, pd.Series] | None) -> pd.DataFrame:
    """The paired-t decision of ``out`` moved to verdict_t / p_verdict_t, the rows with per-clip predictions
    decided again by the seeds × clips t (``clipstats.clip_test``), and Holm redone over the family with each
    row's own p-values."""
    out = out.assign(rule="", n_clips=0, p_exact=math.nan, verdict_t=out["verdict"], p_verdict_t=out["p_verdict"])
    tested = out["verdict"].isin(stats.VERDICTS).to_numpy()
    k = int(tested.sum())
    if k == 0:
        return out
    pairs = out[PAIRS] if PAIRS in out.columns else pd.Series([[]] * len(out))
    out.loc[tested, "rule"] = RULE_T
    level = stats.ALPHA / k
    p_holds, p_refute = out["p_holds"].to_numpy(float, copy=True), out["p_refute"].to_numpy(float, copy=True)
    for i in np.flatnonzero(tested):
        d = clip_matrix(pairs.iloc[i], correct or {})
        if d is None or d.shape[0] < 2:
            continue
        result = clipstats.clip_test(d, threshold, level)
        p_holds[i], p_refute[i] = result.p_holds, result.p_refute
        out.loc[i, ["rule", "n_clips", "ci_low_bonferroni", "ci_high_bonferroni"]] = \
            [RULE_CLIPS, d.shape[1], result.ci_low, result.ci_high]
    holds_adj, refute_adj = np.full(len(out), math.nan), np.full(len(out), math.nan)
    holds_adj[tested], refute_adj[tested] = stats.holm(p_holds[tested]), stats.holm(p_refute[tested])
    verdict = np.where(holds_adj <= stats.ALPHA, stats.HOLDS,
                       np.where(refute_adj <= stats.ALPHA, stats.REFUTED, stats.INCONCLUSIVE))
    out.loc[tested, "verdict"] = verdict[tested]
    out["p_holds"], out["p_refute"] = p_holds, p_refute
    out["p_holds_holm"], out["p_refute_holm"] = holds_adj, refute_adj
    refuted = out["verdict"].to_numpy() == stats.REFUTED
    out["p_verdict"] = np.where(tested, np.where(refuted, refute_adj, holds_adj), out["p_verdict"])
    if all(len(pairs.iloc[i]) for i in np.flatnonzero(tested)):
        exact = np.array([[clipstats.sign_flip_p([p[2] for p in pairs.iloc[i]], threshold, way)
                           for way in (clipstats.HOLDS_DIRECTION, clipstats.REFUTE_DIRECTION)]
                          for i in np.flatnonzero(tested)], dtype=float)  # [k, 2]
        exact_adj = np.stack([stats.holm(exact[:, 0]), stats.holm(exact[:, 1])], axis=1)
        out.loc[tested, "p_exact"] = np.where(refuted[tested], exact_adj[:, 1], exact_adj[:, 0])
    return out


def summary_of(decided: pd.DataFrame) -> stats.ClaimSummary:
    """``stats.claim_summary`` of the rows of a ``decide_table``."""
    return stats.claim_summary([
        stats.Comparison(r.test, -r.margin, r.mean_diff, r.std_diff, int(r.n_pairs), r.ci_low_bonferroni,
                         r.ci_high_bonferroni, r.alpha_ci, r.p_holds, r.p_holds_holm, r.p_refute, r.p_refute_holm,
                         r.mdd, r.pairs_needed, stats.NOT_RUN if r.verdict == NOT_COMPARABLE else r.verdict)
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
    """Medians over the tested comparisons: n pairs, simultaneous half-width, MDD, |mean - threshold|, and
    the pairs per comparison at which the observed distance would be detected (``stats.pairs_needed``)."""
    tested = decided[~decided["verdict"].isin([stats.NOT_RUN, NOT_COMPARABLE])]
    gap = (tested["mean_diff"] + tested["margin"]).abs()  # threshold = -margin
    needed = np.asarray(tested["pairs_needed"], dtype=float)
    return {"n_pairs": _median(tested["n_pairs"]),
            "half_width": _median((tested["ci_high_bonferroni"] - tested["ci_low_bonferroni"]) / 2.0),
            "mdd": _median(tested["mdd"]), "gap": _median(gap),
            "pairs_needed": float(np.median(needed)) if needed.size else math.nan, "k": float(len(tested))}


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
                 "differences (80 % power, noncentral t)")
    return (f"cannot decide: none of {int(u['k'])} tested comparisons is decided. Median simultaneous "
            f"(Bonferroni) CI half-width {u['half_width']:.4f} (threshold {against}); median observed distance "
            f"from the threshold {u['gap']:.4f} against a median MDD of {u['mdd']:.4f} at n = {u['n_pairs']:g} "
            f"pairs (family of {int(u['k'])}); {more}.")
