"""The map's cells decided from a suite's runs.csv and predictions (no MLflow): DiffRes against each arm at its
δ and against the spectrogram, seeds paired, one Holm family, the cell's dials from the task registry."""

import numpy as np
import pandas as pd
import pytest

from benchmark.report.map_cells import decide_cells

TASK = "map-gap64ms-event40pct"


def _tables(seeds: int = 6, clips: int = 200):
    rng = np.random.default_rng(0)
    runs, preds = [], []
    for frontend, rate, share in (("diffres", 0.9, 0.9), ("avgpool", 0.9, 0.2), ("spec", 0.0, 1.0)):
        for seed in range(seeds):
            h = f"{frontend}{seed}"
            right = rng.random(clips) < share
            runs.append({"task": TASK, "frontend": frontend, "reduction_rate": rate, "seed": seed,
                         "config_hash": h, "test_metric": float(right.mean())})
            preds += [{"config_hash": h, "clip_id": f"c{i:03d}", "label": 0, "pred": 0 if ok else 1}
                      for i, ok in enumerate(right)]
    return pd.DataFrame(runs), pd.DataFrame(preds)


def test_cells_are_decided_both_ways_with_their_dials():
    runs, preds = _tables()
    cells = decide_cells(runs, preds).set_index("comparison")
    assert set(cells.index) == {"diffres - avgpool", "diffres - spec"}
    assert (cells["gap_ms"] == 64.0).all() and (cells["fraction"] == 0.40).all()
    assert (cells["rule"] == "seeds×clips t").all() and (cells["n_clips"] == 200).all()
    assert cells.loc["diffres - avgpool", "verdict"] == "holds"
    assert cells.loc["diffres - avgpool", "mean_diff"] == pytest.approx(0.7, abs=0.05)
    assert cells.loc["diffres - spec", "verdict"] == "refuted"


def test_a_task_outside_the_family_is_named():
    runs, preds = _tables()
    runs["task"] = "toy-rhythm"
    with pytest.raises(ValueError, match="task 'toy-rhythm' has no resolution-map dials"):
        decide_cells(runs, preds)
