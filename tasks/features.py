"""From a task split to normalised log-mel tensors, computed from the one waveform cache.

The disk cache holds decoded waveforms only (`tasks.wavecache`: int16, memory-mapped, one file per task
and split, shared by every hop, n_mels, window, filterbank and fold). Log-mel is computed per batch by
`LogMel` (torchaudio MelSpectrogram) wherever it is needed: on the run's device as the model's first
stage (`benchmark.model.classifier`), or here for the train statistics and for callers that want log-mel tensors.
Normalisation (one mean/std per task, fold and feature config, from the train split's log-mel) is
computed once and stored beside the cache as a few bytes of JSON (`train_statistics`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torchaudio.transforms as T
from torch import nn

from tasks.cache import digest, feature_dir
from tasks.registry import SPLITS, TaskSpec
from tasks.resolve import get_task
from tasks.wavecache import CODE_VERSION, WaveformSet, load_waveforms

LOG_FLOOR = 1e-6  # power floor before log: silent / zero-padded frames sit at log(1e-6), the clip minimum
# Larger STFT batches fall out of the CPU caches: at a 10 ms hop, 1.5 s clips, 2 cores, 32 clips a call
# run at ~4,000 clips/s and 139 at ~1,800 (1 ms hops: ~150 clips/s either way).
EXTRACT_CLIPS = 32


class FeatureConfigError(ValueError):
    """A FeatureConfig field has an invalid value."""


def not_whole_samples(ms: float, sample_rate: int) -> str | None:
    """None if `ms` milliseconds is a whole number (>= 1) of samples at `sample_rate` Hz (as a window or
    hop must be), else what was expected. `FeatureConfig` and `RunConfig` both validate with it."""
    samples = ms * sample_rate / 1000
    if abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
        return f"a whole number (>= 1) of samples at {sample_rate} Hz, got {samples:g}"
    return None


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings. Window and hop in milliseconds; both must be whole numbers of samples."""

    sample_rate: int = 16000
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0

    def __post_init__(self) -> None:
        def bad(field: str, value: Any, expected: str) -> FeatureConfigError:
            return FeatureConfigError(f"FeatureConfig.{field}={value!r}: expected {expected}")

        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise bad("sample_rate", self.sample_rate, "a positive integer (Hz)")
        if not (isinstance(self.n_mels, int) and self.n_mels >= 1):
            raise bad("n_mels", self.n_mels, "an integer >= 1")
        for name in ("win_ms", "hop_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise bad(name, value, "a finite number > 0 (milliseconds)")
        if self.hop_ms > self.win_ms:
            raise bad("hop_ms", self.hop_ms, f"<= win_ms={self.win_ms} (frames would skip samples)")
        for name in ("win_ms", "hop_ms"):
            problem = not_whole_samples(getattr(self, name), self.sample_rate)
            if problem is not None:
                raise bad(name, getattr(self, name), problem)
        if self.n_mels > self.win_length // 2 + 1:
            raise bad("n_mels", self.n_mels, f"<= {self.win_length // 2 + 1} (FFT bins of a {self.win_ms} ms window)")

    @property
    def win_length(self) -> int:
        return int(round(self.win_ms * self.sample_rate / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.hop_ms * self.sample_rate / 1000))

    def num_samples(self, clip_seconds: float) -> int:
        return int(round(clip_seconds * self.sample_rate))

    def num_frames(self, clip_seconds: float) -> int:
        """Frames of a clip_seconds clip (centred STFT): 1 + samples // hop."""
        return 1 + self.num_samples(clip_seconds) // self.hop_length


class LogMel(nn.Module):
    """waveform [B, N] (or [N]) -> normalised log-mel [B, T, F] (or [T, F])."""

    def __init__(self, cfg: FeatureConfig, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.mel = T.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.win_length, win_length=cfg.win_length,
            hop_length=cfg.hop_length, n_mels=cfg.n_mels, power=2.0, center=True, mel_scale="htk",
        )
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(self.mel(waveform).clamp_min(LOG_FLOOR)).transpose(-1, -2)  # [..., F, T] -> [..., T, F]
        return (logmel - self.mean) / self.std


@contextlib.contextmanager
def _progress(enabled: bool):
    import datasets

    was = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()


@torch.no_grad()
def extract(stage: nn.Module, waves: torch.Tensor) -> torch.Tensor:
    """stage(waves) for waves [B, N], EXTRACT_CLIPS clips per call (the STFT's cache-friendly size; the
    result does not depend on the chunking: each clip's STFT and mel product are computed on their own)."""
    return torch.cat([stage(w) for w in waves.split(EXTRACT_CLIPS)])


def _stats_path(waves: WaveformSet, cfg: FeatureConfig):
    fp = digest(dict(stage="stats", waveform=waves.fingerprint, split=waves.split, fold=waves.fold,
                     cfg=asdict(cfg), code=CODE_VERSION))
    return feature_dir(waves.spec.name) / f"stats-{fp}.json"


def train_statistics(spec: TaskSpec, cfg: FeatureConfig, fold: int | None,
                     data_dir: str | os.PathLike | None = None,
                     waves: WaveformSet | None = None) -> tuple[float, float]:
    """Mean and std of the train split's log-mel (all frames and bins, float64 sums over 64-clip reads),
    stored beside the waveform cache as JSON and found again by its key."""
    waves = waves if waves is not None else load_waveforms(spec, "train", fold, cfg.sample_rate, data_dir)
    path = _stats_path(waves, cfg)
    if path.is_file():
        stats = json.loads(path.read_text())
        return stats["mean"], stats["std"]
    extractor = LogMel(cfg)
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(waves), 64):
        x = extract(extractor, waves.waveforms(range(start, min(start + 64, len(waves))))).numpy().astype(np.float64)
        total, total_sq, count = total + x.sum(), total_sq + np.square(x).sum(), count + x.size
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0)) or 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"mean": mean, "std": std, "task": spec.name, "fold": fold, "cfg": asdict(cfg)}))
    os.replace(tmp, path)
    return mean, std


