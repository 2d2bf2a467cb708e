"""Optuna storages: a journal file for a path, an RDB storage for a URL, and a server that does not
answer fails fast with its password masked (PostgreSQL itself: test_scaleout.py)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from benchmark import study
from benchmark.benches.services import free_port
from benchmark.tracking.outages import UnreachableError


def test_a_path_is_a_journal_file_in_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "optuna.journal"
    storage = study.open_storage(str(path))
    assert isinstance(storage, optuna.storages.JournalStorage)
    optuna.create_study(study_name="s", storage=storage)
    assert path.is_file()


def test_a_sqlite_url_is_an_rdb_storage_with_heartbeats(tmp_path: Path) -> None:
    storage = study.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=7)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert (storage.heartbeat_interval, storage.grace_period) == (7, 21)


def test_unreachable_storage_fails_fast_with_a_masked_url() -> None:
    url = f"postgresql://bench:hunter2@127.0.0.1:{free_port()}/optuna"
    with pytest.raises(UnreachableError) as err:
        study.open_storage(url)
    assert "hunter2" not in str(err.value) and "bench:***@127.0.0.1" in str(err.value)
