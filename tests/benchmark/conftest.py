"""Shared helpers for the benchmark tests: tiny configs on the embedded task, a real MLflow store, and
real services on loopback (a PostgreSQL cluster, an `mlflow server`) for the scale-out and outage tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmark.benches.services import MlflowServer, PostgresServer, start_mlflow_server, start_postgres
from benchmark.config import RunConfig
from benchmark.paths import ALLOW_DIRTY_ENV

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
def _allow_dirty_tree():
    """Tests train studies into temporary stores, also from a developer's uncommitted tree: the guard that
    refuses a dirty tree (benchmark.tracking.provenance) has its own tests, which clear this."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ALLOW_DIRTY_ENV, "1")
        yield


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Five agents share two cores here; one thread keeps test timings predictable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# The services live here, in tests/benchmark/, not in a tests/conftest.py: a conftest in tests/ would put
# tests/ on sys.path, where tests/diffres and tests/benchmark shadow the real packages as namespace packages.
@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user when tests run as root)."""
    with start_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` on 127.0.0.1 with a SQLite store and served artifacts in a temporary directory."""
    with start_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
