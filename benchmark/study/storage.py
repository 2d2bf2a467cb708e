"""Optuna storages: a journal file for a path (one machine, no server), an RDB storage for a URL
(PostgreSQL for many machines) with heartbeats, so that a killed worker's trial is failed once its
heartbeat is stale and re-queued by `RetryHeartbeatStaleTrialCallback`.

A database restart (an upgrade, a failover) does not end a study: connections are checked before use
(`pool_pre_ping`), and every storage call that fails because the database does not answer is tried
again with backoff for up to `DIFFRES_BENCH_DB_RETRY_S` (`benchmark.tracking.outages`), the heartbeats of live
trials included, so they resume when it is back. The grace period must exceed the longest outage to ride
out (plus `DIFFRES_BENCH_BACKOFF_MAX_S`), or a live trial is failed as stale and re-queued.

The default storage of a suite is `benchmark.paths.default_storage`: `results/<suite>/optuna.journal`.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import exc as sa_exc

from benchmark.study.suites import error_message
from benchmark.tracking.outages import OutageError, UnreachableError, db_backoff, mask_uri, retry


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
            return ResilientRDBStorage(
                storage, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                grace_period=grace_period or 3 * heartbeat_interval, heartbeat_stale_trial_callback=retry)
        except ImportError as err:
            raise UnreachableError(f"Optuna storage {mask_uri(storage)}: driver missing: {err}") from None
        except Exception as err:  # sqlalchemy raises many types: refused, auth, bad URL
            raise UnreachableError(f"cannot open Optuna storage {mask_uri(storage)}: "
                                   f"{mask_uri(error_message(err)).splitlines()[0]}") from None


def is_db_down(err: BaseException) -> bool:
    """True when a storage call failed because the database did not answer (refused, reset, restarting,
    or a transaction it rolled back), seen anywhere in the chain Optuna wraps it in."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OutageError):
            return False  # an inner call already waited its full limit
        if isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                            ConnectionError)):
            return True
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """`RDBStorage` whose calls wait out a database restart (see the module docstring).

    A write retried after a failure is applied once: the failed attempt's transaction was rolled back,
    except in the rare case of a connection lost after the commit, where Optuna's own checks (a trial
    already finished, a duplicate key) apply.
    """


_NOT_RETRIED = {"remove_session", "upgrade", "get_current_version", "get_head_version", "get_all_versions",
                "check_table_schema_compatibility", "get_heartbeat_interval",
                "get_heartbeat_stale_trial_callback", "get_failed_trial_callback"}


def _waiting(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return retry(lambda: method(self, *args, **kwargs), transient=is_db_down, backoff=db_backoff(),
                     what=f"Optuna storage {mask_uri(self.url)}")
    return call


# the private methods that Optuna's _CachedStorage and fail_stale_trials call on the backend directly
_PRIVATE_RETRIED = {"_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param",
                    "_get_stale_trial_ids"}

for _name, _method in list(vars(optuna.storages.RDBStorage).items()):
    if callable(_method) and _name not in _NOT_RETRIED and (not _name.startswith("_")
                                                            or _name in _PRIVATE_RETRIED):
        setattr(ResilientRDBStorage, _name, _waiting(_method))


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
