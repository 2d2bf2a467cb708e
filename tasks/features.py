"""From a task split to cached, normalised log-mel tensors (and the fixed-length waveforms).

Two cached stages, both `datasets.Dataset.map` outputs with a deterministic `new_fingerprint` (a
`tasks.cache.digest` of the key) and an explicit cache file under `<cache>/features/<task>/`:

1. waveforms: decode -> mono -> resample -> crop/pad (deterministic: clip start) — keyed by task,
   split, fold, source identity (hub revision / local file stats / generator seed), sample rate,
   clip length and CODE_VERSION;
2. log-mel: torchaudio MelSpectrogram at any hop — keyed by stage 1 plus window, hop and n_mels.

A second `load_features` call opens the cache files directly (`Dataset.from_file`): no decoding,
no hub access. Normalisation (one mean/std per task, fold and feature config, computed on the
train split's log-mel) is applied when items are read, so the cache does not depend on it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.transforms as T
from torch import nn

from tasks.audio import load_clip
from tasks.cache import digest, feature_dir
from tasks.data import load_split, read_column, source_identity
from tasks.registry import SPLITS, TaskSpec, get_task

CODE_VERSION = "features-v1"
LOG_FLOOR = 1e-6  # power floor before log: silent / zero-padded frames sit at log(1e-6), the clip minimum
BATCH_BYTES = 64 * 2**20  # data per `map` batch when caching (see _batch_rows)
MAX_BATCH_ROWS = 1000  # datasets' default writer batch
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


def _batch_rows(row_bytes: int) -> int:
    """Rows per `map` batch: about BATCH_BYTES of data, so memory stays bounded for 30 s clips at a
    1 ms hop, and the cache files hold few arrow record batches (each map batch is one, and a file
    with fewer opens faster)."""
    return int(min(MAX_BATCH_ROWS, max(1, BATCH_BYTES // row_bytes)))


def _decode_batch(batch: dict, where: str, sample_rate: int, num_samples: int) -> dict:
    waves = [load_clip(a, str(c), sample_rate, num_samples, where=where).numpy()
             for a, c in zip(batch["audio"], batch["clip_id"], strict=True)]
    return {"waveform": waves}


def _waveform_fingerprint(spec: TaskSpec, split: str, cfg: FeatureConfig, fold: int | None, source_id: str) -> str:
    return digest(dict(stage="waveform", source=source_id, task=spec.name, split=split, fold=fold,
                       sr=cfg.sample_rate, num_samples=cfg.num_samples(spec.clip_seconds), code=CODE_VERSION))


def cached_waveforms(spec: TaskSpec, split: str, cfg: FeatureConfig, fold: int | None,
                     data_dir: str | os.PathLike | None) -> tuple[Any, str]:
    """Stage 1 -> (datasets.Dataset with clip_id, label(s), waveform [N]; its fingerprint)."""
    import datasets

    num_samples = cfg.num_samples(spec.clip_seconds)
    source_id = source_identity(spec, data_dir)
    if source_id is not None:
        fp = _waveform_fingerprint(spec, split, cfg, fold, source_id)
        path = feature_dir(spec.name) / f"waveform-{split}-{fp}.arrow"
        if path.is_file():
            return datasets.Dataset.from_file(str(path)), fp
    raw, source_id = load_split(spec, split, fold, data_dir)
    fp = _waveform_fingerprint(spec, split, cfg, fold, source_id)
    path = feature_dir(spec.name) / f"waveform-{split}-{fp}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    label_col = "label" if spec.label_kind == "single" else "labels"
    features = datasets.Features({
        "clip_id": datasets.Value("string"),
        label_col: raw.features[label_col],
        "waveform": datasets.List(datasets.Value("float32"), length=num_samples),
    })
    ds = raw.select_columns(["clip_id", "audio", label_col]).map(
        _decode_batch, batched=True, batch_size=_batch_rows(4 * num_samples), remove_columns=["audio"],
        features=features,
        fn_kwargs=dict(where=f"task {spec.name!r} split {split!r}", sample_rate=cfg.sample_rate,
                       num_samples=num_samples),
        cache_file_name=str(path), new_fingerprint=fp, load_from_cache_file=True,
        desc=f"{spec.name}/{split}: decode audio",
    )
    return ds, fp


def cached_logmel(spec: TaskSpec, split: str, cfg: FeatureConfig, waves: Any, wave_fp: str) -> Any:
    """Stage 2 -> datasets.Dataset with one column logmel [T, F] (not normalised)."""
    import datasets

    fp = digest(dict(stage="logmel", waveform=wave_fp, cfg=asdict(cfg), code=CODE_VERSION))
    path = feature_dir(spec.name) / f"logmel-{split}-h{cfg.hop_ms:g}-{fp}.arrow"
    if path.is_file():
        return datasets.Dataset.from_file(str(path))
    n_frames = cfg.num_frames(spec.clip_seconds)
    extractor = LogMel(cfg)

    def extract(waveform: torch.Tensor) -> dict:  # [B, N] -> [B, T, F], EXTRACT_CLIPS clips per STFT call
        with torch.no_grad():
            return {"logmel": torch.cat([extractor(w) for w in waveform.split(EXTRACT_CLIPS)]).numpy()}

    row_bytes = 4 * (n_frames * cfg.n_mels + cfg.num_samples(spec.clip_seconds))  # log-mel out + waveform in
    return waves.with_format("torch", columns=["waveform"]).map(
        extract, batched=True, batch_size=_batch_rows(row_bytes), input_columns=["waveform"],
        remove_columns=waves.column_names,
        features=datasets.Features({"logmel": datasets.Array2D((n_frames, cfg.n_mels), "float32")}),
        cache_file_name=str(path), new_fingerprint=fp, load_from_cache_file=True,
        desc=f"{spec.name}/{split}: log-mel hop {cfg.hop_ms:g} ms",
    ).with_format(None)


def _stats_path(spec: TaskSpec, cfg: FeatureConfig, train_wave_fp: str) -> Path:
    fp = digest(dict(stage="stats", waveform=train_wave_fp, cfg=asdict(cfg), code=CODE_VERSION))
    return feature_dir(spec.name) / f"stats-{fp}.json"


def train_statistics(spec: TaskSpec, cfg: FeatureConfig, fold: int | None,
                     data_dir: str | os.PathLike | None) -> tuple[float, float]:
    """Mean and std of the train split's log-mel (all frames and bins), cached as JSON. A cached
    value is found from the source identity alone, without opening the train split's cache files."""
    source_id = source_identity(spec, data_dir)
    if source_id is not None:
        path = _stats_path(spec, cfg, _waveform_fingerprint(spec, "train", cfg, fold, source_id))
        if path.is_file():
            stats = json.loads(path.read_text())
            return stats["mean"], stats["std"]
    waves, wave_fp = cached_waveforms(spec, "train", cfg, fold, data_dir)
    path = _stats_path(spec, cfg, wave_fp)
    if path.is_file():
        stats = json.loads(path.read_text())
        return stats["mean"], stats["std"]
    mel = cached_logmel(spec, "train", cfg, waves, wave_fp).with_format("numpy")
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(mel), 64):
        x = mel[start : start + 64]["logmel"].astype(np.float64)
        total, total_sq, count = total + x.sum(), total_sq + np.square(x).sum(), count + x.size
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0)) or 1.0
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"mean": mean, "std": std, "task": spec.name, "fold": fold, "cfg": asdict(cfg)}))
    os.replace(tmp, path)
    return mean, std


