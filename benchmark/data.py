"""A run's data: the task's train / val / test features for one `RunConfig`, and its fixed subsets.

    data = load_task_data(cfg)    # TaskData: the three splits, the waveform -> log-mel extractor, sizes

The features come from `tasks` (decoded, resampled and cached there); this module only picks the
feature settings from the config and applies `max_train_clips` / `max_eval_clips`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from benchmark.config import RunConfig


@dataclass
class TaskData:
    spec: Any  # tasks.TaskSpec
    train: Dataset
    val: Dataset
    test: Dataset
    extractor: nn.Module  # waveform [B, N] -> normalised log-mel [B, T, F]
    t_in: int
    n_samples: int


def load_task_data(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> TaskData:
    from tasks import FeatureConfig, get_task, load_features

    spec = get_task(cfg.task)
    feature_cfg = FeatureConfig(sample_rate=spec.sample_rate, n_mels=cfg.n_mels, win_ms=cfg.win_ms,
                                hop_ms=cfg.hop_ms)
    splits = {s: load_features(cfg.task, s, feature_cfg, fold=cfg.fold, data_dir=data_dir)
              for s in ("train", "val", "test")}
    for split, fs in splits.items():
        if len(fs) == 0:
            raise ValueError(f"task {cfg.task!r} (fold={cfg.fold}) has an empty {split} split")
    first = splits["train"][0]
    limited = {
        "train": fixed_subset(splits["train"], cfg.max_train_clips),
        "val": fixed_subset(splits["val"], cfg.max_eval_clips),
        "test": fixed_subset(splits["test"], cfg.max_eval_clips),
    }
    return TaskData(spec=spec, extractor=splits["train"].extractor, t_in=int(first["logmel"].shape[0]),
                    n_samples=int(first["waveform"].shape[-1]), **limited)


def fixed_subset(dataset: Dataset, n: int | None) -> Dataset:
    """A fixed random subset of n clips (the same for every seed and front-end), or the whole split."""
    if n is None or n >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    return Subset(dataset, sorted(order[:n].tolist()))
