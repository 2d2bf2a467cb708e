from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from tasks_helpers import small_embedded

from tasks import FeatureConfig, get_task, load_features
from tasks.data import load_split


def test_same_seed_same_bytes_other_seed_other_bytes():
    for name in ("toy-transients", "toy-rhythm"):
        a = small_embedded(name, 10, 5, 5, seed=0).embedded.generate_split("val")
        b = small_embedded(name, 10, 5, 5, seed=0).embedded.generate_split("val")
        c = small_embedded(name, 10, 5, 5, seed=1).embedded.generate_split("val")
        assert a["label"] == b["label"] and [x["bytes"] for x in a["audio"]] == [x["bytes"] for x in b["audio"]]
        assert [x["bytes"] for x in a["audio"]] != [x["bytes"] for x in c["audio"]]


def test_default_sizes_are_class_balanced():
    for name in ("toy-transients", "toy-rhythm"):
        gen = get_task(name).embedded
        assert dict(gen.sizes) == {"train": 1000, "val": 200, "test": 2000}
        labels = small_embedded(name, 25, 10, 10).embedded.generate_split("train")["label"]
        assert np.bincount(labels, minlength=5).tolist() == [5] * 5


@pytest.mark.parametrize("name, seconds", [("toy-rhythm", 1.5), ("toy-rhythm-short", 0.6), ("toy-ctrl-sweeps", 2.0),
                                           ("toy-ctrl-texture", 1.0)])
def test_clips_are_16k_wav_of_the_task_length_and_go_through_the_parquet_path(private_cache, name, seconds):
    spec = small_embedded(name, 10, 5, 5)
    table, source_id = load_split(spec, "test")
    assert source_id == f"embedded:{spec.embedded.identity()}"
    assert (private_cache / "embedded" / name / spec.embedded.identity() / "test.parquet").is_file()
    wav, sr = sf.read(io.BytesIO(table[0]["audio"]["bytes"]))
    assert sr == 16000 and wav.shape == (int(16000 * seconds),) and np.abs(wav).max() <= 0.95 + 1e-4


def test_short_rhythm_keeps_its_longest_cluster_inside_the_clip():
    from tasks.embedded import RHYTHM_PATTERNS, SHORT_CLIP_SECONDS, SHORT_EDGE_S, rhythm_short_clip

    rng = np.random.default_rng(0)
    n = int(16000 * SHORT_CLIP_SECONDS)
    longest = RHYTHM_PATTERNS.index("LLS")
    starts = []
    for _ in range(200):
        clip = rhythm_short_clip(rng, longest, 16000, n)
        loud = np.flatnonzero(np.abs(clip) > 0.3)  # the clicks (0.5-1 at their peaks); the background stays < 0.2
        assert loud.size and loud[0] >= SHORT_EDGE_S * 16000 and loud[-1] < n - SHORT_EDGE_S * 16000 * 0.5
        starts.append(loud[0] / 16000)
    assert max(starts) - min(starts) > 0.1  # the cluster moves around the clip


def test_features_shapes_and_normalisation():
    spec = small_embedded("toy-transients", 10, 5, 5)
    cfg = FeatureConfig(n_mels=32, hop_ms=10.0)
    train = load_features(spec, "train", cfg)
    test = load_features(spec, "test", cfg)
    assert len(train) == 10 and len(test) == 5
    x = torch.stack([train[i]["logmel"] for i in range(len(train))])
    assert x.shape == (10, 151, 32)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2  # train-split statistics
    assert test.mean == train.mean and test.std == train.std
    assert sorted(int(t) for t in train.targets) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
