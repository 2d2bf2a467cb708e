"""A suite's study, from creation to the last point: `create` (the Optuna study and the MLflow experiment,
once), `worker` (join the study and train points until none is left; any number of them, on any
machine), `run_study` (create, then local workers) and `spawn_worker` (a `diffres-bench worker` child).

- Grid suites run through `GridSampler` over one categorical parameter, `point` = the config hash, so
  the union of the sub-grids is covered exactly once and a point keeps its identity when the suite is
  edited.
- Suites with a search space run one TPE study (median pruner) per grid point, `n_trials` trials each.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmark.paths import (
    STORAGE_ENV,
    TRACKING_URI_ENV,
    default_checkpoint_dir,
    default_tracking_uri,
    storage_or_default,
)
from benchmark.study.objective import (
    Objective,
    RetryAfterOutage,
    RunFn,
    default_run,
    recover,
    requeue_failed_points,
)
from benchmark.study.states import FINISHED_SEARCH, POINT, StudyStatus, grid_states, status, status_in
from benchmark.study.storage import load_study, open_storage
from benchmark.study.suites import Suite, check_data, load_suite
from benchmark.tracking.outages import mask_uri
from benchmark.tracking.store import check_tracking_uri, ensure_experiment

logger = logging.getLogger(__name__)


def create(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None, *,
           data_dir: Path | None = None, results_dir: Path | None = None) -> Suite:
    """Create the Optuna study (or studies) and the MLflow experiment once, before any worker starts.
    `results_dir`: the root of the suite's state (`<results_dir>/<suite>/optuna.journal` unless `storage`)."""
    suite = load_suite(suite)
    storage = storage_or_default(storage, suite.name, results_dir)
    tracking_uri = tracking_uri or default_tracking_uri()
    check_tracking_uri(tracking_uri)
    check_data(suite, data_dir)
    storage_obj = open_storage(storage)
    names = [suite.study_name(key) for key in suite.keys] if suite.search else [suite.study_name()]
    existed = all(load_study(name, storage_obj) is not None for name in names)
    for name in names:
        study = optuna.create_study(study_name=name, storage=storage_obj, direction="maximize",
                                    load_if_exists=True)
        if not suite.search and _grid_changed(study, suite.keys):
            study = _archive_and_recreate(study, storage_obj)
        study.set_user_attr("suite_file", str(suite.path))
    ensure_experiment(tracking_uri, suite.name, tags={
        "suite": suite.name, "optuna_study": suite.name, "optuna_storage": mask_uri(storage),
        "n_points": str(len(suite.keys))})
    # once per study, not once per caller: `study` creates it, then its workers find it (said at DEBUG)
    logger.log(logging.DEBUG if existed else logging.INFO, "%s study %s (%d points) in %s; MLflow experiment %r at %s",
               "found" if existed else "created", suite.name, len(suite.keys), mask_uri(storage), suite.name,
               mask_uri(tracking_uri))
    return suite


def _grid_changed(study: optuna.Study, keys: list[str]) -> bool:
    """Whether the study's trials drew from another point set than the suite's (the suite was edited)."""
    for trial in study.get_trials(deepcopy=False):
        dist = trial.distributions.get(POINT)
        if dist is not None:
            return list(dist.choices) != list(keys)
    return False


def _archive_and_recreate(study: optuna.Study, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """An edited grid suite gets a fresh study under its name; the old one is kept as `<name>@<time>`.

    Optuna fixes a categorical parameter's choices at its first trial, so the old study cannot draw the
    new points. Nothing finished is lost: the runs are in MLflow, where a worker finds every unchanged
    point by its config hash and does not train it again (its trial is marked `reused`). Edit a suite
    only while no worker of the old point set runs: their trials are in the archived study.
    """
    name = study.study_name
    archive = f"{name}@{time.strftime('%Y%m%dT%H%M%S')}"
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage, to_study_name=archive)
    optuna.delete_study(study_name=name, storage=storage)
    logger.warning("suite %s: its points changed since the study was created; the old study is kept as %r "
                   "and a new one starts (finished points are reused from MLflow, not retrained)", name, archive)
    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def worker(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None, *,
           checkpoint_dir: Path | None = None, heartbeat_interval: int = 30, grace_period: int | None = None,
           poll_seconds: float = 5.0, progress: bool = False, run_progress: bool = False,
           run_fn: RunFn | None = None, data_dir: Path | None = None, results_dir: Path | None = None) -> StudyStatus:
    """Join the suite's study and train points until every point is done or failed; returns the status.
    Checkpoints go to `checkpoint_dir`, by default `<results_dir>/<suite>/checkpoints/` (paths.default_checkpoint_dir).

    Safe to start on many machines at once against one RDB storage and one MLflow server.
    """
    # idempotent; `study` has already done it
    suite = create(suite, storage, tracking_uri, data_dir=data_dir, results_dir=results_dir)
    storage = storage_or_default(storage, suite.name, results_dir)
    tracking_uri = tracking_uri or default_tracking_uri()
    storage_obj = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    objective = Objective(suite, tracking_uri, Path(checkpoint_dir or default_checkpoint_dir(suite.name, results_dir)),
                          run_fn or default_run(), run_progress, data_dir=data_dir)
    logger.info("worker %s:%d joins %s at %s", socket.gethostname(), os.getpid(), suite.name, mask_uri(storage))
    bar = _bar(progress, suite, status_in(suite, storage_obj))
    try:
        if suite.search:
            _search_loop(suite, storage_obj, objective, poll_seconds, bar)
        else:
            _grid_loop(suite, storage_obj, objective, poll_seconds, bar)
    finally:
        if bar is not None:
            bar.close()
    final = status_in(suite, storage_obj)
    logger.info("worker done: %s", final)
    return final


