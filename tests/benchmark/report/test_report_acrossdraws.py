"""The A/A control across draws: one setting on two draws of clips and seeds passes when the draws come from the same
population and fires on a planted difference."""

import numpy as np
import pandas as pd
import pytest

from benchmark.report import acrossdraws, stats
from benchmark.report.aacontrol import parse_aa_controls

SEEDS = list(range(10))


def _draw(root, name: str, seed_offset: int, rng: np.random.Generator, shift: float = 0.0):
    """A suite's results folder: runs.csv and predictions.parquet of avgpool on 10 seeds x 600 clips, each clip
    with its own difficulty (the draw's test set), each seed its own ability; ``shift`` lowers every logit."""
    folder = root / name
    folder.mkdir(parents=True)
    difficulty = rng.normal(0.0, 1.5, size=600)
    runs, preds = [], []
    for s in SEEDS:
        ability = 2.0 + rng.normal(0.0, 0.1) - shift
        correct = rng.random(600) < 1 / (1 + np.exp(-(ability + difficulty)))
        h = f"{name}-{s}"
        runs.append({"task": "t", "frontend": "avgpool", "hop_ms": 10.0, "reduction_rate": 0.5,
                     "seed": s + seed_offset, "used": True, "config_hash": h})
        preds.append(pd.DataFrame({"config_hash": h, "clip_id": [f"{name}-c{j:04d}" for j in range(600)],
                                   "label": 0, "pred": np.where(correct, 0, 1), "p_label": 0.5}))
    pd.DataFrame(runs).to_csv(folder / "runs.csv", index=False)
    pd.concat(preds).to_parquet(folder / "predictions.parquet")
    return folder


def _controls(offset: int):
    return parse_aa_controls([{"task": "t", "frontend": "avgpool", "hop_ms": 10.0, "reduction_rate": 0.5,
                               "streams": [[s + offset for s in SEEDS], [s + offset + 10 for s in SEEDS]]}], "s")


def test_two_draws_of_one_population_pass_and_a_planted_difference_fires(tmp_path):
    rng = np.random.default_rng(3)
    first, second = _draw(tmp_path, "a", 0, rng), _draw(tmp_path, "b", 1000, rng)
    table = acrossdraws.across_draws(first, second, _controls(0), _controls(1000))
    row = table.iloc[0]
    assert (row["n_clips_first"], row["n_clips_second"]) == (600, 600) and row["seeds_second"].startswith("1000 ")
    assert row["outcome"] == acrossdraws.PASSED and row["ci_low"] < 0 < row["ci_high"]
    assert row["mean_diff"] == pytest.approx(row["mean_first"] - row["mean_second"])
    worse = _draw(tmp_path, "c", 1000, rng, shift=1.0)
    fired = acrossdraws.across_draws(first, worse, _controls(0), _controls(1000)).iloc[0]
    assert fired["verdict"] == stats.HOLDS and fired["outcome"] == acrossdraws.FALSELY_DETECTED
    assert "1 passed, 0 falsely detected" in acrossdraws.across_text(table)


def test_different_settings_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    first, second = _draw(tmp_path, "a", 0, rng), _draw(tmp_path, "b", 1000, rng)
    other = parse_aa_controls([{"task": "t", "frontend": "maxpool", "hop_ms": 10.0, "reduction_rate": 0.5,
                                "streams": [SEEDS, [s + 10 for s in SEEDS]]}], "s")
    with pytest.raises(ValueError, match="different A/A settings"):
        acrossdraws.across_draws(first, second, _controls(0), other)
