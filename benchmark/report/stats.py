"""Statistics the report relies on: Student-t summaries, paired differences and claim verdicts.

Pure numpy/scipy/pandas; no MLflow, no torch. Every number in REPORT.md that carries a confidence
interval comes from here, so the arithmetic is tested on known values (tests/benchmark/report/test_stats.py).

Verdicts (``decide``): a claim is a family of paired comparisons, each tested one-sided with a paired
t-test — "equal or better" claims by non-inferiority against a margin, "beats" claims by superiority —
with Holm's step-down correction over the comparisons of the claim; verdicts are read from the Holm-adjusted
p-values, and the intervals shown beside them are Bonferroni simultaneous ones (``simultaneous_bounds``),
which keep the coverage they claim. ``claim_summary`` counts the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

CONFIDENCE = 0.95
# The one tolerance of every decision: a std or a distance from the threshold this small is round-off
# (e.g. 0.79 - 0.80 = -0.010000000000000009 against a 0.01 margin), read as exactly 0.
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
# One-sided family-wise level per direction ("holds", "refuted"): with one comparison a verdict agrees
# with the plain two-sided 95 % CI.
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


def t_test_power(gap: float, std: float, n: int, alpha: float = ALPHA) -> float:
    """Exact power of a one-sided paired t-test at level ``alpha`` over ``n`` pairs when the true mean lies
    ``gap`` beyond the threshold and the differences have std ``std``: ``P(T > t_{1-alpha, n-1})`` with
    ``T`` noncentral t (``n - 1`` df, noncentrality ``gap * sqrt(n) / std``)."""
    if n < 2:
        raise ValueError(f"t_test_power needs n >= 2 pairs, got n={n}")
    return float(_sps.nct.sf(_sps.t.isf(alpha, n - 1), n - 1, gap * math.sqrt(n) / std))


MAX_PAIRS_NEEDED = 1_000_000  # beyond this the answer is "infinite" for any suite


def pairs_needed(gap: float, std: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest n >= 2 at which a one-sided paired t-test at level ``alpha`` has power ``power`` for a true
    distance ``|gap|`` from the threshold with differences of std ``std`` (``t_test_power``).

    Solved on the noncentral t, not by scaling n·(MDD/gap)², which ignores that the t quantiles shrink
    as n grows. The observed gap and std are taken as the true ones: a planning number, not a promise.
    Inf when the gap is 0 (nothing to detect) or beyond ``MAX_PAIRS_NEEDED``; NaN when std is not finite;
    2 when the std is 0 and the gap is not.
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be in (0, 1), got alpha={alpha}, power={power}")
    gap = abs(float(gap))
    if not (math.isfinite(std) and math.isfinite(gap)):
        return math.nan
    if gap <= ZERO_TOLERANCE:
        return math.inf
    if std <= ZERO_TOLERANCE:
        return 2.0
    if t_test_power(gap, std, MAX_PAIRS_NEEDED, alpha) < power:
        return math.inf
    low, high = 1, 2  # power(low) < power <= power(high), n = 1 standing for "no test"
    while t_test_power(gap, std, high, alpha) < power:
        low, high = high, min(2 * high, MAX_PAIRS_NEEDED)
    while high - low > 1:  # power grows with n
        mid = (low + high) // 2
        low, high = (low, mid) if t_test_power(gap, std, mid, alpha) >= power else (mid, high)
    return float(high)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison (``treatment - control``) decided under a one-sided test within its claim.

    ``threshold`` is ``-margin`` for non-inferiority and 0 for superiority. ``p_value`` is the raw
    one-sided p of H0 "diff <= threshold" (the claim fails here), ``p_adjusted`` its Holm value;
    ``p_refute`` / ``p_refute_adjusted`` the same for the mirror H0 "diff >= threshold". The verdict is
    read from the adjusted p-values (see ``decide``). ``ci_low`` / ``ci_high`` are Bonferroni simultaneous
    bounds, each one-sided at ``alpha_ci`` = alpha / k. ``mdd`` is the minimum detectable difference above
    the threshold at ``alpha_ci``; ``pairs_needed`` the pairs at which the observed distance from the
    threshold would be detected with 80 % power at ``alpha_ci``. All NaN, and verdict "not run", with
    fewer than 2 pairs.
    """

    test: str
    threshold: float
    mean_diff: float
    std_diff: float
    n_pairs: int
    ci_low: float
    ci_high: float
    alpha_ci: float
    p_value: float
    p_adjusted: float
    p_refute: float
    p_refute_adjusted: float
    mdd: float
    pairs_needed: float
    verdict: str

    @property
    def p_decided(self) -> float:
        """The adjusted p of the direction that decided: the refute p when refuted, else the holds p."""
        return self.p_refute_adjusted if self.verdict == REFUTED else self.p_adjusted


