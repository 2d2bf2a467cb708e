"""Optuna storages: a journal file for a path (one machine, no server), an RDB storage for a URL
(PostgreSQL for many machines) with heartbeats, so that a killed worker's trial is failed once its
heartbeat is stale and re-queued by `RetryHeartbeatStaleTrialCallback`.

The default storage of a suite is `benchmark.paths.default_storage`: `results/<suite>/optuna.journal`.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import optuna

from benchmark.study.suites import error_message
from benchmark.tracking import UnreachableError, mask_uri


def open_storage(storage: str, *, heartbeat_interval: int = 30,
                 grace_period: int | None = None) -> optuna.storages.BaseStorage:
    """A journal file for a path, an RDB storage (with heartbeat and retry of stale trials) for a URL."""
    if "://" not in storage:
        path = Path(storage)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    storage = _with_driver(storage)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if storage.startswith(("postgresql", "postgres")):
        engine_kwargs["connect_args"] = {"connect_timeout": 5}
    elif storage.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        try:
            return optuna.storages.RDBStorage(
                storage, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                grace_period=grace_period or 3 * heartbeat_interval, heartbeat_stale_trial_callback=retry)
        except ImportError as err:
            raise UnreachableError(f"Optuna storage {mask_uri(storage)}: driver missing: {err}") from None
        except Exception as err:  # sqlalchemy raises many types: refused, auth, bad URL
            raise UnreachableError(f"cannot open Optuna storage {mask_uri(storage)}: "
                                   f"{mask_uri(error_message(err)).splitlines()[0]}") from None


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; this project ships psycopg2."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        return f"postgresql+psycopg2://{rest}"
    return url


def load_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    """The study of that name, or None when it has not been created yet."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
