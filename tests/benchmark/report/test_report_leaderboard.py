"""The leaderboard: one row per setting over seeds, de-duplicated, reference first, relative cost."""

import numpy as np
import pandas as pd
import pytest
from report_helpers import expected_accuracy, grid


def test_one_row_per_setting_and_dedup(study):
    _, _, paths = study
    lb = pd.read_csv(paths.leaderboard)
    keys = ["task", "backbone", "frontend", "hop_ms", "reduction_rate"]
    assert not lb.duplicated(keys).any()
    assert len(lb) == len({(t, f, h, r) for t, f, h, r, _ in grid()})
    assert lb["n"].eq(3).all()  # 3 seeds; the duplicate config collapsed, the FAILED run ignored
    row = lb[(lb.task == "toy-a") & (lb.frontend == "diffres") & (lb.hop_ms == 10) & (lb.reduction_rate == 0.5)]
    seeds = [expected_accuracy("diffres", 10.0, 0.5, 0), 0.9, expected_accuracy("diffres", 10.0, 0.5, 2)]
    assert row["mean"].iloc[0] == pytest.approx(np.mean(seeds), abs=1e-6)  # latest duplicate kept
    spec = lb[(lb.task == "toy-a") & (lb.frontend == "spec") & (lb.hop_ms == 10)]
    assert spec["mean"].iloc[0] < 0.9  # the FAILED 0.99 run is not in it
    assert spec["relative_cost"].iloc[0] == pytest.approx(1.0)
    assert lb.iloc[0]["frontend"] == "spec"
