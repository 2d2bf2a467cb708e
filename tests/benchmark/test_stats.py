import math

import numpy as np
import pandas as pd
import pytest

from benchmark import stats


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


def test_paired_difference_and_verdicts():
    better = stats.paired_difference([0.80, 0.82, 0.85], [0.70, 0.71, 0.76])  # diffs 0.10, 0.11, 0.09
    assert better.mean_diff == pytest.approx(0.10)
    assert better.ci_low == pytest.approx(0.10 - 4.302652729749464 * 0.01 / math.sqrt(3))
    assert better.holds and better.direction == "better"
    spans = stats.paired_difference([0.80, 0.70, 0.75], [0.75, 0.75, 0.75])
    assert not spans.holds and spans.direction == "no clear difference"
    worse = stats.paired_difference([0.6, 0.61, 0.59], [0.7, 0.7, 0.7])
    assert worse.direction == "worse"
    single = stats.paired_difference([0.9], [0.1])
    assert single.n_pairs == 1 and single.direction == "too few pairs" and not single.holds

    assert stats.verdict([better]) == stats.HOLDS
    assert stats.verdict([better, spans]) == stats.DOES_NOT_HOLD
    assert stats.verdict([better, single]) == stats.HOLDS  # a comparison without a CI is not evidence
    assert stats.verdict([single]) == stats.NOT_RUN
    assert stats.verdict([]) == stats.NOT_RUN


def test_equal_results_hold():
    same = stats.paired_difference([0.5, 0.6], [0.5, 0.6])
    assert same.mean_diff == 0.0 and same.ci_low == 0.0 and same.holds


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_pareto_front():
    cost = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    value = np.array([0.5, 0.4, 0.7, 0.6, 0.9])
    assert stats.pareto_front(cost, value).tolist() == [True, False, True, False, True]
