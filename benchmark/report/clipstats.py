"""Statistics that count test clips as well as seeds: the crossed-design t that decides (``clip_test``), the
two-way (seeds × clips) bootstrap beside it, and the exact sign-flip test of per-seed differences.

Every run of a suite is evaluated on the same fixed test clips, so a paired comparison of two settings over
``n_s`` seeds gives a per-clip difference matrix ``D [n_s, n_c]`` with ``D[s, j] = correct_treatment[s, j] -
correct_control[s, j]``: a crossed seeds × clips design. A paired t over the seeds' accuracy differences
treats the clips as fixed and answers "on these clips"; resampling seeds *and* clips answers "on clips
like these", which is what a claim about a task means.

The pigeonhole two-way bootstrap (resample rows and columns independently, with replacement) is slightly
conservative for crossed designs: its variance estimate carries the interaction (seed × clip) term about
twice over instead of once (McCullagh 2000, "Resampling and exchangeable arrays", Bernoulli 6). With
hundreds of clips that term is divided by ``n_s n_c`` and is small beside the seed and clip terms, so the
intervals come out wide, never too narrow. How wide depends on how much of D is seed × clip interaction,
and for correctness differences (entries -1, 0, 1) that is most of it: in the simulations of
tests/benchmark/report/test_clipstats.py the nominal 95 % interval covers 98-99.5 %. That is safe but wastes
power, so ``two_way_bootstrap`` rescales the replicates about the observed mean to the unbiased ANOVA
(method-of-moments) variance of the mean of a crossed design, ``(MS_seeds + MS_clips - MS_interaction) /
(n_s n_c)``, floored at ``MS_interaction / (n_s n_c)`` (a variance component is never negative): the
bootstrap keeps the shape of the distribution, the moments fix its scale, and the coverage comes back to
95 ± 2 % (``corrected=False`` gives the plain pigeonhole replicates).

The bootstrap gets the scale right but not the tails: with 10 seeds, its quantiles are normal ones where the
seed term has 9 degrees of freedom, too narrow at Holm's levels. ``clip_test`` therefore decides with the
ANOVA variance and a t on its Satterthwaite df (see its docstring); the bootstrap remains a tool (and tested).

numpy and scipy; ``verdicts`` applies ``clip_test`` to a claim's family.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from benchmark.report.stats import ZERO_TOLERANCE

HOLDS_DIRECTION, REFUTE_DIRECTION = "holds", "refuted"
# A p-value is resolved at level L when its floor 1 / (B + 1) sits well below L: 50 / L replicates put ~50
# replicates beyond the bound of a decision at L. The cap bounds the cost (B × n_s × n_c multiply-adds per
# comparison); at the cap, levels down to 50 / MAX_BOOT = 0.0025 (0.025 over families of 10) are resolved
# and smaller ones still have a floor of 5e-5.
MIN_BOOT, MAX_BOOT = 2_000, 20_000
CHUNK_CELLS = 4_000_000  # replicates × clips per chunk of weights (32 MB of float64)
BOOT_SEED = 20_001  # fixed: the same runs give the same report
EXACT_MAX_N = 16  # 2^16 sign patterns enumerated; beyond, a seeded Monte Carlo
SIGN_FLIP_DRAWS = 100_000


def n_boot(level: float) -> int:
    """Replicates that resolve a one-sided decision at ``level`` (e.g. 0.025 / k for a Holm family of k)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return int(min(MAX_BOOT, max(MIN_BOOT, math.ceil(50.0 / level))))


