"""Helpers for the tasks tests: real WAV bytes and real parquet files in each task's hub schema."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from tasks import get_task
from tasks.registry import TaskSpec


def wav_bytes(seconds: float = 0.5, sr: int = 16000, channels: int = 1, freq: float = 440.0,
              subtype: str = "PCM_16", fmt: str = "WAV", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    data = np.stack([mono * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def write_parquet(path: Path, columns: dict, audio_column: str = "audio",
                  class_labels: dict[str, list[str]] | None = None) -> Path:
    """Write columns to parquet with the audio column typed as HF `Audio` (as hub files are) and the
    columns in `class_labels` typed as `ClassLabel(names=...)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_dict(columns)
    if audio_column in columns:
        ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
    for column, names in (class_labels or {}).items():
        ds = ds.cast_column(column, datasets.ClassLabel(names=names))
    ds.to_parquet(str(path))
    return path


def small_embedded(name: str = "toy-transients", train: int = 10, val: int = 5, test: int = 5,
                   seed: int = 0) -> TaskSpec:
    """A registered embedded task with smaller splits (same generator, same code path)."""
    spec = get_task(name)
    gen = dataclasses.replace(spec.embedded, seed=seed, sizes=(("train", train), ("val", val), ("test", test)))
    return dataclasses.replace(spec, embedded=gen)
