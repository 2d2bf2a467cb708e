import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from benchmark.report import stats


def test_summary_on_known_numbers():
    s = stats.summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.std == 1.0 and s.n == 3
    t = 4.302652729749464  # t(0.975, df=2)
    assert stats.t_quantile(3) == pytest.approx(t, rel=1e-12)
    assert s.ci_low == pytest.approx(2.0 - t / math.sqrt(3), rel=1e-12)
    assert s.ci_high == pytest.approx(2.0 + t / math.sqrt(3), rel=1e-12)


def test_summary_drops_nan_and_has_no_interval_for_one_value():
    s = stats.summarize([0.5, float("nan")])
    assert s.n == 1 and s.mean == 0.5
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert stats.summarize([]).n == 0


def test_t_quantile_rejects_too_few_values():
    with pytest.raises(ValueError, match="n >= 2"):
        stats.t_quantile(1)


def test_summarize_groups_sorted_and_counted():
    df = pd.DataFrame({"g": ["b", "a", "a", "a", "b"], "v": [10.0, 1.0, 2.0, 3.0, 12.0]})
    out = stats.summarize_groups(df, ["g"], "v")
    assert out["g"].tolist() == ["a", "b"]
    assert out["mean"].tolist() == [2.0, 11.0]
    assert out["n"].tolist() == [3, 2]
    assert out.loc[1, "ci95_high"] == pytest.approx(11.0 + 12.706204736174698 * math.sqrt(2) / math.sqrt(2))


def test_paired_difference():
    better = stats.paired_difference([0.80, 0.82, 0.85], [0.70, 0.71, 0.76])  # diffs 0.10, 0.11, 0.09
    assert better.mean_diff == pytest.approx(0.10) and better.std_diff == pytest.approx(0.01)
    assert better.ci_low == pytest.approx(0.10 - 4.302652729749464 * 0.01 / math.sqrt(3))
    assert better.ci_high == pytest.approx(0.10 + 4.302652729749464 * 0.01 / math.sqrt(3))
    single = stats.paired_difference([0.9], [0.1])
    assert single.n_pairs == 1 and math.isnan(single.ci_low) and math.isnan(single.std_diff)
    same = stats.paired_difference([0.5, 0.6], [0.5, 0.6])
    assert same.mean_diff == 0.0 and same.ci_low == 0.0 == same.ci_high


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_pareto_front():
    cost = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    value = np.array([0.5, 0.4, 0.7, 0.6, 0.9])
    assert stats.pareto_front(cost, value).tolist() == [True, False, True, False, True]


# --- decided verdicts: non-inferiority / superiority with Holm ---------------------------------------

NI, SUP = stats.NON_INFERIORITY, stats.SUPERIORITY
CLOSE_TO_MARGIN = [-0.004, -0.002, -0.003, -0.001, -0.005]  # mean -0.003, std sqrt(2.5e-6)


def _with_p(p: float, n: int = 10, threshold: float = 0.0) -> stats.PairedDifference:
    """A comparison of n pairs, std 1, whose one-sided 'holds' p-value against ``threshold`` is ``p``."""
    mean = threshold + sps.t.isf(p, n - 1) / math.sqrt(n)
    return stats.PairedDifference(mean, math.nan, math.nan, n, 1.0)


def test_paired_difference_keeps_the_std_of_the_differences():
    d = stats.paired_difference([0.80, 0.82, 0.85], [0.70, 0.71, 0.76])
    assert d.std_diff == pytest.approx(0.01)
    assert math.isnan(stats.PairedDifference(0.1, 0.0, 0.2, 3).std_diff)  # 4-field construction still works


def test_non_inferiority_holds_with_a_negative_mean_inside_the_margin():
    (c,) = stats.decide([CLOSE_TO_MARGIN], NI, margin=0.01)
    se = math.sqrt(2.5e-6) / math.sqrt(5)
    t975 = sps.t.ppf(0.975, 4)
    assert c.mean_diff == pytest.approx(-0.003) and c.mean_diff < 0
    assert c.threshold == -0.01 and c.n_pairs == 5 and c.std_diff == pytest.approx(math.sqrt(2.5e-6))
    assert c.ci_low == pytest.approx(-0.003 - t975 * se) and c.ci_low > -0.01
    assert c.p_value == pytest.approx(sps.t.sf((-0.003 + 0.01) / se, 4)) and c.p_value == c.p_adjusted
    assert c.verdict == stats.HOLDS


