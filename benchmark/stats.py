"""Statistics the report relies on: Student-t summaries over seeds/folds and paired differences.

Pure numpy/scipy/pandas; no MLflow, no torch. Every number in REPORT.md that carries a confidence
interval comes from here, so the arithmetic is tested on known values (tests/benchmark/test_stats.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

CONFIDENCE = 0.95
# Equal results give a CI of exactly [0, 0]; float round-off must not turn that into "does not hold".
ZERO_TOLERANCE = 1e-9

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NOT_RUN = "not run"


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
    """Mean of ``treatment - control`` over matched pairs, with its Student-t CI."""

    mean_diff: float
    ci_low: float
    ci_high: float
    n_pairs: int

    @property
    def direction(self) -> str:
        """'better' / 'worse' when the CI excludes 0, 'no clear difference' when it spans 0."""
        if self.n_pairs < 2 or not math.isfinite(self.ci_low):
            return "too few pairs"
        if self.ci_low > ZERO_TOLERANCE:
            return "better"
        if self.ci_high < -ZERO_TOLERANCE:
            return "worse"
        return "no clear difference"

    @property
    def holds(self) -> bool:
        """The report's rule: a comparison supports 'treatment >= control' iff the CI lies at/above 0."""
        return self.n_pairs >= 2 and math.isfinite(self.ci_low) and self.ci_low >= -ZERO_TOLERANCE


def paired_difference(treatment, control, confidence: float = CONFIDENCE) -> PairedDifference:
    """Paired difference of two equally long sequences (pair i = same task, seed, fold, backbone)."""
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"paired_difference needs equal lengths, got {t.shape} and {c.shape}")
    s = summarize(t - c, confidence)
    return PairedDifference(s.mean, s.ci_low, s.ci_high, s.n)


def verdict(differences: list[PairedDifference]) -> str:
    """Combine comparisons into one claim verdict.

    'not run' when no comparison has >= 2 pairs; 'holds' when every testable comparison holds
    (CI of the difference at/above 0); otherwise 'does not hold'.
    """
    testable = [d for d in differences if d.n_pairs >= 2 and math.isfinite(d.ci_low)]
    if not testable:
        return NOT_RUN
    return HOLDS if all(d.holds for d in testable) else DOES_NOT_HOLD


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
