"""PSLA's weight averaging (`RunConfig.weight_averaging = "A-B"`): the run's model is the mean of the
weights it had at the end of epochs A..B (1-based, inclusive; e.g. AudioSet "16-30"), evaluated once.

PSLA saves every epoch's state dict and, after training, sums those of epochs wa_start..wa_end and divides
by their count. The same mean is kept here as a running sum (float64, so the mean does not depend on the
order of additions and resuming changes nothing), updated after each epoch in the range and stored in
the checkpoint (`state_dict` / `load_state_dict`), so a resumed run ends with the average an
uninterrupted one has. Every floating-point entry is averaged (parameters and BatchNorm running
statistics, as PSLA does); integer buffers (BatchNorm's `num_batches_tracked`) keep the last epoch's value.

With averaging on, the run's `val_metric` / `test_metric` are those of the averaged model (the number
the paper's code reports); the best-on-val epoch's are logged beside them as `best_epoch_val_metric` /
`best_epoch_test_metric` (see `benchmark.training.train`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.config import RunConfig


class WeightAverager:
    """The running sum of a model's end-of-epoch weights over `cfg.averaged_epochs`."""

    def __init__(self, cfg: RunConfig):
        epochs = cfg.averaged_epochs
        if epochs is None:
            raise ValueError(f"RunConfig.weight_averaging={cfg.weight_averaging!r}: nothing to average")
        self.first, self.last = epochs
        self.count = 0
        self.sums: dict[str, Tensor] = {}

    def covers(self, epoch: int) -> bool:
        """Whether 0-based `epoch` is in the averaged range."""
        return self.first <= epoch + 1 <= self.last

    def update(self, epoch: int, model: nn.Module) -> None:
        """Add the model's weights at the end of 0-based `epoch` when the epoch is in the range."""
        if not self.covers(epoch):
            return
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value = value.detach().to("cpu", torch.float64)
                self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.count += 1

    def averaged_state(self, model: nn.Module) -> dict[str, Tensor]:
        """The model's state dict with every floating-point entry replaced by its mean over the range."""
        if self.count == 0:
            raise RuntimeError(f"weight averaging over epochs {self.first}-{self.last}: no epoch of the range ran")
        state = model.state_dict()
        return {name: (self.sums[name] / self.count).to(value.device, value.dtype) if name in self.sums else value
                for name, value in state.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "count": self.count, "sums": dict(self.sums)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state["first"], state["last"]) != (self.first, self.last):
            raise ValueError(f"checkpoint averages epochs {state['first']}-{state['last']}, "
                             f"the config {self.first}-{self.last}")
        self.count = int(state["count"])
        self.sums = {k: v.to(torch.float64) for k, v in state["sums"].items()}


def make_averager(cfg: RunConfig) -> WeightAverager | None:
    return WeightAverager(cfg) if cfg.averaged_epochs is not None else None