def test_superiority_refuted_when_the_whole_interval_is_below_zero():
    (c,) = stats.decide([CLOSE_TO_MARGIN], SUP, margin=0.01)  # margin is ignored by superiority
    assert c.threshold == 0.0
    assert c.ci_high == pytest.approx(-0.003 + sps.t.ppf(0.975, 4) * math.sqrt(2.5e-6) / math.sqrt(5))
    assert c.ci_high < 0 and c.verdict == stats.REFUTED


def test_superiority_inconclusive_when_the_interval_spans_zero():
    diffs = [0.01, -0.005, 0.02, 0.0]
    (c,) = stats.decide([diffs], SUP)
    s = stats.summarize(diffs)
    assert c.ci_low < 0 < c.ci_high and c.verdict == stats.INCONCLUSIVE
    assert c.p_value == pytest.approx(sps.t.sf(s.mean / (s.std / 2.0), 3))


def test_non_inferiority_refuted_when_the_interval_is_below_minus_margin():
    (c,) = stats.decide([[-0.03, -0.025, -0.035]], NI, margin=0.01)
    assert c.ci_high == pytest.approx(-0.03 + 4.302652729749464 * 0.005 / math.sqrt(3))  # -0.0176
    assert c.ci_high < -0.01 and c.verdict == stats.REFUTED
    (wide,) = stats.decide([[-0.03, -0.025, -0.035]], NI, margin=0.02)  # upper end -0.0176 > -0.02
    assert wide.verdict == stats.INCONCLUSIVE


def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    assert stats.holm([0.02, 0.02]).tolist() == [0.04, 0.04]
    assert stats.holm([]).size == 0
    with pytest.raises(ValueError, match="p-values in"):
        stats.holm([0.1, float("nan")])


@pytest.mark.parametrize("test", stats.TESTS)
@pytest.mark.parametrize("diffs", [CLOSE_TO_MARGIN, [0.01, -0.005, 0.02, 0.0], [-0.03, -0.025, -0.035],
                                   [0.02, 0.03, 0.025], [-0.012, -0.008, -0.011, -0.009, -0.01, -0.0105]])
def test_single_comparison_reads_the_plain_95_percent_interval(diffs, test):
    (c,) = stats.decide([diffs], test, margin=0.01)
    s = stats.summarize(diffs)
    assert (c.ci_low, c.ci_high) == pytest.approx((s.ci_low, s.ci_high), rel=1e-12)
    assert c.alpha_ci == 0.025
    threshold = -0.01 if test == NI else 0.0
    holds = s.ci_low >= threshold if test == NI else s.ci_low > threshold
    expected = stats.HOLDS if holds else stats.REFUTED if s.ci_high < threshold else stats.INCONCLUSIVE
    assert c.verdict == expected


def test_holm_family_tightens_the_bounds():
    alone = stats.decide([_with_p(0.017)], SUP)[0]
    assert alone.verdict == stats.HOLDS
    pair = stats.decide([_with_p(0.017), _with_p(0.017)], SUP)
    se = 1.0 / math.sqrt(10)
    for c in pair:  # Bonferroni level at the first step: 0.034 > 0.025
        assert c.p_adjusted == pytest.approx(0.034) and c.alpha_ci == pytest.approx(0.0125)
        assert c.ci_low == pytest.approx(c.mean_diff - sps.t.isf(0.0125, 9) * se)
        assert c.ci_low < 0 and c.verdict == stats.INCONCLUSIVE


