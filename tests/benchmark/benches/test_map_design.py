"""The resolution map's sizing from its pilot (`benchmark.benches.size_map`) on planted numbers, and the run
profile's stages on a real tiny run (`benchmark.benches.profile_run`)."""

import numpy as np
import pandas as pd
import pytest

from benchmark.benches import profile_run, size_map
from benchmark.config import RunConfig
from benchmark.validation import validate


def test_the_variance_components_recover_planted_seed_and_clip_effects():
    rng = np.random.default_rng(0)
    n_s, n_c = 400, 400
    d = (rng.normal(0, 0.2, (n_s, 1)) + rng.normal(0, 0.3, (1, n_c)) + rng.normal(0, 0.5, (n_s, n_c)))
    s2_seed, s2_clip, s2_inter = size_map.components(d)
    assert s2_seed == pytest.approx(0.04, rel=0.2) and s2_clip == pytest.approx(0.09, rel=0.2)
    assert s2_inter == pytest.approx(0.25, rel=0.05)


def test_seeds_needed_grows_with_the_seed_component_and_meets_the_exact_floor():
    few = size_map.seeds_needed(1e-4, 1e-4, 0.1, clips=1200, gap=0.03, level=0.025 / 36, power=0.8, exact=False)
    many = size_map.seeds_needed(1e-3, 1e-4, 0.1, clips=1200, gap=0.03, level=0.025 / 36, power=0.8, exact=False)
    assert 2 <= few < many
    floor = size_map.seeds_needed(0.0, 0.0, 1e-9, clips=1200, gap=0.03, level=0.025 / 36, power=0.8)
    assert floor == 12  # 2 / 2^11 > 6.9e-4 >= 2 / 2^12: an exact test over fewer seeds cannot reach the level


def test_rows_pair_arms_on_seeds_and_clips():
    runs = pd.DataFrame({"config_hash": ["a0", "a1", "b0", "b1"], "task": "t",
                         "frontend": ["diffres"] * 2 + ["avgpool"] * 2, "reduction_rate": 0.5, "seed": [0, 1, 0, 1]})
    clips = [f"c{i}" for i in range(4)]
    preds = pd.DataFrame([{"config_hash": h, "clip_id": c, "label": 0, "pred": int(h.startswith("b") and c == "c0")}
                          for h in runs["config_hash"] for c in clips])
    table = size_map.rows(runs, preds)
    assert list(table["comparison"]) == ["diffres - avgpool"]
    assert table["mean_diff"].iloc[0] == pytest.approx(0.25)  # avgpool misses c0 on both seeds


def test_the_profile_splits_a_real_run_into_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(tmp_path / "cache"))
    cfg = validate(RunConfig(task="toy-transients", frontend="avgpool", epochs=2, max_train_clips=32,
                             max_eval_clips=32))
    table = profile_run.profile(cfg)
    assert set(table["stage"]) == {"train_steps", "validation", "test", "data", "checkpoints", "compute", "tracking",
                                   "other"}
    seconds = table.set_index("stage")["seconds"]
    assert seconds["train_steps"] > 0 and seconds["validation"] > 0 and seconds["test"] > 0
    assert seconds.sum() == pytest.approx(table["wall_s"].iloc[0])