def _moments(difference: PairedDifference | Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    if isinstance(difference, PairedDifference):
        return difference.mean_diff, difference.std_diff, difference.n_pairs
    s = summarize(difference)  # drops non-finite entries: a pair with a missing metric is no pair
    return s.mean, s.std, s.n


def simultaneous_bounds(mean, std, n, k: int, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Bonferroni simultaneous one-sided bounds of ``k`` means: each at level ``alpha / k``, so all ``k``
    lower bounds (and, separately, all ``k`` upper bounds) hold together with probability >= 1 - alpha.
    Holm's step-down, used for the verdicts, has no interval with that guarantee; these are what the
    report shows beside its verdicts."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    half = _sps.t.isf(alpha / k, n - 1) * std / np.sqrt(n)
    return mean - half, mean + half


def decide(differences: Sequence[PairedDifference | Sequence[float] | np.ndarray], test: str,
           margin: float = DEFAULT_MARGIN, alpha: float = ALPHA) -> list[Comparison]:
    """Decide each comparison of one claim, in input order.

    ``differences``: per comparison, the paired differences ``treatment - control`` (non-finite entries
    dropped) or a ``PairedDifference`` with ``std_diff``. ``test``: one of ``TESTS``. ``margin``: the
    non-inferiority margin m >= 0 (threshold ``-m``); superiority tests against 0 and ignores it, so one
    suite margin can be passed for every claim. ``alpha``: the one-sided family-wise level per direction,
    in (0, 0.5).

    Each comparison has two one-sided paired t-tests against the threshold — "holds" (H0: diff <=
    threshold) and "refuted" (H0: diff >= threshold) — each Holm-adjusted over the k tested comparisons.
    A comparison holds when its adjusted "holds" p is <= alpha, is refuted when its adjusted "refuted" p
    is <= alpha, and is inconclusive otherwise. For each comparison only one of the two nulls can be
    true, so the chance of any wrong "holds" or "refuted" in the claim is at most ``2 * alpha``.

    One tolerance: differences whose spread (std) is within ``ZERO_TOLERANCE`` of 0 are equal, and a mean
    within ``ZERO_TOLERANCE`` of the threshold lies on it (t = 0, both p = 0.5: inconclusive), so float
    round-off never decides. Comparisons with fewer than 2 finite pairs or a non-finite std are "not
    run" and leave the Holm family.
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

    out = [Comparison(test, threshold, float(mean[i]), float(std[i]), int(n[i]), *([math.nan] * 9), NOT_RUN)
           for i in range(len(moments))]
    if k == 0:
        return out
    m, df = mean[tested], n[tested] - 1
    s = np.where(std[tested] <= ZERO_TOLERANCE, 0.0, std[tested])
    se = s / np.sqrt(n[tested])
    gap = m - threshold
    gap = np.where(np.abs(gap) <= ZERO_TOLERANCE, 0.0, gap)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero std: the sign decides, a tie is t = 0
        t_stat = np.where(se > 0.0, gap / se, np.where(gap == 0.0, 0.0, np.sign(gap) * np.inf))
    p_holds, p_refute = _sps.t.sf(t_stat, df), _sps.t.cdf(t_stat, df)
    p_adj, p_refute_adj = holm(p_holds), holm(p_refute)
    verdicts = np.where(p_adj <= alpha, HOLDS, np.where(p_refute_adj <= alpha, REFUTED, INCONCLUSIVE))
    ci_low, ci_high = simultaneous_bounds(m, s, n[tested], k, alpha)
    level = alpha / k
    for j, i in enumerate(np.flatnonzero(tested)):
        out[i] = Comparison(test, threshold, float(m[j]), float(s[j]), int(n[i]), float(ci_low[j]),
                            float(ci_high[j]), level, float(p_holds[j]), float(p_adj[j]), float(p_refute[j]),
                            float(p_refute_adj[j]), minimum_detectable_difference(float(s[j]), int(n[i]), level),
                            pairs_needed(float(gap[j]), float(s[j]), level), str(verdicts[j]))
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
