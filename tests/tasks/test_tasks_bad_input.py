"""Bad input -> a clear error naming the clip and the field (the policy: raise, never skip)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from tasks_helpers import wav_bytes, write_parquet

from tasks import FeatureConfig, load_features
from tasks.audio import BadClipError, decode_audio, fit_length, load_clip
from tasks.columns import TaskSchemaError
from tasks.data import load_split


def _esc50_with(root, audio: list, targets=None, folds=None, drop=()):
    n = len(audio)
    cols = {
        "filename": [f"clip{i}.wav" for i in range(n)],
        "fold": folds or [1 + i % 5 for i in range(n)],
        "target": targets or [i % 50 for i in range(n)],
        "category": ["x"] * n,
        "esc10": [False] * n,
        "src_file": [1000 + i for i in range(n)],
        "take": ["A"] * n,
        "audio": [{"bytes": b, "path": f"clip{i}.wav"} for i, b in enumerate(audio)],
    }
    write_parquet(root / "esc50" / "data" / "train-00000-of-00001-0123456789abcdef.parquet",
                  {k: v for k, v in cols.items() if k not in drop})


def test_corrupt_bytes():
    with pytest.raises(BadClipError, match=r"clip 'c1', field 'audio.bytes': cannot decode \(9 bytes\)"):
        decode_audio({"bytes": b"not audio", "path": "c1.wav"}, "c1")


def test_empty_bytes_and_empty_audio():
    with pytest.raises(BadClipError, match=r"clip 'c2', field 'audio.bytes': empty \(0 bytes\)"):
        decode_audio({"bytes": b"", "path": None}, "c2")
    with pytest.raises(BadClipError, match=r"clip 'c3', field 'audio.bytes': decoded to 0 samples"):
        decode_audio({"bytes": wav_bytes(0.0), "path": None}, "c3")
    with pytest.raises(BadClipError, match=r"clip 'c4', field 'audio': no bytes and no readable file"):
        decode_audio({"bytes": None, "path": "/nonexistent.wav"}, "c4")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(bad):
    x = np.zeros(1600, dtype=np.float32)
    x[100] = bad
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(BadClipError, match=r"clip 'nan-clip', field 'audio.bytes': contains NaN or Inf"):
        decode_audio(buf.getvalue(), "nan-clip")


def test_stereo_is_downmixed_and_rate_is_resampled():
    stereo = wav_bytes(0.5, sr=44100, channels=2)
    wav, sr = decode_audio(stereo, "s")
    assert wav.shape == (2, 22050) and sr == 44100
    mono = load_clip(stereo, "s", sample_rate=16000, num_samples=8000)
    assert mono.shape == (8000,) and mono.dtype == torch.float32
    # the mean of the two channels (the second is twice the first in the fixture)
    expected = load_clip(wav_bytes(0.5, sr=44100, channels=1), "m", 16000, 8000) * 1.5 / 2
    assert torch.allclose(mono, expected, atol=2e-4)


def test_fit_length_random_crop_and_deterministic_eval():
    wav = torch.arange(100.0)
    assert torch.equal(fit_length(wav, 40), wav[:40])  # eval: clip start
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = fit_length(wav, 40, g1), fit_length(wav, 40, g2)
    assert torch.equal(a, b) and a.shape == (40,) and torch.equal(a, wav[int(a[0]) : int(a[0]) + 40])
    starts = {int(fit_length(wav, 40, g1)[0]) for _ in range(20)}
    assert len(starts) > 1
    assert torch.equal(fit_length(wav[:10], 15), torch.cat([wav[:10], torch.zeros(5)]))


def test_corrupt_clip_inside_a_task_names_task_split_and_clip(tmp_path):
    audio = [wav_bytes(0.1) for _ in range(5)]
    audio[2] = b"RIFF garbage"  # fold 3; the one cache of all folds is built from fold 1's splits (train)
    _esc50_with(tmp_path, audio)
    with pytest.raises(BadClipError, match=r"task 'esc50' split 'train': clip 'clip2.wav', field 'audio.bytes'") as err:
        load_features("esc50", "test", FeatureConfig(n_mels=16), fold=3, data_dir=tmp_path)
    assert "train-00000-of-00001-0123456789abcdef.parquet" in str(err.value)


def test_label_out_of_range(tmp_path):
    _esc50_with(tmp_path, [wav_bytes(0.1) for _ in range(5)], targets=[0, 1, 2, 50, 4])
    with pytest.raises(BadClipError, match=r"clip 'clip3.wav', field 'target': label 50 out of range 0..49"):
        load_split("esc50", "test", fold=4, data_dir=tmp_path)


def test_missing_column(tmp_path):
    _esc50_with(tmp_path, [wav_bytes(0.1) for _ in range(5)], drop=("fold",))
    with pytest.raises(TaskSchemaError, match=r"task 'esc50' split 'train': missing column\(s\) 'fold'"):
        load_split("esc50", "train", fold=1, data_dir=tmp_path)


def test_empty_split(tmp_path):
    _esc50_with(tmp_path, [wav_bytes(0.1) for _ in range(4)], folds=[1, 2, 3, 4])
    with pytest.raises(TaskSchemaError, match=r"task 'esc50' split 'val' \(fold=4\) is empty"):
        load_split("esc50", "val", fold=4, data_dir=tmp_path)  # val of fold 4 is fold 5


def test_bad_split_name():
    with pytest.raises(ValueError, match="split must be one of"):
        load_split("toy-rhythm", "dev")
