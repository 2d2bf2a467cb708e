"""Which training clips an epoch visits, in which batches: a uniform shuffle or PSLA's class-balanced
sampler (`RunConfig.balanced_sampling`), at the recipe's batch size or one that grows with δ.

    for idx in train_batches(cfg, data.train.targets, generator):   # positions in the training split
        batch = data.train.batch(idx)

- Uniform (the default): `benchmark.training.data.epoch_batches`, a seeded permutation, unchanged.
- Balanced: as PSLA's `WeightedRandomSampler(weights, N, replacement=True)`. A clip's weight is the sum,
  over its labels, of 1 / (that label's count in the training split) (PSLA: 1000 / (count + 0.01); the
  scale and the 0.01 change nothing for labels that occur). Single-label classes then come out equally
  often in expectation; multi-label clips are drawn more often the rarer their labels. An epoch draws N
  clips with replacement (N = the split's size), cut into batches like the uniform epoch.
- `batch_size_scales_with_rate`: the batch holds round(batch_size / (1 − δ)) clips, so a batch carries
  about as many backbone frames at every δ. One version of the paper's code grew the batch with δ; the
  exact rule is not recorded, this is our reading of it. Off by default (a confound: docs/fidelity.md).

Determinism and resume: both samplers draw only from the run's shuffle generator, whose state the
checkpoint stores after every epoch, so a resumed run draws the batches an uninterrupted one draws, and a
run is a function of its seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.config import RunConfig
from benchmark.training.data import drops_last, epoch_batches


def train_batch_size(cfg: RunConfig) -> int:
    """Clips per training batch: `batch_size`, or batch_size / (1 − δ) with `batch_size_scales_with_rate`."""
    if not cfg.batch_size_scales_with_rate:
        return cfg.batch_size
    return max(1, round(cfg.batch_size / (1.0 - cfg.reduction_rate)))


def balanced_weights(targets: Tensor, num_classes: int) -> Tensor:
    """Per-clip sampling weights [N] from labels [N] or multi-hot targets [N, C]: the sum of the inverse
    frequencies of a clip's labels. A clip without any label gets the smallest weight of the others."""
    multi_hot = targets.float() if targets.dim() == 2 else torch.nn.functional.one_hot(targets, num_classes).float()
    counts = multi_hot.sum(0)  # [C]
    inverse = torch.where(counts > 0, 1.0 / counts.clamp(min=1.0), torch.zeros_like(counts))
    weights = multi_hot @ inverse  # [N]
    if bool((weights <= 0).any()):
        weights = torch.where(weights > 0, weights, weights[weights > 0].min())
    return weights.double()


def balanced_batches(weights: Tensor, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """One epoch of len(weights) clips drawn with replacement by `weights`, in batches (a last batch of
    one clip, which breaks BatchNorm in training mode, is dropped as in `epoch_batches`)."""
    n = len(weights)
    drawn = torch.multinomial(weights, n, replacement=True, generator=generator)
    batches = list(drawn.split(batch_size))
    if drops_last(n, batch_size):
        batches.pop()
    return batches


def train_batches(cfg: RunConfig, targets: Tensor, num_classes: int, generator: torch.Generator) -> list[Tensor]:
    """The training batches of one epoch for `cfg` (see the module docstring)."""
    batch_size = train_batch_size(cfg)
    if cfg.balanced_sampling:
        return balanced_batches(balanced_weights(targets, num_classes), batch_size, generator)
    return epoch_batches(len(targets), batch_size, generator)