def test_holm_step_down_passes_and_stops():
    passed = stats.decide([_with_p(0.02), _with_p(0.001)], SUP)
    assert [c.verdict for c in passed] == [stats.HOLDS, stats.HOLDS]
    assert [c.p_adjusted for c in passed] == pytest.approx([0.02, 0.002])
    # The intervals are Bonferroni (0.0125 per bound), not Holm: the second-step comparison holds while its
    # simultaneous lower bound is still below 0 (Holm is the stronger test, the interval the honest one).
    se = 1.0 / math.sqrt(10)
    assert all(c.alpha_ci == pytest.approx(0.0125) for c in passed)
    assert passed[0].ci_low == pytest.approx(passed[0].mean_diff - sps.t.isf(0.0125, 9) * se) and passed[0].ci_low < 0
    # 0.015 fails the first step (0.03 > 0.025), so Holm stops: 0.02 < 0.025 alone does not hold either.
    stopped = stats.decide([_with_p(0.015), _with_p(0.02)], SUP)
    assert [c.p_adjusted for c in stopped] == pytest.approx([0.03, 0.03])
    assert all(c.verdict == stats.INCONCLUSIVE for c in stopped)


def test_refuted_is_holm_adjusted_too():
    worse = stats.PairedDifference(-_with_p(0.017).mean_diff, math.nan, math.nan, 10, 1.0)  # mirror p 0.017
    (alone,) = stats.decide([worse], SUP)
    assert alone.verdict == stats.REFUTED and alone.p_decided == pytest.approx(0.017)
    assert alone.p_adjusted == pytest.approx(0.983)  # the "holds" p is not the one that decided
    pair = stats.decide([worse, worse], SUP)
    assert all(c.p_refute_adjusted == pytest.approx(0.034) and c.verdict == stats.INCONCLUSIVE for c in pair)


def test_refuted_rows_show_the_p_that_decided():
    """Quick suite, claim 1 (results/quick/claims.csv): DiffRes at δ 0.75 minus spec, mean -0.077, std
    0.034022, n 5, in a family of 4 non-inferiority comparisons; its refute p (Holm) is 0.023, not 1."""
    family = [stats.PairedDifference(m, math.nan, math.nan, 5, s) for m, s in
              ((-0.01, 0.010606), (-0.018, 0.009082), (-0.077, 0.034022), (-0.042, 0.031344))]
    c = stats.decide(family, NI, margin=0.01)[2]
    assert c.verdict == stats.REFUTED and c.p_adjusted == 1.0
    assert c.p_decided == c.p_refute_adjusted == pytest.approx(0.023, abs=0.0005)


_comparison = st.tuples(st.floats(-0.1, 0.1), st.floats(0.001, 0.1), st.integers(2, 12))


@settings(max_examples=60, deadline=None)
@given(st.lists(_comparison, min_size=1, max_size=6), st.sampled_from(stats.TESTS))
def test_verdicts_follow_holm_and_intervals_are_bonferroni(family, test):
    diffs = [stats.PairedDifference(m, math.nan, math.nan, n, s) for m, s, n in family]
    comps = stats.decide(diffs, test, margin=0.01)
    k = len(comps)
    for c in comps:
        assert c.alpha_ci == pytest.approx(0.025 / k)
        se = c.std_diff / math.sqrt(c.n_pairs)
        assert c.ci_low == pytest.approx(c.mean_diff - sps.t.isf(0.025 / k, c.n_pairs - 1) * se)
        assert (c.verdict == stats.HOLDS) == (c.p_adjusted <= 0.025)
        assert (c.verdict == stats.REFUTED) == (c.p_refute_adjusted <= 0.025)
        if c.ci_low > c.threshold + 1e-9:  # Bonferroni rejects => Holm rejects, never the reverse
            assert c.verdict == stats.HOLDS
        if c.ci_high < c.threshold - 1e-9:
            assert c.verdict == stats.REFUTED


def _miss_rates(low_fn, reps: int = 20000, k: int = 7, n: int = 5, seed: int = 20):
    """Simulated family of k comparisons (n pairs, sd 1): 6 large effects and one null (true mean 0).
    Returns (share of families where the null's lower bound is above 0, share where any lower bound is above
    its true mean)."""
    rng = np.random.default_rng(seed)
    truth = np.array([3.0] * (k - 1) + [0.0])
    x = rng.normal(truth[None, :, None], 1.0, size=(reps, k, n))
    mean, std = x.mean(axis=2), x.std(axis=2, ddof=1)
    low = low_fn(mean, std, n, k)
    return float((low[:, -1] > 0).mean()), float((low > truth).any(axis=1).mean())