def _grid_loop(suite: Suite, storage: optuna.storages.BaseStorage, objective: Objective,
               poll_seconds: float, bar: Any) -> None:
    keys = suite.keys
    study = optuna.load_study(study_name=suite.study_name(), storage=storage,
                              sampler=optuna.samplers.GridSampler({POINT: keys}),
                              pruner=optuna.pruners.NopPruner())
    recover(study, objective.tracking_uri, suite.name)
    requeue_failed_points(study, keys)
    while True:
        recover(study, objective.tracking_uri, suite.name)
        states = list(grid_states(study, keys).values())
        if "left" in states or "waiting" in states:
            _optimize_one(study, objective)
        elif "running" in states:
            time.sleep(poll_seconds)
        else:
            break
        if bar is not None:
            _update(bar, status_in(suite, storage).done)


def _search_loop(suite: Suite, storage: optuna.storages.BaseStorage, objective: Objective,
                 poll_seconds: float, bar: Any) -> None:
    assert suite.n_trials is not None
    for key, cfg in zip(suite.keys, suite.configs, strict=True):
        study = optuna.load_study(study_name=suite.study_name(key), storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
        point_objective = Objective(suite, objective.tracking_uri, objective.checkpoint_dir, objective.run_fn,
                                    objective.run_progress, config=cfg, data_dir=objective.data_dir)
        recover(study, objective.tracking_uri, suite.name)
        failures = 0
        while failures < suite.n_trials:
            recover(study, objective.tracking_uri, suite.name)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED_SEARCH for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if finished >= suite.n_trials:
                break
            if finished + running >= suite.n_trials:
                time.sleep(poll_seconds)
                continue
            _optimize_one(study, point_objective)
            failures += study.get_trials(deepcopy=False)[-1].state == TrialState.FAIL
        if bar is not None:
            _update(bar, status_in(suite, storage).done)


def _optimize_one(study: optuna.Study, objective: Objective) -> None:
    """One trial. A trial that Optuna failed as stale while it was in fact alive (its heartbeats lapsed
    for longer than the grace period, e.g. a database outage) cannot be told its result; its run is in
    MLflow, and its re-queued copy finds it there (`reused`) instead of training it again."""
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True,
                       callbacks=[RetryAfterOutage()])
    except optuna.exceptions.UpdateFinishedTrialError as err:
        logger.warning("a trial of this worker was failed as stale while it ran (%s); its re-queued copy "
                       "reuses its finished run", err)


def _bar(progress: bool, suite: Suite, current: StudyStatus) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=current.total, initial=current.done, desc=f"suite {suite.name}", unit="run",
                dynamic_ncols=True)


def _update(bar: Any, done: int) -> None:
    if done > bar.n:
        bar.update(done - bar.n)


def clean_checkpoints(suite: str | Path | Suite, storage: str | None = None, *, results_dir: Path | None = None,
                      checkpoint_dir: Path | None = None) -> tuple[list[Path], int]:
    """Delete the checkpoints (`<checkpoint_dir>/<config hash>/`) of the suite's finished points: their runs
    are in MLflow, and a finished point is never trained again. The checkpoints of points not finished (a
    resume needs them) are kept. Returns the directories removed and their size in bytes. A study that
    does not exist has nothing finished: nothing is removed and no storage is created."""
    import shutil

    from benchmark.paths import store_exists

    suite = load_suite(suite)
    storage = storage_or_default(storage, suite.name, results_dir)
    root = Path(checkpoint_dir or default_checkpoint_dir(suite.name, results_dir))
    if not store_exists(storage) or not root.is_dir():
        return [], 0
    storage_obj = open_storage(storage)
    finished: set[str] = set()
    if suite.search:
        for key in suite.keys:
            found = load_study(suite.study_name(key), storage_obj)
            trials = found.get_trials(deepcopy=False, states=FINISHED_SEARCH) if found else []
            finished |= {t.user_attrs["config_hash"] for t in trials if "config_hash" in t.user_attrs}
    else:
        found = load_study(suite.study_name(), storage_obj)
        if found is not None:
            finished = {key for key, state in grid_states(found, suite.keys).items() if state == "done"}
    removed, size = [], 0
    for config_hash in sorted(finished):
        path = root / config_hash
        if path.is_dir():
            size += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
            removed.append(path)
    return removed, size