class _RowReader:
    """Rows of a fixed-shape float32 column as tensors, read from zero-copy numpy views of the
    memory-mapped arrow chunks (arrow's `take` and the generic torch formatter both walk nested
    list offsets row by row and are ~10-50x slower)."""

    def __init__(self, ds: Any, column: str, shape: tuple[int, ...]):
        import pyarrow as pa

        self.fallback = ds.with_format("numpy", columns=[column]) if ds._indices is not None else None
        self.column, self.views, starts = column, [], [0]
        if self.fallback is None:
            for chunk in ds.data.table.column(column).chunks:
                arr = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
                while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(
                        arr.type):
                    arr = arr.flatten()
                self.views.append(arr.to_numpy(zero_copy_only=False).reshape(len(chunk), *shape))
                starts.append(starts[-1] + len(chunk))
        self.starts = np.asarray(starts)

    def __call__(self, indices: list[int]) -> torch.Tensor:
        if self.fallback is not None:
            return torch.as_tensor(np.asarray(self.fallback[indices][self.column]))
        chunk = np.searchsorted(self.starts, indices, side="right") - 1
        rows = [self.views[c][i - self.starts[c]] for c, i in zip(chunk, indices, strict=True)]
        return torch.from_numpy(np.stack(rows))  # a fresh, writable copy [B, *shape]


