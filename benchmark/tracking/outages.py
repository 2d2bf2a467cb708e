"""Riding out outages: bounded retry with backoff for calls to the shared services (the MLflow tracking
server, the Optuna database), the limits and where they are set, and clear errors for a local disk
that is full or unwritable.

    value = retry(call, transient=store.is_unreachable, backoff=tracking_backoff(), what="MLflow server http://...")

A call that fails with a *transient* error (the service does not answer: connection refused, reset,
timed out, 5xx while it starts) is tried again after 0.5 s, 1 s, 2 s, ... capped at
`DIFFRES_BENCH_BACKOFF_MAX_S` (default 10 s), until it has failed for the service's limit:
`DIFFRES_BENCH_TRACKING_RETRY_S` (MLflow, default 300 s) or `DIFFRES_BENCH_DB_RETRY_S` (the database,
default 300 s). Past the limit it raises `OutageError`, which a worker turns into a failed trial that is
re-queued (`benchmark.study.objective.RetryAfterOutage`). Any other error is raised at once: retrying a
bug only hides it. The limits are environment variables, not flags, so that `spawn_worker`'s children
and `diffres-bench worker` on other machines read the same values without new plumbing.

No heavy imports: the transient tests of each service live with its client (`benchmark.tracking.store`,
`benchmark.study.storage`).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from benchmark.paths import BACKOFF_MAX_ENV, DB_RETRY_ENV, TRACKING_RETRY_ENV, env_number

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_S = 300.0  # a restart or an upgrade of either service; longer outages fail the trial
DEFAULT_BACKOFF_MAX_S = 10.0

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]*)@")


def mask_uri(uri: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db` (for logs and params)."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", str(uri))


class UnreachableError(ConnectionError):
    """An Optuna storage or MLflow tracking server does not answer."""


class OutageError(UnreachableError):
    """A shared service stayed unreachable past its retry limit (the call was tried again and again)."""


class DiskError(OSError):
    """A local directory (checkpoints, feature cache) is full or cannot be written; names the path."""


@dataclass(frozen=True)
class Backoff:
    """Delays 0.5 s, 1 s, 2 s, ... capped at `max_s`, for at most `limit_s` in all (`limit_env` names
    the variable that sets it, for the error message)."""

    limit_s: float
    max_s: float = DEFAULT_BACKOFF_MAX_S
    first_s: float = 0.5
    factor: float = 2.0
    limit_env: str = ""

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            # jitter: workers that lost the service together do not all knock at the same instant
            yield delay * random.uniform(0.75, 1.0)
            delay = min(delay * self.factor, self.max_s)


def _seconds(name: str, default: float) -> float:
    return env_number(name, default, "seconds")


def tracking_backoff() -> Backoff:
    """How long MLflow calls are retried (`DIFFRES_BENCH_TRACKING_RETRY_S`, `DIFFRES_BENCH_BACKOFF_MAX_S`)."""
    return Backoff(_seconds(TRACKING_RETRY_ENV, DEFAULT_RETRY_S), _seconds(BACKOFF_MAX_ENV, DEFAULT_BACKOFF_MAX_S),
                   limit_env=TRACKING_RETRY_ENV)


def db_backoff() -> Backoff:
    """How long Optuna storage calls are retried (`DIFFRES_BENCH_DB_RETRY_S`, `DIFFRES_BENCH_BACKOFF_MAX_S`)."""
    return Backoff(_seconds(DB_RETRY_ENV, DEFAULT_RETRY_S), _seconds(BACKOFF_MAX_ENV, DEFAULT_BACKOFF_MAX_S),
                   limit_env=DB_RETRY_ENV)


def retry(call: Callable[[], T], *, transient: Callable[[BaseException], bool], backoff: Backoff,
          what: str) -> T:
    """`call()`, tried again after each transient failure until `backoff.limit_s` have passed; then
    `OutageError` naming `what` (already masked), how long it was tried and the variable that sets it."""
    start = time.monotonic()
    delays = backoff.delays()
    attempts = 0
    while True:
        try:
            value = call()
        except Exception as err:
            if not transient(err):
                raise
            attempts += 1
            elapsed = time.monotonic() - start
            if elapsed >= backoff.limit_s:
                raise OutageError(f"{what} did not answer for {elapsed:.0f} s ({attempts} tries; limit "
                                  f"{backoff.limit_s:g} s, set by {backoff.limit_env or 'the caller'}): "
                                  f"{first_line(err)}") from err
            if attempts == 1:
                log.warning("%s does not answer (%s); retrying for up to %g s", what, first_line(err),
                            backoff.limit_s)
            time.sleep(min(next(delays), max(0.0, backoff.limit_s - elapsed)))
        else:
            if attempts:
                log.warning("%s answers again after %.1f s (%d failed tries)", what, time.monotonic() - start,
                            attempts)
            return value


def first_line(err: BaseException) -> str:
    """`Type: first line` of the root cause (Optuna wraps a refused connection in a StorageInternalError
    that blames "invalid data"; the driver's error underneath says what happened), password masked."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()
    return mask_uri(f"{type(err).__name__}: {text[0] if text else ''}")[:400]


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                errno.EEXIST, errno.EISDIR, errno.EFBIG}


def is_disk_error(err: BaseException) -> bool:
    """An OSError that means: this directory cannot take the file (full, read-only, not a directory)."""
    return isinstance(err, OSError) and err.errno in _DISK_ERRNOS


def disk_error(err: OSError, what: str, path: os.PathLike | str, hint: str) -> DiskError:
    """`DiskError`: "cannot write <what> <path>: No space left on device (ENOSPC); <hint>"."""
    code = errno.errorcode.get(err.errno or 0, "?")
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
    return DiskError(err.errno, f"cannot write {what} {path}{where}: {err.strerror or err} ({code}); {hint}")
