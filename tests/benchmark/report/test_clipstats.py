"""The seeds × clips statistics on known numbers: bootstrap coverage against simulated crossed designs with a
known mean, hand-computed sign-flip p-values, and the replicate count that resolves a Holm level."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.report import clipstats


def _simulated(rng, mu, n_seeds=10, n_clips=200, seed_sd=0.02, clip_sd=0.3, flip=0.2):
    """D = mu + a_s + b_j + e_sj: seed and clip effects plus Bernoulli-like interaction noise in {-1, 0, 1}."""
    a = rng.normal(0.0, seed_sd, n_seeds)
    b = rng.normal(0.0, clip_sd, n_clips)
    e = rng.choice([-1.0, 0.0, 1.0], p=[flip, 1 - 2 * flip, flip], size=(n_seeds, n_clips))
    return mu + a[:, None] + b[None, :] + e


def test_two_way_bootstrap_coverage_of_a_known_mean():
    """Over 300 simulated data sets the corrected 95 % percentile interval covers the true mean within ±2 points
    of nominal; the plain pigeonhole one is conservative (McCullagh 2000), here by about 3 points."""
    rng = np.random.default_rng(1)
    mu, n_sets = 0.02, 300
    plain = corrected = 0
    for _ in range(n_sets):
        d = _simulated(rng, mu)
        state = rng.bit_generator.state
        low, high = clipstats.percentile_bounds(clipstats.two_way_bootstrap(d, n_boot=1000, rng=rng), 0.025)
        corrected += low <= mu <= high
        rng.bit_generator.state = state  # the same resamples, uncorrected
        low, high = clipstats.percentile_bounds(
            clipstats.two_way_bootstrap(d, n_boot=1000, rng=rng, corrected=False), 0.025)
        plain += low <= mu <= high
    assert abs(corrected / n_sets - 0.95) <= 0.02
    assert plain / n_sets >= 0.97


def test_bootstrap_replicates_are_means_of_resampled_rows_and_columns():
    """One replicate by hand: the multinomial weights equal averaging the drawn rows and columns."""
    d = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    rng = np.random.default_rng(3)
    r = clipstats.two_way_bootstrap(d, n_boot=5, rng=rng, corrected=False)
    rng = np.random.default_rng(3)
    w_s = np.bincount(rng.integers(0, 2, size=2), minlength=2)
    w_c = np.bincount(rng.integers(0, 3, size=3), minlength=3)
    assert r[0] == pytest.approx(w_s @ d @ w_c / 6)
    assert np.all(np.isin(np.round(r * 6), np.arange(-6, 7)))  # sums of 6 cells of {-1, 0, 1}


def test_crossed_variance_of_a_pure_interaction_and_a_constant():
    d = np.array([[1.0, -1.0], [-1.0, 1.0]])  # MS_R = MS_C = 0, MS_E = 4: the floor
    assert clipstats.crossed_variance(d) == pytest.approx(4.0 / 4)
    assert clipstats.crossed_variance(np.full((3, 4), 0.5)) == 0.0
    assert np.isnan(clipstats.crossed_variance(np.ones((1, 4))))


def test_bootstrap_p_counts_the_null_side_with_the_plus_one():
    r = np.array([-0.02, 0.0, 0.01, 0.03])
    assert clipstats.bootstrap_p(r, 0.0) == (pytest.approx(3 / 5), pytest.approx(4 / 5))  # 0.0 counts for both
    assert clipstats.bootstrap_p(r, -0.05) == (pytest.approx(1 / 5), pytest.approx(5 / 5))


def test_percentile_bounds():
    r = np.arange(101) / 100.0
    assert clipstats.percentile_bounds(r, 0.025) == (pytest.approx(0.025), pytest.approx(0.975))


def test_n_boot_resolves_the_holm_level():
    assert clipstats.n_boot(0.025) == 2000
    assert clipstats.n_boot(0.025 / 4) == 8000
    assert clipstats.n_boot(0.025 / 100) == clipstats.MAX_BOOT


@pytest.mark.parametrize(("diffs", "threshold", "direction", "p"), [
    ([0.1, 0.2, 0.3], 0.0, "holds", 1 / 8),  # only the observed signs reach the observed mean
    ([0.1, 0.2, 0.3], 0.0, "refuted", 1.0),
    ([-0.1, -0.2, -0.3], 0.0, "refuted", 1 / 8),
    ([0.1, 0.2, -0.3], 0.0, "holds", 5 / 8),  # observed sum 0; ±.1 ±.2 ±.3 >= 0: .6, .4, .2, 0, 0
    ([0.0, 0.02, 0.04], 0.01, "holds", 3 / 8),  # shifted -.01, .01, .03 (sum .03); >= .03: .05, .03, .03
])
def test_sign_flip_p_by_hand(diffs, threshold, direction, p):
    assert clipstats.sign_flip_p(diffs, threshold, direction) == pytest.approx(p)


def test_sign_flip_p_floor_and_monte_carlo():
    assert clipstats.sign_flip_p(np.ones(10), 0.0, "holds") == pytest.approx(2.0 ** -10)
    big = clipstats.sign_flip_p(np.ones(20), 0.0, "holds")  # exact 2^-20, MC floor 1 / (draws + 1)
    assert big == pytest.approx(1 / (clipstats.SIGN_FLIP_DRAWS + 1))
    assert np.isnan(clipstats.sign_flip_p([np.nan], 0.0, "holds"))


def test_clip_test_counts_a_difference_carried_by_two_clips_as_weak_evidence():
    """Two clips of 200 carry the whole difference on 5 seeds: the clip term makes it weak evidence (by hand: mean
    0.01, SE sqrt(MS_clips / 1000) = 0.00705, t = 1.42 on the clips' 199 df, p ~ 0.08), where a t over seeds
    alone would see five identical differences and no spread at all."""
    d = np.zeros((5, 200))
    d[:, :2] = 1.0
    result = clipstats.clip_test(d, 0.0, 0.025)
    assert result.df == pytest.approx(199) and result.se == pytest.approx(math.sqrt(clipstats.crossed_variance(d)))
    assert result.se == pytest.approx(0.00705, abs=1e-4) and 0.07 < result.p_holds < 0.1 and result.p_refute > 0.9
    assert result.ci_low < 0.0 < result.ci_high
    assert clipstats.clip_test(np.zeros((5, 10)), 0.0, 0.025).p_holds == 1.0  # identical arms: a tie


def test_clip_test_uses_the_seed_degrees_of_freedom():
    """Pure seed effects (every clip of a seed moves together): the decision is the paired t over seeds, on
    n_seeds - 1 df."""
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    per_seed = rng.normal(0.01, 0.01, size=6)
    d = np.repeat(per_seed[:, None], 50, axis=1)
    t = sps.ttest_1samp(per_seed, 0.0, alternative="greater")
    assert clipstats.clip_test(d, 0.0, 0.025).p_holds == pytest.approx(t.pvalue, rel=1e-6)


def test_clip_test_coverage_and_false_detections_at_a_holm_level():
    """The deciding rule on simulated crossed designs: its 95 % interval covers the known mean within ±2 points,
    and at Holm's strictest level of a 7-comparison family (0.025 / 7) the null fires at about that rate — with
    10 seeds the normal quantiles of a bootstrap would fire several times as often."""
    rng = np.random.default_rng(7)
    covered = sum(low <= 0.02 <= high for low, high in
                  ((r.ci_low, r.ci_high) for r in (clipstats.clip_test(_simulated(rng, 0.02), 0.02, 0.025)
                                                   for _ in range(300))))
    assert abs(covered / 300 - 0.95) <= 0.02
    level, n_sets = 0.025 / 7, 4000
    fired = sum(clipstats.clip_test(_simulated(rng, 0.0, seed_sd=0.01, clip_sd=0.05, n_clips=100), 0.0, level)
                .p_holds < level for _ in range(n_sets))
    assert fired / n_sets <= 2 * level


def test_a_clip_component_estimated_below_zero_counts_as_zero():
    """Independent noise on every cell (no clip effect): MS_clips falls below MS_interaction about half the time;
    the clip component is then held at zero and the variance is the seeds-only one, never smaller than a paired
    t's on these clips."""
    from scipy import stats as sps

    rng = np.random.default_rng(11)
    for _ in range(20):
        d = rng.choice([-1.0, 0.0, 1.0], p=[0.02, 0.96, 0.02], size=(10, 300)) + rng.normal(0, 0.01, (10, 1))
        rows = d.mean(axis=1)
        seeds_only = rows.var(ddof=1) / 10
        assert clipstats.crossed_variance(d) >= seeds_only * (1 - 1e-12)
        ms_r, ms_c, ms_e = clipstats._mean_squares(d)
        if ms_c <= ms_e and ms_r > ms_e:
            assert clipstats.crossed_variance(d) == pytest.approx(seeds_only)
            p = sps.ttest_1samp(rows, 0.0, alternative="greater").pvalue
            assert clipstats.clip_test(d, 0.0, 0.025).p_holds == pytest.approx(p, rel=1e-6)
