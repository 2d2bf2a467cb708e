"""A run's data: the task's train / val / test clips for one `RunConfig`, its fixed subsets, and the order in
which an epoch visits them.

    data = load_task_data(cfg)    # TaskData: the three splits, the train statistics, sizes
    for idx in epoch_batches(len(data.train), cfg.batch_size, generator):
        batch = data.train.batch(idx)    # {"waveform": [B, N], "target": [B] | [B, C], maybe "features"}

The clips come from `tasks`' one waveform cache (int16, memory-mapped, shared by every hop and fold); this
module applies `max_train_clips` / `max_eval_clips` and holds a split's waveforms in memory as one tensor
when they fit (`IN_MEMORY_BYTES`). Features are the model's first stage (`benchmark.model.classifier`), computed per
batch on the run's device. On a CPU, `TaskData.hold_features(stage)` computes a parameter-free stage's
output (the mel) for every clip once, at the start, and a batch carries it as "features": the same numbers
the model would compute (a test pins them), not a second input path. Batches that waveform mixup changes
are computed from their mixed waveforms as always. `benchmark.training.loader` reads batches ahead of the step.
A waveform cache that is full or cannot be written raises `DiskError` naming the cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from benchmark.config import RunConfig
from benchmark.fields import task_files
from benchmark.tracking.outages import DiskError, disk_error, is_disk_error

IN_MEMORY_BYTES = 2 * 1024**3  # per split: waveforms (and the held features) as tensors
_READ_CLIPS = 256  # clips per read from the waveform cache when a split is loaded into memory
HOLD_CLIPS = 32  # clips per filterbank call when features are held (tasks.features.EXTRACT_CLIPS)


class Split(Dataset):
    """One split's clips by position 0..N-1: `waveform(idx)` [B, N], `targets` [N] (labels) or [N, C]
    (multi-hot), and, once `hold_features` ran, `features(idx)` [B, T, F]. Also a torch Dataset of
    {"waveform", "target"}. `features` is a `tasks.FeatureSet`, `indices` the clips of it this split holds."""

    def __init__(self, features: Any, indices: Sequence[int], *, in_memory_bytes: int = IN_MEMORY_BYTES):
        self.source, self.indices = features, [int(i) for i in indices]
        self.targets: Tensor = features.targets[self.indices]
        self.n_samples = int(features.waves.num_samples)
        self.in_memory_bytes = in_memory_bytes
        self.in_memory = len(self.indices) * 4 * self.n_samples <= in_memory_bytes
        self._waveform: Tensor | None = self._read(self.indices) if self.in_memory else None
        self._features: Tensor | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def clip_ids(self) -> list[str]:
        """The task's id of each clip of this split, in order."""
        return [self.source.clip_ids[i] for i in self.indices]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        idx = torch.tensor([i])
        return {"waveform": self.waveform(idx)[0], "target": self.targets[i]}

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        """Clips `idx` as a batch: {"waveform" [B, N], "target", and "features" [B, T, F] when held}."""
        batch = {"waveform": self.waveform(idx), "target": self.targets[idx]}
        return {**batch, "features": self._features[idx]} if self._features is not None else batch

    def waveform(self, idx: Tensor) -> Tensor:
        """Waveforms of clips `idx` (positions in this split): [B, N]."""
        if self._waveform is not None:
            return self._waveform[idx]
        return self._read([self.indices[i] for i in idx.tolist()])

    def features(self, idx: Tensor) -> Tensor | None:
        """The held features of clips `idx`, or None (the model computes them)."""
        return self._features[idx] if self._features is not None else None

    @torch.no_grad()
    def hold_features(self, stage: nn.Module) -> bool:
        """Compute a parameter-free `stage`'s output for every clip once and hold it, if it fits the memory
        budget left by the waveforms; -> whether it is held. A stage with trainable parameters (a learned
        filterbank) changes every step: refused."""
        if any(p.requires_grad for p in stage.parameters()):
            raise ValueError("hold_features: the stage has trainable parameters; its output changes every step")
        first = stage(self.waveform(torch.tensor([0])))
        clip_bytes = first.element_size() * first[0].numel()
        used = 4 * self.n_samples * len(self) if self.in_memory else 0
        if len(self) * clip_bytes + used > self.in_memory_bytes:
            return False
        self._features = torch.cat([stage(self.waveform(idx)) for idx in torch.arange(len(self)).split(HOLD_CLIPS)])
        return True

    def _read(self, indices: list[int]) -> Tensor:
        return torch.cat([self.source.waveforms(indices[s:s + _READ_CLIPS])
                          for s in range(0, len(indices), _READ_CLIPS)])


@dataclass
class TaskData:
    spec: Any  # tasks.TaskSpec
    train: Split
    val: Split
    test: Split
    extractor: nn.Module  # waveform [B, N] -> normalised log-mel [B, T, F] (FLOP accounting: flops_features)
    t_in: int
    n_samples: int
    stats: tuple[float, float] = (0.0, 1.0)  # the train split's log-mel mean / std (the mel's Standardise)

    def hold_features(self, stage: nn.Module, device: torch.device) -> None:
        """On a CPU, hold a parameter-free `stage`'s output of every split in memory (see module docstring);
        on other devices, or for a learned stage, the model computes features per batch."""
        if device.type != "cpu" or any(p.requires_grad for p in stage.parameters()):
            return
        for split in (self.train, self.val, self.test):
            split.hold_features(stage)


def load_task_data(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> TaskData:
    from tasks import get_task, load_features

    spec = get_task(cfg.task).draw(cfg.data_seed)
    now = task_files(cfg.task) if cfg.task_files is not None else None  # None: a config not yet validated
    if now != cfg.task_files:
        raise ValueError(f"RunConfig.task_files={cfg.task_files!r}: the corpus of task {cfg.task!r} has changed since "
                         f"this config was made (its fingerprint is now {now!r}); rebuild the config from the task "
                         f"to train on the corpus as it is")
    feature_cfg = cfg.feature_config(spec)
    try:
        features = {s: load_features(spec, s, feature_cfg, fold=cfg.fold, data_dir=data_dir)
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
    splits = {s: Split(fs, fixed_indices(len(fs), limit[s])) for s, fs in features.items()}
    train = features["train"]
    return TaskData(spec=spec, extractor=train.extractor, t_in=feature_cfg.num_frames(spec.clip_seconds),
                    n_samples=splits["train"].n_samples, stats=(train.mean, train.std), **splits)


def fixed_indices(n_clips: int, n: int | None) -> list[int]:
    """A fixed random subset of n of `n_clips` clips, sorted (the same for every seed and front-end), or all."""
    if n is None or n >= n_clips:
        return list(range(n_clips))
    order = torch.randperm(n_clips, generator=torch.Generator().manual_seed(0))
    return sorted(order[:n].tolist())


def n_batches(n_clips: int, batch_size: int) -> int:
    """Batches per epoch of `epoch_batches` (optimiser steps per epoch)."""
    return -(-n_clips // batch_size) - drops_last(n_clips, batch_size)


def drops_last(n_clips: int, batch_size: int) -> bool:
    return n_clips > 1 and n_clips % batch_size == 1


def epoch_batches(n_clips: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """One epoch's shuffled batches of positions: a permutation drawn from `generator`, cut into batches (the
    last may be smaller; a last batch of one clip, which breaks BatchNorm in training mode, is dropped)."""
    batches = list(torch.randperm(n_clips, generator=generator).split(batch_size))
    if drops_last(n_clips, batch_size):
        batches.pop()
    return batches
