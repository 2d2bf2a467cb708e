"""A run's data: the task's train / val / test clips for one `RunConfig` as tensors, its fixed subsets,
and the order in which an epoch visits them.

    data = load_task_data(cfg)    # TaskData: the three splits, the waveform -> log-mel extractor, sizes
    for idx in epoch_batches(len(data.train), cfg.batch_size, generator):
        batch = data.train.batch(idx)    # {"logmel": [B, T, F], "target": [B] | [B, C]}

The features come from `tasks` (decoded, resampled and cached there); this module picks the feature
settings from the config, applies `max_train_clips` / `max_eval_clips`, and holds each split in memory
as one tensor when it fits (`IN_MEMORY_BYTES`), so a batch is one index into it instead of a DataLoader
collating per-clip dicts. Larger splits (hub tasks at fine hops) are read per batch from the feature
cache. Either way the numbers are the same: the cache normalises each clip on its own.
A feature cache that is full or cannot be written raises `DiskError` naming the cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from benchmark.config import RunConfig
from benchmark.outages import DiskError, disk_error, is_disk_error

IN_MEMORY_BYTES = 2 * 1024**3  # per split: log-mels (plus waveforms when mixup needs them) held as tensors
_READ_CLIPS = 256  # clips per read from the feature cache when a split is loaded into memory


class Split(Dataset):
    """One split's clips by position 0..N-1: `logmel(idx)` [B, T, F] (normalised), `waveform(idx)` [B, S],
    `targets` [N] (labels) or [N, C] (multi-hot). Also a torch Dataset of {"logmel", "waveform", "target"}.

    `features` is a `tasks.FeatureSet`, `indices` the clips of it this split holds (a fixed subset or all).
    """

    def __init__(self, features: Any, indices: Sequence[int], *, waveforms: bool,
                 in_memory_bytes: int = IN_MEMORY_BYTES):
        self.features, self.indices = features, [int(i) for i in indices]
        self.targets: Tensor = features.targets[self.indices]
        first = features[self.indices[0]]
        self.t_in, self.n_mels = first["logmel"].shape
        self.n_samples = int(first["waveform"].shape[-1])
        clip_bytes = 4 * (self.t_in * self.n_mels + (self.n_samples if waveforms else 0))
        self.in_memory = len(self.indices) * clip_bytes <= in_memory_bytes
        self._logmel: Tensor | None = None
        self._waveform: Tensor | None = None
        if self.in_memory:
            self._logmel, waves = self._read(self.indices, waveforms)
            self._waveform = waves if waveforms else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        idx = torch.tensor([i])
        return {"logmel": self.logmel(idx)[0], "waveform": self.waveform(idx)[0], "target": self.targets[i]}

    def batch(self, idx: Tensor, *, waveforms: bool = False) -> dict[str, Tensor]:
        """Clips `idx` as a training batch: {"logmel" [B, T, F], "target", and "waveform" [B, S] if asked}."""
        if self.in_memory:
            logmel, wave = self.logmel(idx), self.waveform(idx) if waveforms else None
        else:  # one read of the cache for both
            logmel, wave = self._read([self.indices[i] for i in idx.tolist()], waveforms)
        batch = {"logmel": logmel, "target": self.targets[idx]}
        return {**batch, "waveform": wave} if waveforms else batch

    def logmel(self, idx: Tensor) -> Tensor:
        """Normalised log-mel of clips `idx` (positions in this split): [B, T, F]."""
        if self._logmel is not None:
            return self._logmel[idx]
        return self._read([self.indices[i] for i in idx.tolist()], waveforms=False)[0]

    def waveform(self, idx: Tensor) -> Tensor:
        """Waveforms of clips `idx`: [B, S] (read from the cache unless held for mixup)."""
        if self._waveform is not None:
            return self._waveform[idx]
        return self._read([self.indices[i] for i in idx.tolist()], waveforms=True)[1]

    def _read(self, indices: list[int], waveforms: bool) -> tuple[Tensor, Tensor | None]:
        mels, waves = [], []
        for start in range(0, len(indices), _READ_CLIPS):
            items = self.features.__getitems__(indices[start:start + _READ_CLIPS])  # one cache read per chunk
            mels.append(torch.stack([item["logmel"] for item in items]))
            if waveforms:
                waves.append(torch.stack([item["waveform"] for item in items]))
        return torch.cat(mels), (torch.cat(waves) if waves else None)


@dataclass
class TaskData:
    spec: Any  # tasks.TaskSpec
    train: Split
    val: Split
    test: Split
    extractor: nn.Module  # waveform [B, N] -> normalised log-mel [B, T, F]
    t_in: int
    n_samples: int


def load_task_data(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> TaskData:
    from tasks import FeatureConfig, get_task, load_features

    spec = get_task(cfg.task)
    feature_cfg = FeatureConfig(sample_rate=spec.sample_rate, n_mels=cfg.n_mels, win_ms=cfg.win_ms,
                                hop_ms=cfg.hop_ms)
    try:
        features = {s: load_features(cfg.task, s, feature_cfg, fold=cfg.fold, data_dir=data_dir)
                    for s in ("train", "val", "test")}
    except OSError as err:
        if not is_disk_error(err) or isinstance(err, DiskError):
            raise
        from tasks.cache import CACHE_DIR_ENV, cache_dir

        raise disk_error(err, "the feature cache", cache_dir(),
                         f"free space there or set {CACHE_DIR_ENV} to a writable directory") from err
    for split, fs in features.items():
        if len(fs) == 0:
            raise ValueError(f"task {cfg.task!r} (fold={cfg.fold}) has an empty {split} split")
    limit = {"train": cfg.max_train_clips, "val": cfg.max_eval_clips, "test": cfg.max_eval_clips}
    splits = {s: Split(fs, fixed_indices(len(fs), limit[s]), waveforms=reads_waveforms(cfg, s))
              for s, fs in features.items()}
    return TaskData(spec=spec, extractor=features["train"].extractor, t_in=splits["train"].t_in,
                    n_samples=splits["train"].n_samples, **splits)


def reads_waveforms(cfg: RunConfig, split: str) -> bool:
    """Whether a run reads `split`'s waveforms: every split for a learned filterbank (its features are
    computed per batch), the train split for waveform mixup."""
    from benchmark.model import learned_filterbank

    return learned_filterbank(cfg) or (split == "train" and cfg.mixup_prob > 0)


def fixed_indices(n_clips: int, n: int | None) -> list[int]:
    """A fixed random subset of n of `n_clips` clips, sorted (the same for every seed and front-end), or all."""
    if n is None or n >= n_clips:
        return list(range(n_clips))
    order = torch.randperm(n_clips, generator=torch.Generator().manual_seed(0))
    return sorted(order[:n].tolist())


def fixed_subset(dataset: Dataset, n: int | None) -> Dataset:
    """`fixed_indices` as a torch Subset of `dataset`, or `dataset` itself when n covers it."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, fixed_indices(len(dataset), n))


def n_batches(n_clips: int, batch_size: int) -> int:
    """Batches per epoch of `epoch_batches` (optimiser steps per epoch)."""
    return -(-n_clips // batch_size) - drops_last(n_clips, batch_size)


def drops_last(n_clips: int, batch_size: int) -> bool:
    return n_clips > 1 and n_clips % batch_size == 1


def epoch_batches(n_clips: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """One epoch's shuffled batches of positions (the last may be smaller; a last batch of one clip,
    which breaks BatchNorm in training mode, is dropped). Draws from `generator` exactly what
    torch's DataLoader(shuffle=True, generator=...) did, so the order and the generator state stay those
    of the DataLoader version: its runs and checkpoints continue bit for bit."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # DataLoader's workers' base seed
    batches = list(torch.randperm(n_clips, generator=generator).split(batch_size))
    torch.randperm(n_clips, generator=generator)  # RandomSampler's remainder: drawn (then emptied) every epoch
    if drops_last(n_clips, batch_size):
        batches.pop()
    return batches
