"""Shared helpers for the benchmark tests: tiny configs on the embedded task, a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.config import RunConfig

TINY_TASK = "toy-transients"


TINY_RECIPE = dict(epochs=2, batch_size=16, max_train_clips=32, max_eval_clips=32, mixup_prob=0.5,
                   lr_decay_from=1, lr_decay_every=1)


def make_tiny_config(**overrides) -> RunConfig:
    """A run that trains in a few seconds on a CPU: 32 training clips, 32 val/test clips, 2 epochs."""
    return RunConfig.for_task(TINY_TASK, **{**TINY_RECIPE, **overrides})


@pytest.fixture
def tiny_config():
    """`tiny_config(frontend="avgpool", reduction_rate=0.75)` -> a RunConfig that trains in seconds."""
    return make_tiny_config


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh MLflow SQLite store (absolute path: sqlite:////...)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Five agents share two cores here; one thread keeps test timings predictable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
