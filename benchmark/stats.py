"""Statistics the report relies on: Student-t summaries, paired differences and claim verdicts.

Pure numpy/scipy/pandas; no MLflow, no torch. Every number in REPORT.md that carries a confidence
interval comes from here, so the arithmetic is tested on known values (tests/benchmark/test_stats.py).

Verdicts (``decide``): a claim is a family of paired comparisons, each tested one-sided with a paired
t-test — "equal or better" claims by non-inferiority against a margin, "beats" claims by superiority —
with Holm's step-down correction over the comparisons of the claim. ``claim_summary`` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

CONFIDENCE = 0.95
# Equal results give a CI of exactly [0, 0]; float round-off must not move that across a threshold.
ZERO_TOLERANCE = 1e-9

HOLDS = "holds"
REFUTED = "refuted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, REFUTED, INCONCLUSIVE)
NOT_RUN = "not run"  # a comparison with fewer than 2 finite pairs; never counted as evidence

SUPERIORITY = "superiority"
NON_INFERIORITY = "non-inferiority"
TESTS = (SUPERIORITY, NON_INFERIORITY)
DEFAULT_MARGIN = 0.01  # 1 accuracy point, or 0.01 mAP; suites may set their own
# One-sided level per direction: with one comparison the verdict reads the plain two-sided 95 % CI.
ALPHA = 0.025
POWER = 0.8


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and a two-sided Student-t confidence interval of the mean."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for ``n`` observations (``n - 1`` degrees of freedom)."""
    if n < 2:
        raise ValueError(f"t_quantile needs n >= 2 observations, got n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(_sps.t.ppf(0.5 + confidence / 2.0, n - 1))


def summarize(values, confidence: float = CONFIDENCE) -> Summary:
    """Summarise finite values; NaNs are dropped. With n < 2 the std and CI are NaN (not zero)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Summary(mean, math.nan, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    half = t_quantile(n, confidence) * std / math.sqrt(n)
    return Summary(mean, std, mean - half, mean + half, n)


def summarize_groups(df: pd.DataFrame, by: list[str], value: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per group of ``by`` with columns mean, std, ci95_low, ci95_high, n (sorted by ``by``)."""
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        s = summarize(group[value].to_numpy(), confidence)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), "mean": s.mean, "std": s.std,
                     "ci95_low": s.ci_low, "ci95_high": s.ci_high, "n": s.n})
    return pd.DataFrame(rows, columns=[*by, "mean", "std", "ci95_low", "ci95_high", "n"])


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``treatment - control`` over matched pairs, with its Student-t CI and the std (ddof=1)."""

    mean_diff: float
    ci_low: float
    ci_high: float
    n_pairs: int
    std_diff: float = math.nan  # needed by ``decide``; NaN makes the comparison "not run"


def paired_difference(treatment, control, confidence: float = CONFIDENCE) -> PairedDifference:
    """Paired difference of two equally long sequences (pair i = same task, seed, fold, backbone)."""
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"paired_difference needs equal lengths, got {t.shape} and {c.shape}")
    s = summarize(t - c, confidence)
    return PairedDifference(s.mean, s.ci_low, s.ci_high, s.n, s.std)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, in input order.

    With the raw p-values sorted ascending, ``p_adj(i) = max_{j<=i} min(1, (k - j + 1) p(j))`` (1-based),
    so rejecting where ``p_adj <= alpha`` is Holm's procedure at family-wise level ``alpha``. Ties get
    equal adjusted values whatever their order.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"holm needs a 1-d sequence of p-values in [0, 1], got {p_values!r}")
    k = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p[order]))
    return adjusted


def minimum_detectable_difference(std: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference, measured from the test's threshold, that a one-sided paired t-test
    at level ``alpha`` detects with probability ``power`` over ``n`` pairs whose differences have std ``std``.

    ``(t_{1-alpha, n-1} + t_{power, n-1}) * std / sqrt(n)``: the normal-theory formula with Student-t
    quantiles. It takes the observed std as the true one and a shifted central t for the noncentral t,
    so the exact power at this difference is a little below ``power`` for very few pairs
    (0.77 at n = 3, 0.79 at n = 5, 0.80 from n = 10 for the defaults). NaN when ``n < 2`` or std is not finite.
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be in (0, 1), got alpha={alpha}, power={power}")
    if n < 2 or not math.isfinite(std):
        return math.nan
    df = n - 1
    return float((_sps.t.isf(alpha, df) + _sps.t.ppf(power, df)) * std / math.sqrt(n))


@dataclass(frozen=True)
class Comparison:
    """One paired comparison (``treatment - control``) decided under a one-sided test within its claim.

    ``threshold`` is ``-margin`` for non-inferiority and 0 for superiority. ``ci_low`` / ``ci_high`` are
    the Holm-adjusted one-sided bounds, at levels ``alpha_low`` / ``alpha_high`` (see ``decide``); the
    verdict reads them against the threshold. ``p_value`` is the raw one-sided p of H0 "diff <= threshold"
    (the claim fails here), ``p_adjusted`` its Holm value, ``p_refute_adjusted`` the Holm value of the
    mirror H0 "diff >= threshold". ``mdd`` is the minimum detectable difference above the threshold at
    the family's Bonferroni level ``alpha / k``. All NaN, and verdict "not run", with fewer than 2 pairs.
    """

    test: str
    threshold: float
    mean_diff: float
    std_diff: float
    n_pairs: int
    ci_low: float
    ci_high: float
    alpha_low: float
    alpha_high: float
    p_value: float
    p_adjusted: float
    p_refute_adjusted: float
    mdd: float
    verdict: str


def _moments(difference: PairedDifference | Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    if isinstance(difference, PairedDifference):
        return difference.mean_diff, difference.std_diff, difference.n_pairs
    s = summarize(difference)  # drops non-finite entries: a pair with a missing metric is no pair
    return s.mean, s.std, s.n


def _effective_alpha(p: np.ndarray, alpha: float) -> np.ndarray:
    """Per comparison, the one-sided level at which Holm's step-down tested it: ``alpha * p / p_adj``.

    Then ``p <= level`` iff ``p_adj <= alpha``, so a bound at this level crosses the threshold exactly
    when Holm rejects. Without the running max it is the textbook step level ``alpha / (k - i + 1)``;
    always ``alpha / k <= level <= alpha``. A zero p (zero std) takes its step level too.
    """
    k = p.size
    adjusted = holm(p)
    step = np.empty(k)
    step[np.argsort(p, kind="stable")] = k - np.arange(k)
    at_step = (adjusted == step * p) | (adjusted == 0.0)  # exact step level where no max or cap applied
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(at_step, alpha / step, alpha * p / adjusted)


def decide(differences: Sequence[PairedDifference | Sequence[float] | np.ndarray], test: str,
           margin: float = DEFAULT_MARGIN, alpha: float = ALPHA) -> list[Comparison]:
    """Decide each comparison of one claim, in input order.

    ``differences``: per comparison, the paired differences ``treatment - control`` (non-finite entries
    dropped) or a ``PairedDifference`` with ``std_diff``. ``test``: one of ``TESTS``. ``margin``: the
    non-inferiority margin m >= 0 (threshold ``-m``); superiority tests against 0 and ignores it, so one
    suite margin can be passed for every claim. ``alpha``: the one-sided family-wise level per direction,
    in (0, 0.5); 0.025 makes a lone comparison's verdict read its plain two-sided 95 % CI.

    Rules on the Holm-adjusted bounds: non-inferiority holds when ``ci_low >= -m``, superiority when
    ``ci_low > 0``; either is refuted when ``ci_high`` < threshold (so a CI of exactly [0, 0] is
    inconclusive for superiority); anything else is inconclusive. Comparisons with fewer than 2 finite
    pairs or a non-finite std are "not run" and leave the Holm family (of size k, the tested ones).

    Holm + CI: each comparison has two one-sided t-tests against the threshold — "holds" (H0: diff <=
    threshold) and "refuted" (H0: diff >= threshold) — and each direction is Holm-adjusted over the k
    tested comparisons at ``alpha``. ``ci_low`` is the lower bound at the level Holm's step-down tested
    the "holds" hypothesis at (``alpha * p / p_adj``, between ``alpha / k`` and ``alpha``), ``ci_high`` the
    upper bound at the mirror level, so reading the bounds is exactly deciding from the adjusted p-values
    (up to ``ZERO_TOLERANCE`` at the threshold). For each comparison only one of the two nulls can be
    true, so the chance of any wrong "holds" or "refuted" in the claim is at most ``2 * alpha`` (5 %).
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha (one-sided) must be in (0, 0.5), got {alpha}")
    threshold = -float(margin) if test == NON_INFERIORITY else 0.0
    moments = [_moments(d) for d in differences]
    mean = np.array([m for m, _, _ in moments], dtype=float)
    std = np.array([s for _, s, _ in moments], dtype=float)
    n = np.array([k for _, _, k in moments], dtype=int)
    tested = (n >= 2) & np.isfinite(mean) & np.isfinite(std)
    k = int(tested.sum())

    out = [Comparison(test, threshold, float(mean[i]), float(std[i]), int(n[i]), *([math.nan] * 8), NOT_RUN)
           for i in range(len(moments))]
    if k == 0:
        return out
    m, s, df = mean[tested], std[tested], n[tested] - 1
    se = s / np.sqrt(n[tested])
    gap = m - threshold
    with np.errstate(divide="ignore", invalid="ignore"):  # zero std: the sign decides, a tie is t = 0
        t_stat = np.where(se > 0.0, gap / se, np.where(gap == 0.0, 0.0, np.sign(gap) * np.inf))
    p_holds, p_refute = _sps.t.sf(t_stat, df), _sps.t.cdf(t_stat, df)
    alpha_low, alpha_high = _effective_alpha(p_holds, alpha), _effective_alpha(p_refute, alpha)
    ci_low = m - _sps.t.isf(alpha_low, df) * se
    ci_high = m + _sps.t.isf(alpha_high, df) * se
    holds = ci_low >= threshold - ZERO_TOLERANCE if test == NON_INFERIORITY else ci_low > threshold + ZERO_TOLERANCE
    refuted = ci_high < threshold - ZERO_TOLERANCE
    verdicts = np.where(holds, HOLDS, np.where(refuted, REFUTED, INCONCLUSIVE))
    p_adj, p_refute_adj = holm(p_holds), holm(p_refute)
    for j, i in enumerate(np.flatnonzero(tested)):
        out[i] = Comparison(test, threshold, float(m[j]), float(s[j]), int(n[i]), float(ci_low[j]),
                            float(ci_high[j]), float(alpha_low[j]), float(alpha_high[j]), float(p_holds[j]),
                            float(p_adj[j]), float(p_refute_adj[j]),
                            minimum_detectable_difference(float(s[j]), int(n[i]), alpha / k), str(verdicts[j]))
    return out


