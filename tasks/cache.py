"""Where the tasks' caches live and how their keys are made.

    <cache>/embedded/<task>/<generator identity>/   generated parquet of the embedded tasks
    <cache>/features/<task>/                        decoded waveforms, log-mel, train statistics
    <cache>/hf/                                     `datasets`' own cache of the parquet sources

`<cache>` is `DIFFRES_CACHE_DIR`, default `~/.cache/diffres-bench`. Every cache file is named by
`digest(key)`: a content hash of everything that changes its contents, so a changed input gives a new
file and an unchanged one finds the old file again. Changing `digest` would orphan every cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "DIFFRES_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "diffres-bench").expanduser()


def embedded_dir(task: str) -> Path:
    return cache_dir() / "embedded" / task


def feature_dir(task: str) -> Path:
    return cache_dir() / "features" / task


def hf_dir() -> Path:
    return cache_dir() / "hf"


def digest(key: Any, length: int = 16) -> str:
    """Hex SHA-256 of `key` as canonical JSON (sorted keys; non-JSON values by `str`), first `length` digits."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:length]


DATA_DIR_ENV = "DIFFRES_DATA_DIR"


@contextlib.contextmanager
def data_dir_in_environment(data_dir: str | os.PathLike | None) -> Iterator[None]:
    """A command's `--data-dir` as `$DIFFRES_DATA_DIR` while it runs: a hub dataset named by a task YAML reads
    its class names from its local copy when the task is first named, before any data_dir argument is passed.
    A directory that is not there is bad input, never silently ignored (a task that needs no copy would not
    notice it)."""
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir}: no such directory (expected the root of local copies of "
                                f"tasks: DIR/<task>/...)")
    before = os.environ.get(DATA_DIR_ENV)
    if data_dir is not None:
        os.environ[DATA_DIR_ENV] = str(data_dir)
    try:
        yield
    finally:
        if data_dir is not None:
            if before is None:
                os.environ.pop(DATA_DIR_ENV, None)
            else:
                os.environ[DATA_DIR_ENV] = before