class FeatureSet(torch.utils.data.Dataset):
    """One split of a task: fs[i] -> {"logmel" [T, F] (normalised), "waveform" [N], "target"}.

    The waveforms are read from the cache; the log-mel is computed from them when asked (`extractor`,
    the normalised LogMel). `target` is a 0-dim LongTensor (single-label) or a multi-hot FloatTensor [C].
    """

    def __init__(self, spec: TaskSpec, cfg: FeatureConfig, split: str, fold: int | None, waves: WaveformSet,
                 mean: float, std: float):
        self.spec, self.cfg, self.split, self.fold = spec, cfg, split, fold
        self.waves, self.mean, self.std = waves, mean, std
        self.clip_ids, self.targets = waves.clip_ids, waves.targets
        self.extractor = LogMel(cfg, mean, std)

    def __len__(self) -> int:
        return len(self.waves)

    def waveforms(self, indices: Any) -> torch.Tensor:
        return self.waves.waveforms(indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return self.__getitems__([i % len(self)])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Batched read (used by torch's DataLoader): one cache read and one log-mel call per batch."""
        indices = [int(i) for i in indices]
        waves = self.waves.waveforms(indices)  # [B, N]
        logmel = extract(self.extractor, waves)  # [B, T, F]
        return [{"logmel": logmel[k], "waveform": waves[k], "target": self.targets[i]}
                for k, i in enumerate(indices)]


def load_features(task: str | TaskSpec, split: str, cfg: FeatureConfig, fold: int | None = None,
                  data_dir: str | os.PathLike | None = None, progress: bool = False) -> FeatureSet:
    """One split's cached waveforms with the train statistics of `cfg` (see module docstring).

    `task` is a registered name or a TaskSpec (e.g. an embedded task with smaller split sizes)."""
    spec = get_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(cfg, FeatureConfig):
        raise TypeError(f"cfg must be a FeatureConfig, got {type(cfg).__name__}")
    spec.check_fold(fold)
    with _progress(progress):
        waves = load_waveforms(spec, split, fold, cfg.sample_rate, data_dir)
        train = waves if split == "train" else None
        mean, std = train_statistics(spec, cfg, fold, data_dir, waves=train)
    return FeatureSet(spec, cfg, split, fold, waves, mean, std)