class FeatureSet(torch.utils.data.Dataset):
    """One split of a task as tensors: fs[i] -> {"logmel" [T, F], "waveform" [N], "target"}.

    `target` is a 0-dim LongTensor (single-label) or a multi-hot FloatTensor [C] (multi-label).
    `extractor` maps waveforms [B, N] to the same normalised log-mel (for waveform mixup).
    """

    def __init__(self, spec: TaskSpec, cfg: FeatureConfig, split: str, fold: int | None,
                 waves: Any, logmel: Any, mean: float, std: float):
        self.spec, self.cfg, self.split, self.fold = spec, cfg, split, fold
        self.waves, self.logmel = waves, logmel
        self._read_wave = _RowReader(waves, "waveform", (cfg.num_samples(spec.clip_seconds),))
        self._read_mel = _RowReader(logmel, "logmel", (cfg.num_frames(spec.clip_seconds), cfg.n_mels))
        self.clip_ids: list[str] = read_column(waves, "clip_id").to_pylist()
        if spec.label_kind == "single":
            # torch.tensor copies: the memory-mapped column is read-only
            self.targets = torch.tensor(read_column(waves, "label").to_numpy(), dtype=torch.long)
        else:
            self.targets = torch.zeros(len(waves), spec.num_classes)
            for i, labels in enumerate(read_column(waves, "labels").to_pylist()):
                self.targets[i, labels] = 1.0
        self.mean, self.std = mean, std
        self.extractor = LogMel(cfg, mean, std)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return self.__getitems__([i % len(self)])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Batched read (used by torch's DataLoader): one arrow take per batch instead of B."""
        indices = [int(i) for i in indices]
        logmel = (self._read_mel(indices) - self.mean) / self.std  # [B, T, F]
        waves = self._read_wave(indices)  # [B, N]
        return [{"logmel": logmel[k], "waveform": waves[k], "target": self.targets[i]}
                for k, i in enumerate(indices)]


def load_features(task: str | TaskSpec, split: str, cfg: FeatureConfig, fold: int | None = None,
                  data_dir: str | os.PathLike | None = None, progress: bool = False) -> FeatureSet:
    """Cached log-mel features of one split (see module docstring); normalised with train stats.

    `task` is a registered name or a TaskSpec (e.g. an embedded task with smaller split sizes)."""
    spec = get_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(cfg, FeatureConfig):
        raise TypeError(f"cfg must be a FeatureConfig, got {type(cfg).__name__}")
    spec.check_fold(fold)
    with _progress(progress):
        waves, wave_fp = cached_waveforms(spec, split, cfg, fold, data_dir)
        logmel = cached_logmel(spec, split, cfg, waves, wave_fp)
        mean, std = train_statistics(spec, cfg, fold, data_dir)
    return FeatureSet(spec, cfg, split, fold, waves, logmel, mean, std)