def _holm_step_bounds(mean, std, n, k):
    """The old "Holm-adjusted" lower bounds: each at alpha * p / p_adj (the level Holm tested it at)."""
    p = sps.t.sf(mean / (std / math.sqrt(n)), n - 1)
    adj = np.vstack([stats.holm(row) for row in p])
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(adj > 0, 0.025 * p / adj, 0.025 / k)
    return mean - sps.t.isf(np.clip(level, 1e-300, 0.5), n - 1) * std / math.sqrt(n)


def test_reported_intervals_keep_their_coverage():
    """Seeded simulation (k = 7, n = 5, 6 large effects + 1 null): the Bonferroni bounds the report shows
    miss with at most 2.5 % family-wise (the null alone: 0.025 / 7); the old Holm-level bounds missed
    4.4 % of the time (the null alone 2.4 %), so this test would catch them. 20000 families: the Monte Carlo
    sd of a 2.5 % rate is 0.11 %."""
    null_miss, any_miss = _miss_rates(lambda m, s, n, k: stats.simultaneous_bounds(m, s, n, k)[0])
    assert null_miss <= 0.025 / 7 + 0.0015 and any_miss <= 0.025 + 0.0035
    _, old_any_miss = _miss_rates(_holm_step_bounds)
    assert old_any_miss > 0.035
    # decide reports exactly these bounds
    family = [[3.1, 2.9, 3.3, 2.8, 3.0]] * 6 + [[0.2, -0.1, 0.4, 0.0, 0.1]]
    decided = stats.decide(family, SUP)
    m, s = np.mean(family, axis=1), np.std(family, axis=1, ddof=1)
    assert [c.ci_low for c in decided] == pytest.approx(stats.simultaneous_bounds(m, s, 5, 7)[0])


@pytest.mark.parametrize(("gap", "std", "alpha"), [(0.002, 0.009746, 0.025), (0.134444, 0.179763, 0.025 / 4),
                                                   (0.095556, 0.19317, 0.025 / 4), (0.5, 1.0, 0.01)])
def test_pairs_needed_is_the_smallest_n_with_80_percent_power(gap, std, alpha):
    n = int(stats.pairs_needed(gap, std, alpha))
    power = [sps.nct.sf(sps.t.isf(alpha, m - 1), m - 1, gap * math.sqrt(m) / std) for m in (n - 1, n)]
    assert power[1] >= 0.8 and (n == 2 or power[0] < 0.8)
    assert stats.pairs_needed(-gap, std, alpha) == n  # a distance, either side of the threshold


def test_pairs_needed_on_known_numbers():
    # quick claim 3 (-0.012 +- 0.009746 over 5 pairs against the -0.01 margin): 189 pairs, where the old
    # n * (MDD / gap)^2 scaling said 329
    assert stats.pairs_needed(-0.002, 0.009746, 0.025) == 189
    assert stats.pairs_needed(0.0, 0.01) == math.inf and stats.pairs_needed(0.01, 0.0) == 2
    assert math.isnan(stats.pairs_needed(0.01, math.nan))
    assert stats.pairs_needed(1e-7, 1.0) == math.inf  # beyond a million pairs


def test_minimum_detectable_difference_on_known_numbers():
    expected = (sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)) * 0.02 / math.sqrt(5)
    assert expected == pytest.approx(0.033249, abs=1e-6)  # (2.7764 + 0.9410) * 0.02 / sqrt(5)
    assert stats.minimum_detectable_difference(0.02, 5, 0.025) == pytest.approx(expected, rel=1e-12)
    mdd = stats.minimum_detectable_difference(1.0, 10, 0.025)
    exact_power = sps.nct.sf(sps.t.isf(0.025, 9), 9, mdd * math.sqrt(10))
    assert exact_power == pytest.approx(0.8, abs=0.005)
    assert math.isnan(stats.minimum_detectable_difference(0.02, 1, 0.025))
    assert math.isnan(stats.minimum_detectable_difference(math.nan, 5, 0.025))


