"""Every default location of the benchmark and every environment variable it reads, defined once.

Relative paths are relative to the working directory the command runs in (the repository root for
``make``), so a study, its checkpoints and its report land beside each other. The task library's two
(``DIFFRES_CACHE_DIR`` in :mod:`tasks.cache`, ``DIFFRES_DATA_DIR`` in :mod:`tasks.data`) live there, since
``tasks`` does not import ``benchmark``. ``env_number`` reads a numeric one with the error every caller
gives.
"""

from __future__ import annotations

import os
from pathlib import Path

SUITES_DIR = Path(__file__).with_name("suites")  # the suite YAMLs shipped with the package
PAPER_DIR = Path(__file__).with_name("paper")  # the paper's claims (and values, where known)
REPO_ROOT = Path(__file__).resolve().parents[1]
# What a run executes: the engine (benchmark.tracking.engine). A change there can move a number, so it decides
# whether a tree is dirty and whether a finished run is stale; the CLI, study, tracking, report, plan, benches
# and suites train nothing (a run's config hash names what it read of a suite).
TRAINING_CODE = ("diffres", "tasks", "benchmark/model", "benchmark/training", "benchmark/config.py",
                 "benchmark/fields.py", ":(exclude)tasks/cli.py", ":(exclude)tasks/inspect.py")
ALLOW_DIRTY_ENV = "DIFFRES_BENCH_ALLOW_DIRTY"  # "1": train suites from uncommitted code (runs are tagged -dirty)

RESULTS_DIR = Path("results")  # results/<suite>/*.csv; a study's state: its Optuna journal, its checkpoints/
REPORTS_DIR = Path("reports")  # reports/<suite>/REPORT.md and figures
CANARY_CSV = REPO_ROOT / RESULTS_DIR / "numerics" / "canary.csv"  # committed canary digests (tracking.numerics)
NEUTRAL_COMMITS = RESULTS_DIR / "numerics" / "neutral_commits.csv"  # under a repo root: benchmark.report.provenance
CHECKPOINTS_DIR = Path("checkpoints")  # `run`: checkpoints/runs/<hash>/last.pt (suites: default_checkpoint_dir)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STORAGE_ENV = "DIFFRES_BENCH_STORAGE"
LOADER_WORKERS_ENV = "DIFFRES_LOADER_WORKERS"  # loader worker processes a run uses (training.loader)
TRACKING_RETRY_ENV = "DIFFRES_BENCH_TRACKING_RETRY_S"  # how long a run waits for MLflow (tracking.outages)
DB_RETRY_ENV = "DIFFRES_BENCH_DB_RETRY_S"  # how long a worker waits for the Optuna storage
BACKOFF_MAX_ENV = "DIFFRES_BENCH_BACKOFF_MAX_S"  # the longest pause between two tries
DATA_DIR_ENV = "DIFFRES_DATA_DIR"  # tasks.cache.DATA_DIR_ENV, spelled here so that `--help` imports no torch
DEBUG_ENV = "DIFFRES_BENCH_DEBUG"  # "1": a command's error shows its stack trace (benchmark.cli)


def env_number(name: str, default: float, what: str, integer: bool = False) -> float:
    """The environment variable `name` as a number >= 0 (`default` when unset or blank); anything else is an
    error naming the variable, its value and what it means (`what`: "seconds", "loader worker processes")."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    expected = f"expected {'an integer' if integer else 'a number'} >= 0 ({what})"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: {expected}") from None
    if value < 0:
        raise ValueError(f"{name}={text!r}: {expected}")
    return value


def suite_results_dir(suite: str, results_dir: Path | None = None) -> Path:
    return Path(results_dir or RESULTS_DIR) / suite


def default_storage(suite_name: str, results_dir: Path | None = None) -> str:
    """The Optuna storage of a suite when none is given: a journal file beside its results, as an absolute path
    (it is logged as the MLflow tag `optuna_storage`, read from other working directories)."""
    return str((suite_results_dir(suite_name, results_dir) / "optuna.journal").resolve())


def storage_or_default(storage: str | None, suite_name: str, results_dir: Path | None = None) -> str:
    """`storage` as given (a journal file path made absolute; a URL unchanged), else `default_storage`."""
    if not storage:
        return default_storage(suite_name, results_dir)
    return storage if "://" in storage else str(Path(storage).resolve())


def default_checkpoint_dir(suite_name: str, results_dir: Path | None = None) -> Path:
    """A suite's per-epoch checkpoints when no --checkpoint-dir is given: `<results dir>/<suite>/checkpoints/`,
    beside its journal, so one directory holds a study's state and --results-dir moves all of it."""
    return (suite_results_dir(suite_name, results_dir) / "checkpoints").resolve()


def store_exists(uri: str) -> bool:
    """Whether a journal file or SQLite store (``sqlite:///path``) is already there; a server URL: True.
    Read-only commands check it first, so that they never create an empty store."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return "://" in uri or Path(uri).is_file()


def default_tracking_uri(results_dir: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store ``mlflow.db``: in `results_dir` when a command was given one
    other than the default (so `--results-dir` moves a study's whole state), else in the working directory."""
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    if results_dir is not None and Path(results_dir).resolve() != RESULTS_DIR.resolve():
        return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