def _counts(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` multinomial(n; 1/n, ..., 1/n) count vectors [size, n]: how often each index is drawn."""
    draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)


def _mean_squares(d: np.ndarray) -> tuple[float, float, float]:
    """(MS_seeds, MS_clips, MS_interaction) of a crossed [n_s, n_c] design without replication."""
    n_s, n_c = d.shape
    m, rows, cols = d.mean(), d.mean(axis=1), d.mean(axis=0)
    ms_r = n_c * float(np.sum((rows - m) ** 2)) / (n_s - 1)
    ms_c = n_s * float(np.sum((cols - m) ** 2)) / (n_c - 1)
    ms_e = float(np.sum((d - rows[:, None] - cols[None, :] + m) ** 2)) / ((n_s - 1) * (n_c - 1))
    return ms_r, ms_c, ms_e


def crossed_variance(diff) -> float:
    """Variance of the grand mean of a crossed [n_seeds, n_clips] design from its ANOVA (method-of-moments)
    components, each held at zero or above (a variance is never negative): seeds (MS_R - MS_E) / n_c, clips
    (MS_C - MS_E) / n_s, interaction MS_E, so ``(max(MS_R - MS_E, 0) + max(MS_C - MS_E, 0) + MS_E) / (n_s n_c)``
    — ``(MS_R + MS_C - MS_E) / (n_s n_c)`` when both are positive, and never below the seeds-only variance
    ``MS_R / (n_s n_c)`` of a paired t on these clips (clips can only add uncertainty). NaN with fewer than 2
    seeds or clips."""
    return crossed_variance_df(diff)[0]


def crossed_variance_df(diff) -> tuple[float, float]:
    """``crossed_variance`` and its Satterthwaite degrees of freedom: the variance is a sum of mean squares
    with coefficients c_i, and df = (sum c_i MS_i)^2 / sum (c_i MS_i)^2 / df_i — about n_seeds - 1 when the seed
    term dominates, many more when the clip term does. (NaN, NaN) with fewer than 2 seeds or clips."""
    d = np.asarray(diff, dtype=float)
    n_s, n_c = d.shape
    if n_s < 2 or n_c < 2:
        return math.nan, math.nan
    ms = np.array(_mean_squares(d))
    dfs = np.array([n_s - 1, n_c - 1, (n_s - 1) * (n_c - 1)], dtype=float)
    seeds, clips = ms[0] > ms[2], ms[1] > ms[2]  # components estimated above zero
    coef = np.array([1.0 if seeds else 0.0, 1.0 if clips else 0.0, 1.0 - seeds - clips])
    total = float(coef @ ms)
    denominator = float(np.sum((coef * ms) ** 2 / dfs))
    df = total ** 2 / denominator if denominator > 0 else float(n_s - 1)
    return total / (n_s * n_c), df


def _pigeonhole(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n_s, n_c = d.shape
    chunk = max(1, CHUNK_CELLS // max(n_s, n_c))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        w_s, w_c = _counts(n_s, size, rng), _counts(n_c, size, rng)  # [size, n_s], [size, n_c]
        out[start:start + size] = np.einsum("bj,bj->b", w_s @ d, w_c) / (n_s * n_c)  # [size, n_c] -> [size]
    return out


def _check(diff) -> np.ndarray:
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2 or min(d.shape) < 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"two_way_bootstrap needs a finite [n_seeds, n_clips] matrix, got shape {d.shape}")
    return d


def _scale(d: np.ndarray, plain: np.ndarray) -> float:
    """The factor that brings the replicates' spread to ``crossed_variance`` (1 when either is 0 or undefined)."""
    spread, target = float(plain.var()), crossed_variance(d)
    return math.sqrt(target / spread) if spread > 0.0 and math.isfinite(target) else 1.0


def two_way_bootstrap(diff, *, n_boot: int, rng: np.random.Generator, corrected: bool = True) -> np.ndarray:
    """``n_boot`` replicates [n_boot] of the mean of ``diff`` [n_seeds, n_clips], seeds and clips resampled
    independently with replacement.

    A replicate is ``w_s · D · w_c / (n_s n_c)`` with ``w_s``, ``w_c`` multinomial count vectors (the
    same as averaging the resampled rows and columns), computed in chunks so that memory stays bounded.
    ``corrected``: rescale them about the observed mean to ``crossed_variance`` (module docstring).
    """
    d = _check(diff)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    plain = _pigeonhole(d, n_boot, rng)
    return d.mean() + (plain - d.mean()) * _scale(d, plain) if corrected else plain


@dataclass(frozen=True)
class ClipTest:
    """A comparison decided over seeds × clips: one-sided p of "holds" / "refuted", bounds at ``level``, the
    standard error of the mean difference and the degrees of freedom of its t."""

    p_holds: float
    p_refute: float
    ci_low: float
    ci_high: float
    se: float
    df: float


def clip_test(diff, threshold: float, level: float) -> ClipTest:
    """The decision that counts clips and seeds: the crossed design's variance of the mean difference
    (``crossed_variance``: seed, clip and interaction components, none below zero) with a t reference on its
    Satterthwaite degrees of freedom (``crossed_variance_df``) — the method-of-moments mixed model of a crossed
    seeds × clips design. When the seed term dominates the df are about n_seeds - 1, and the t quantile, not the
    normal one, sets the bounds: at Holm's levels with 10 seeds that is z = 2.7 against t = 3.6 (0.025 / 7),
    which a bootstrap over 10 seeds cannot see (the A/A control of the quick suite fired under the bootstrap).
    p against ``threshold`` (one-sided each way), bounds at ``level`` each side. A matrix with no variance at all
    (identical arms) is a tie: p = 1 both ways."""
    from scipy import stats as sps

    d = _check(diff)
    n_s = d.shape[0]
    if n_s < 2:
        raise ValueError(f"clip_test needs at least 2 seeds, got {n_s}")
    mean, (var, df) = float(d.mean()), crossed_variance_df(d)
    se = math.sqrt(var) if math.isfinite(var) and var > 0 else 0.0
    if se == 0.0:
        same = abs(mean - threshold) <= ZERO_TOLERANCE
        p_holds = 1.0 if same or mean < threshold else 0.0
        p_refute = 1.0 if same or mean > threshold else 0.0
        return ClipTest(p_holds, p_refute, mean, mean, 0.0, float(df))
    t = (mean - threshold) / se
    q = float(sps.t.ppf(1.0 - level, df))
    return ClipTest(float(sps.t.sf(t, df)), float(sps.t.cdf(t, df)), mean - q * se, mean + q * se, se, df)


def percentile_bounds(replicates, alpha: float) -> tuple[float, float]:
    """One-sided percentile bounds, each at level ``alpha``: the ``alpha`` and ``1 - alpha`` quantiles."""
    r = np.asarray(replicates, dtype=float)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha (one-sided) must be in (0, 0.5), got {alpha}")
    low, high = np.quantile(r, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_p(replicates, threshold: float) -> tuple[float, float]:
    """One-sided p of "holds" (H0: Δ <= threshold) and of "refuted" (H0: Δ >= threshold): the share of
    replicates on the null's side, ``(1 + count) / (B + 1)`` so that no p is 0. A replicate within
    ``ZERO_TOLERANCE`` of the threshold counts for both nulls: round-off never decides."""
    r = np.asarray(replicates, dtype=float)
    b = r.size
    p_holds = (1 + int(np.sum(r <= threshold + ZERO_TOLERANCE))) / (b + 1)
    p_refute = (1 + int(np.sum(r >= threshold - ZERO_TOLERANCE))) / (b + 1)
    return p_holds, p_refute


def sign_flip_p(per_seed_diffs, threshold: float, direction: str) -> float:
    """Exact one-sided sign-flip p of the mean of ``per_seed_diffs - threshold``.

    Under H0 each seed's shifted difference is symmetric about 0, so its sign is a fair coin: p is the
    share of the 2^n sign patterns whose mean is at least as far on the alternative's side as the
    observed one ("holds": >=, "refuted": <=). Its floor is 2^-n (1/8 for 3 seeds, 1/1024 for 10), so with
    few seeds no Holm level is reachable: a sensitivity column, not the decision. n <= EXACT_MAX_N
    enumerates every pattern; larger n uses SIGN_FLIP_DRAWS seeded draws, ``(1 + count) / (draws + 1)``.
    NaN with no finite difference.
    """
    if direction not in (HOLDS_DIRECTION, REFUTE_DIRECTION):
        raise ValueError(f"direction must be {HOLDS_DIRECTION!r} or {REFUTE_DIRECTION!r}, got {direction!r}")
    x = np.asarray(per_seed_diffs, dtype=float)
    x = x[np.isfinite(x)] - threshold
    n = x.size
    if n == 0:
        return math.nan
    x = np.where(np.abs(x) <= ZERO_TOLERANCE, 0.0, x)
    sign = 1.0 if direction == HOLDS_DIRECTION else -1.0
    observed = sign * x.sum()
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # [2^n, n]
        return float(np.mean(sign * (signs @ x) >= observed - ZERO_TOLERANCE))
    rng = np.random.default_rng(BOOT_SEED)
    signs = rng.choice((1.0, -1.0), size=(SIGN_FLIP_DRAWS, n))
    count = int(np.sum(sign * (signs @ x) >= observed - ZERO_TOLERANCE))
    return (1 + count) / (SIGN_FLIP_DRAWS + 1)