def test_comparison_mdd_is_at_the_bonferroni_level_of_its_family():
    a, b = [0.01, 0.02, 0.015, 0.03], [0.0, -0.01, 0.01]
    ca, cb = stats.decide([a, b], SUP)
    sa = stats.summarize(a)
    assert ca.mdd == pytest.approx(stats.minimum_detectable_difference(sa.std, 4, 0.0125), rel=1e-12)
    assert stats.decide([a], SUP)[0].mdd < ca.mdd


def test_too_few_pairs_are_not_run_and_leave_the_family():
    not_run = [[0.5], [], [float("nan"), float("nan"), 0.1], stats.PairedDifference(0.1, 0.0, 0.2, 5)]
    comps = stats.decide(not_run, NI)
    assert [c.verdict for c in comps] == [stats.NOT_RUN] * 4
    assert all(math.isnan(c.ci_low) and math.isnan(c.p_adjusted) and math.isnan(c.mdd) for c in comps)
    assert comps[0].n_pairs == 1 and comps[0].mean_diff == 0.5
    mixed = stats.decide([*not_run, CLOSE_TO_MARGIN], NI)
    assert mixed[-1] == stats.decide([CLOSE_TO_MARGIN], NI)[0]  # k = 1: not-run comparisons do not count
    (dropped,) = stats.decide([[0.1, float("nan"), 0.12, 0.11]], SUP)
    assert dropped.n_pairs == 3


def test_zero_spread_differences():
    ni, sup = stats.decide([[0.0, 0.0, 0.0]], NI)[0], stats.decide([[0.0, 0.0, 0.0]], SUP)[0]
    assert ni.verdict == stats.HOLDS and (ni.ci_low, ni.ci_high) == (0.0, 0.0)
    assert sup.verdict == stats.INCONCLUSIVE  # [0, 0] is not above 0, and "refuted" needs the upper end < 0
    # -0.010000000000000009: a tie with the margin up to round-off. One tolerance: the mean is on the
    # threshold, so the p-values (0.5 each way) and the verdict (inconclusive) agree.
    at_margin = [0.79 - 0.80] * 3
    (tie,) = stats.decide([at_margin], NI, margin=0.01)
    assert tie.verdict == stats.INCONCLUSIVE and tie.p_value == tie.p_refute == 0.5 and tie.std_diff == 0.0
    assert stats.decide([[-0.02] * 4], NI)[0].verdict == stats.REFUTED


def test_decide_validates_its_arguments():
    with pytest.raises(ValueError, match="non-inferiority"):
        stats.decide([CLOSE_TO_MARGIN], "equivalence")
    with pytest.raises(ValueError, match="alpha"):
        stats.decide([CLOSE_TO_MARGIN], SUP, alpha=0.5)
    with pytest.raises(ValueError, match="margin"):
        stats.decide([CLOSE_TO_MARGIN], NI, margin=-0.01)
    assert stats.decide([], SUP) == []


def test_claim_summary_counts_and_wording():
    family = [CLOSE_TO_MARGIN, [-0.03, -0.031, -0.029, -0.03, -0.032], [0.01, -0.03, 0.02, -0.02], [0.1]]
    comps = stats.decide(family, NI, margin=0.01)
    assert [c.verdict for c in comps] == [stats.HOLDS, stats.REFUTED, stats.INCONCLUSIVE, stats.NOT_RUN]
    summary = stats.claim_summary(comps)
    assert (summary.n_holds, summary.n_refuted, summary.n_inconclusive, summary.n_not_run) == (1, 1, 1, 1)
    assert summary.text == "holds on 1 of 4 comparisons, refuted on 1, inconclusive on 1, not run on 1"
    assert stats.claim_summary(comps[:3]).text == "holds on 1 of 3 comparisons, refuted on 1, inconclusive on 1"
    spanning = stats.claim_summary(stats.decide([[0.01, -0.03, 0.02, -0.02]], NI))
    assert spanning.text == "holds on 0 of 1 comparisons, refuted on 0, inconclusive on 1"
    assert "does not hold" not in spanning.text
    assert stats.claim_summary(stats.decide([[0.1]], NI)).text == stats.NOT_RUN
    assert stats.claim_summary([]).text == stats.NOT_RUN