def default_n_workers() -> int:
    """One worker on a GPU; on a CPU one single-threaded worker per core (at most 4): small models use
    threads poorly, and a multi-threaded process stalls whenever another process holds a core."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(4, os.cpu_count() or 1))


def run_study(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None, *,
              n_workers: int | None = None, checkpoint_dir: Path | None = None, heartbeat_interval: int = 30,
              grace_period: int | None = None, progress: bool = True, run_fn: RunFn | None = None,
              data_dir: Path | None = None, results_dir: Path | None = None) -> StudyStatus:
    """Create the study, then train it with `n_workers` local workers (1: in this process; default
    `default_n_workers()`); resumes.

    More workers are `diffres-bench worker` processes sharing the same storage, so a study can grow from
    one process to many machines without changing anything else.
    """
    n_workers = default_n_workers() if n_workers is None else n_workers
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers!r}: expected an integer >= 1")
    if run_fn is not None and n_workers != 1:
        raise ValueError(f"run_fn runs in this process: n_workers={n_workers} must be 1")
    suite = create(suite, storage, tracking_uri, data_dir=data_dir, results_dir=results_dir)
    storage = storage_or_default(storage, suite.name, results_dir)
    tracking_uri = tracking_uri or default_tracking_uri()
    current = status(suite, storage)
    if current.finished:  # a second `reproduce` only reports
        return current
    if n_workers == 1:
        return worker(suite, storage, tracking_uri, checkpoint_dir=checkpoint_dir,
                      heartbeat_interval=heartbeat_interval, grace_period=grace_period, progress=progress,
                      run_fn=run_fn, data_dir=data_dir, results_dir=results_dir)
    procs = [spawn_worker(suite.path, storage, tracking_uri, checkpoint_dir=checkpoint_dir, results_dir=results_dir,
                          heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                          threads=max(1, (os.cpu_count() or 1) // n_workers), data_dir=data_dir, task=suite.task)
             for _ in range(n_workers)]
    storage_obj = open_storage(storage)
    bar = _bar(progress, suite, status_in(suite, storage_obj))
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2.0)
            if bar is not None:
                _update(bar, status_in(suite, storage_obj).done)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        if bar is not None:
            bar.close()
    failed = [p.returncode for p in procs if p.returncode not in (0, None)]
    if failed:
        logger.warning("%d worker(s) exited with an error: %s", len(failed), failed)
    return status_in(suite, storage_obj)


def spawn_worker(suite: str | Path, storage: str, tracking_uri: str, *, checkpoint_dir: Path | None = None,
                 results_dir: Path | None = None,
                 heartbeat_interval: int = 30, grace_period: int | None = None, poll_seconds: float = 5.0,
                 threads: int | None = None, log_file: Path | None = None,
                 data_dir: Path | None = None, task: str | None = None) -> subprocess.Popen:
    """Start `diffres-bench worker` as a child process; the storage URL travels in the environment (not
    the command line, where `ps` would show a password).

    `threads`: the child's torch thread count, through OMP_NUM_THREADS / MKL_NUM_THREADS (torch reads
    them at start). `run_study` gives each of its n local workers cpu_count // n threads, so they do not
    oversubscribe the cores. CPU numbers are reproducible only at a fixed thread count (it can change
    the order of float sums): every run logs its count as the MLflow tag `torch_threads`."""
    env = dict(os.environ, **{STORAGE_ENV: storage, TRACKING_URI_ENV: tracking_uri})
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmark", "worker", "--suite", str(suite),
           "--heartbeat-interval", str(heartbeat_interval), "--poll-seconds", str(poll_seconds),
           "--no-progress"]
    if grace_period is not None:
        cmd += ["--grace-period", str(grace_period)]
    if checkpoint_dir is not None:
        cmd += ["--checkpoint-dir", str(checkpoint_dir)]
    if results_dir is not None:
        cmd += ["--results-dir", str(Path(results_dir).resolve())]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if task is not None:  # a suite run on one task (`--task`): the worker loads the same points
        cmd += ["--task", task]
    if log_file is None:
        return subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)
    with open(log_file, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """Linux: a local worker is killed when the `study` process that started it dies (even by SIGKILL),
    so no orphan keeps training; its trial is recovered like any other dead worker's."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
