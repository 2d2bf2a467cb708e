"""The one waveform cache (issue 21): shared by every hop and fold, int16 and exact for PCM-16 sources,
the same log-mel as the per-hop cache it replaced, bad clips named with their parquet row, and a build that
is never left half-written."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from tasks_helpers import small_embedded, wav_bytes, write_parquet

from tasks import FeatureConfig, LogMel, load_features
from tasks.audio import BadClipError, load_clip
from tasks.cache import feature_dir
from tasks.data import load_split
from tasks.features import EXTRACT_CLIPS
from tasks.wavecache import dequantise, load_waveforms, quantise


def _esc50(root, n: int = 10, bad: int | None = None) -> None:
    audio = [wav_bytes(0.3, sr=44100, freq=200.0 + 50 * i) for i in range(n)]
    if bad is not None:
        audio[bad] = b"RIFF garbage"
    write_parquet(root / "esc50" / "data" / "train-00000-of-00001.parquet", {
        "filename": [f"clip{i}.wav" for i in range(n)], "fold": [1 + i % 5 for i in range(n)],
        "target": [i % 50 for i in range(n)], "category": ["x"] * n, "esc10": [False] * n,
        "src_file": list(range(n)), "take": ["A"] * n,
        "audio": [{"bytes": b, "path": f"clip{i}.wav"} for i, b in enumerate(audio)]})


def test_int16_round_trip_is_exact_on_the_int16_grid_and_within_half_a_step_elsewhere():
    k = np.arange(-32768, 32768, 7, dtype=np.int16)
    assert np.array_equal(quantise(dequantise(k).numpy()), k)
    x = np.random.default_rng(0).uniform(-1, 32767 / 32768, 10_000)  # above that, +1.0 clips to 32767
    assert np.abs(dequantise(quantise(x)).numpy() - x).max() <= 0.5 / 32768 + 1e-9


def test_one_cache_serves_every_fold_and_hop(private_cache, tmp_path):
    _esc50(tmp_path)
    clips = {}
    for fold in (1, 2, 5):
        for hop in (10.0, 5.0, 1.0):
            for split in ("train", "val", "test"):
                fs = load_features("esc50", split, FeatureConfig(n_mels=16, hop_ms=hop), fold=fold, data_dir=tmp_path)
                clips[fold, split] = set(fs.clip_ids)
    files = sorted(p.name for p in feature_dir("esc50").iterdir())
    caches = [f for f in files if f.startswith("waveforms-") and f.endswith(".arrow")]
    assert len(caches) == 1  # one build for 3 folds x 3 hops
    assert not any(f.startswith("logmel") for f in files)
    assert len([f for f in files if f.startswith("stats-")]) == 9  # per fold and feature config: bytes
    for fold in (1, 2, 5):  # each fold's splits are its own clips, and cover the task
        parts = [clips[fold, s] for s in ("train", "val", "test")]
        assert set.union(*parts) == {f"clip{i}.wav" for i in range(10)} and sum(map(len, parts)) == 10
    test3 = load_features("esc50", "test", FeatureConfig(n_mels=16), fold=3, data_dir=tmp_path)
    assert test3.clip_ids == ["clip2.wav", "clip7.wav"]
    table, _ = load_split("esc50", "test", 3, tmp_path)  # the same clips as a fresh decode, at 16 kHz
    fresh = torch.stack([load_clip(a, "x", 16000, 80000) for a in table["audio"]])
    assert torch.allclose(test3.waveforms([0, 1]), fresh, atol=0.5 / 32768 + 1e-7)  # resampled: rounded
    assert test3.targets.tolist() == [2, 7]


def test_the_mel_from_the_cache_equals_the_old_per_hop_cache(private_cache):
    """The log-mel the old cache stored (float32 decode, LogMel in 32-clip calls, then (x - mean) / std)
    equals the log-mel computed from the int16 cache, bit for bit for these PCM-16 clips."""
    spec = small_embedded("toy-rhythm", 40, 5, 5)
    cfg = FeatureConfig(n_mels=16, hop_ms=2.0)
    fs = load_features(spec, "train", cfg)
    table, _ = load_split(spec, "train")
    old_waves = torch.stack([load_clip(a, c, 16000, fs.waves.num_samples)
                             for a, c in zip(table["audio"], table["clip_id"], strict=True)])
    with torch.no_grad():
        old = torch.cat([LogMel(cfg)(w) for w in old_waves.split(EXTRACT_CLIPS)])
        old_mean = old.double().mean().item()
        old_std = (old.double().square().mean().item() - old_mean**2) ** 0.5
        old = (old - old_mean) / old_std
    assert torch.equal(fs.waveforms(range(len(fs))), old_waves)
    assert abs(fs.mean - old_mean) < 1e-9 and abs(fs.std - old_std) < 1e-9
    new = torch.stack([item["logmel"] for item in fs.__getitems__(list(range(len(fs))))])
    assert torch.allclose(new, old, atol=1e-5, rtol=0)  # the stats' last bits differ in summation order


def test_a_bad_clip_names_the_parquet_file_row_and_clip(private_cache, tmp_path):
    _esc50(tmp_path, bad=7)
    with pytest.raises(BadClipError) as err:
        load_features("esc50", "val", FeatureConfig(n_mels=16), fold=1, data_dir=tmp_path)
    message = str(err.value)
    assert "task 'esc50'" in message and "clip 'clip7.wav'" in message and "cannot decode" in message
    assert "train-00000-of-00001.parquet row 7" in message
    assert not [p for p in feature_dir("esc50").glob("waveforms-*")]  # nothing half-written left behind


def test_a_killed_build_restarts_cleanly(private_cache):
    spec = small_embedded("toy-transients", 6, 3, 3)
    waves = load_waveforms(spec, "val", None, 16000)
    path = waves.path
    expected = waves.waveforms(range(len(waves)))
    # what a build killed mid-write leaves: its temporary (the process is gone), no cache file
    path.unlink()
    dead = path.with_name(f"{path.name}.tmp-{2**22 + 12345}")
    dead.write_bytes(b"ARROW1 half a file")
    assert not _alive(2**22 + 12345)
    again = load_waveforms(spec, "val", None, 16000)
    assert again.path == path and not dead.exists()
    assert torch.equal(again.waveforms(range(len(again))), expected)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