@dataclass(frozen=True)
class ClaimSummary:
    """How a claim's comparisons came out; ``text`` is the one-line wording for the report."""

    n_holds: int
    n_refuted: int
    n_inconclusive: int
    n_not_run: int
    text: str


def claim_summary(comparisons: Sequence[Comparison]) -> ClaimSummary:
    """Counts per verdict and e.g. "holds on 3 of 5 comparisons, refuted on 0, inconclusive on 1, not run on 1".

    The counts add up to the number of comparisons ("not run on" only when some were); "not run" when
    none was tested. An interval spanning the threshold is counted inconclusive, never as failing.
    """
    counts = {v: sum(c.verdict == v for c in comparisons) for v in (*VERDICTS, NOT_RUN)}
    if counts[NOT_RUN] == len(comparisons):
        text = NOT_RUN
    else:
        text = (f"holds on {counts[HOLDS]} of {len(comparisons)} comparisons, refuted on {counts[REFUTED]}, "
                f"inconclusive on {counts[INCONCLUSIVE]}")
        if counts[NOT_RUN]:
            text += f", not run on {counts[NOT_RUN]}"
    return ClaimSummary(counts[HOLDS], counts[REFUTED], counts[INCONCLUSIVE], counts[NOT_RUN], text)


def pareto_front(cost, value) -> np.ndarray:
    """Boolean mask of points not dominated (lower-or-equal cost and higher-or-equal value, one strict)."""
    cost = np.asarray(cost, dtype=float)
    value = np.asarray(value, dtype=float)
    order = np.lexsort((-value, cost))  # by cost ascending, best value first within equal cost
    mask = np.zeros(cost.size, dtype=bool)
    best = -np.inf
    for i in order:
        if value[i] > best:
            mask[i] = True
            best = value[i]
    return mask
