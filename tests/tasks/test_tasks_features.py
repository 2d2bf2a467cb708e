from __future__ import annotations

import datasets
import pytest
import torch
from tasks_helpers import small_embedded

from tasks import FeatureConfig, load_features
from tasks.columns import read_column
from tasks.features import FeatureConfigError, LogMel, not_whole_samples


@pytest.mark.parametrize("kwargs,field", [
    (dict(hop_ms=0.0), "hop_ms=0.0"),
    (dict(hop_ms=-1.0), "hop_ms=-1.0"),
    (dict(hop_ms=30.0), "hop_ms=30.0"),
    (dict(hop_ms=0.33), "hop_ms=0.33"),
    (dict(n_mels=0), "n_mels=0"),
    (dict(n_mels=500), "n_mels=500"),
    (dict(sample_rate=0), "sample_rate=0"),
    (dict(win_ms=float("nan")), "win_ms=nan"),
])
def test_feature_config_validation_names_field_and_value(kwargs, field):
    with pytest.raises(FeatureConfigError, match=f"FeatureConfig.{field}"):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize(("ms", "sample_rate", "ok"), [
    (10.0, 16000, True), (0.0625, 16000, True), (2.5, 16000, True), (10.0, 44100, True),
    (0.33, 16000, False), (0.03, 16000, False), (0.01, 44100, False), (2.5, 44100, False),
])
def test_whole_samples_check(ms, sample_rate, ok):
    problem = not_whole_samples(ms, sample_rate)
    assert (problem is None) == ok
    if not ok:
        assert f"samples at {sample_rate} Hz" in problem and f"got {ms * sample_rate / 1000:g}" in problem
        with pytest.raises(FeatureConfigError, match="hop_ms"):
            FeatureConfig(sample_rate=sample_rate, n_mels=16, win_ms=20.0, hop_ms=ms)


@pytest.mark.parametrize("hop_ms,frames", [(1.0, 1501), (2.5, 601), (5.0, 301), (10.0, 151)])
def test_logmel_shapes_for_each_hop(hop_ms, frames):
    cfg = FeatureConfig(n_mels=16, hop_ms=hop_ms)
    assert cfg.num_frames(1.5) == frames
    fs = load_features(small_embedded("toy-rhythm", 5, 5, 5), "val", cfg)
    item = fs[0]
    assert item["logmel"].shape == (frames, 16) and item["logmel"].dtype == torch.float32
    assert item["waveform"].shape == (24000,)
    assert torch.isfinite(item["logmel"]).all()
    # the extractor reproduces the cached, normalised features from the waveform
    again = fs.extractor(item["waveform"][None])[0]
    assert torch.allclose(again, item["logmel"], atol=1e-4)
    batch = fs.__getitems__([0, 2])
    assert torch.equal(batch[1]["logmel"], fs[2]["logmel"])


def test_second_load_reads_the_fingerprinted_cache(private_cache):
    spec = small_embedded("toy-transients", 5, 5, 5)
    cfg = FeatureConfig(n_mels=16, hop_ms=5.0)
    first = load_features(spec, "test", cfg)
    files = sorted((private_cache / "features" / "toy-transients").glob("*"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    names = {f.name.split("-")[0] for f in files}
    assert names == {"waveforms", "stats"}  # no log-mel on disk: it is computed per batch
    second = load_features(spec, "test", cfg)
    assert sorted((private_cache / "features" / "toy-transients").glob("*")) == files
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # nothing recomputed or rewritten
    assert str(second.waves.path) in {str(f) for f in files}
    assert torch.equal(first[3]["logmel"], second[3]["logmel"])


def test_one_waveform_cache_serves_every_hop_and_n_mels(private_cache):
    spec = small_embedded("toy-transients", 5, 5, 5)
    load_features(spec, "val", FeatureConfig(n_mels=16, hop_ms=10.0))
    load_features(spec, "val", FeatureConfig(n_mels=8, hop_ms=1.0))
    load_features(small_embedded("toy-transients", 5, 5, 5, seed=1), "val", FeatureConfig(n_mels=8, hop_ms=10.0))
    folder = private_cache / "features" / "toy-transients"
    assert len(list(folder.glob("waveforms-val-*.arrow"))) == 2  # one per source, whatever the feature settings
    assert len(list(folder.glob("waveforms-train-*.arrow"))) == 2  # the train statistics read the train split
    assert len(list(folder.glob("stats-*"))) == 3  # a few bytes per feature config


def test_read_column_applies_a_selection():
    ds = datasets.Dataset.from_dict({"label": [3, 1, 4, 1, 5], "clip_id": list("abcde")})
    assert read_column(ds, "label").to_pylist() == [3, 1, 4, 1, 5]
    picked = ds.select([4, 0, 2])
    assert read_column(picked, "label").to_pylist() == [5, 3, 4] == list(picked["label"])
    assert read_column(picked, "clip_id").to_pylist() == ["e", "a", "c"]


def test_the_mel_filterbank_is_the_cached_log_mel():
    """`diffres`'s mel filterbank (the model's first stage) computes the log-mel `tasks` caches and normalises."""
    from diffres.filterbanks import create_filterbank

    x = torch.randn(3, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    ours = create_filterbank("mel", n_bands=64)(x)
    assert torch.allclose(ours, LogMel(FeatureConfig(n_mels=64))(x), atol=1e-5)
    for n in (400, 16123):
        assert create_filterbank("mel", n_bands=40).t_out(n) == FeatureConfig(n_mels=40).num_frames(n / 16000)
