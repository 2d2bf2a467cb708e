"""The Optuna objective, `objective(trial) = run(config.replace(**sampled))`, and the recovery of trials
whose worker died.

- A point is trained once: a trial that finds the same point finished, or running in a trial that
  started first, steps aside (PRUNED, `duplicate_of`); the runner also reuses a finished MLflow run by
  hash.
- RDB storages have heartbeats: Optuna fails stale trials and `RetryHeartbeatStaleTrialCallback` re-queues
  them. Journal files have none, so a RUNNING trial whose worker process (same host) is gone is failed
  and re-queued here. On start a worker re-queues the points whose trials all failed.
- A trial that failed because a shared service stayed down past its retry limit (`OutageError`, see
  `benchmark.tracking.outages`) is marked `outage` and re-queued at once by `RetryAfterOutage`, up to
  `MAX_OUTAGE_RETRIES` times a point; the new trial resumes from the checkpoint the old one left.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from benchmark.config import RunConfig
from benchmark.study.states import POINT, grid_states, trial_key
from benchmark.study.suites import Suite
from benchmark.tracking.outages import OutageError, first_line
from benchmark.validation import validate

logger = logging.getLogger(__name__)

MAX_OUTAGE_RETRIES = 3  # per point, as RetryHeartbeatStaleTrialCallback(max_retry=3) for dead workers
# A trial records its worker milliseconds after optuna starts it; one still unclaimed this long after lost its
# process in between (journal storages: no heartbeat to tell).
UNCLAIMED_GRACE_S = 60.0
RunFn = Callable[..., Any]  # benchmark.training.train.run's signature: (cfg, *, tracking_uri, experiment, ...)


def default_run() -> RunFn:
    from benchmark.training.train import run

    return run


def suggest(trial: optuna.Trial, name: str, spec: Mapping[str, Any]) -> Any:
    """One value of a suite's search-space entry (`{type: float | int | categorical, ...}`)."""
    if spec["type"] == "categorical":
        return trial.suggest_categorical(name, spec["choices"])
    if spec["type"] == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1),
                                 log=spec.get("log", False))
    return trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))


@dataclass
class Objective:
    """objective(trial) = run(config.replace(**sampled)); a point finished or running elsewhere steps aside."""

    suite: Suite
    tracking_uri: str
    checkpoint_dir: Path
    run_fn: RunFn
    run_progress: bool = False
    config: RunConfig | None = None  # search mode: the grid point whose search space is sampled
    data_dir: Path | None = None  # local copies of hub tasks (default: $DIFFRES_DATA_DIR)

    def __call__(self, trial: optuna.Trial) -> float:
        if self.config is None:
            key = trial.suggest_categorical(POINT, self.suite.keys)
            cfg = dict(zip(self.suite.keys, self.suite.configs, strict=True))[key]
        else:
            cfg = validate(self.config.replace(**{name: suggest(trial, name, spec)
                                                  for name, spec in self.suite.search.items()}))
        trial.set_user_attr("config_hash", cfg.config_hash)
        trial.set_user_attr("run_name", cfg.run_name)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        if self.config is None:
            other = _first_claim(trial, cfg.config_hash)
            if other is not None:
                trial.set_user_attr("duplicate_of", other)
                raise optuna.TrialPruned(f"point {cfg.config_hash} is taken by trial {other}")
        logger.info("trial %d: %s (%s)", trial.number, cfg.run_name, cfg.config_hash)
        try:
            result = self.run_fn(cfg, tracking_uri=self.tracking_uri, experiment=self.suite.name,
                                 checkpoint_dir=self.checkpoint_dir,
                                 trial=trial if self.config is not None else None, progress=self.run_progress,
                                 data_dir=self.data_dir)
        except OutageError as err:
            trial.set_user_attr("outage", first_line(err))  # RetryAfterOutage re-queues it
            raise
        trial.set_user_attr("run_id", result.run_id)
        trial.set_user_attr("test_metric", float(result.test_metric))
        trial.set_user_attr("reused", bool(result.reused))
        return float(result.val_metric)


def _first_claim(trial: optuna.Trial, key: str) -> int | None:
    """The number of another trial that finished this point, or runs it and started before us."""
    first = (trial.datetime_start, trial.number)
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number == trial.number or trial_key(other) != key:
            continue
        if other.state == TrialState.COMPLETE or (other.datetime_start, other.number) < first:
            return other.number
    return None


class RetryAfterOutage:
    """`study.optimize` callback: a trial failed by an outage (user attr `outage`) gets a WAITING copy,
    as `RetryHeartbeatStaleTrialCallback` does for a dead worker's trial, at most `max_retry` times."""

    def __init__(self, max_retry: int = MAX_OUTAGE_RETRIES) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != TrialState.FAIL or "outage" not in trial.user_attrs:
            return
        retries = len(trial.system_attrs.get("retry_history", []))
        if retries >= self.max_retry:
            logger.warning("trial %d failed by an outage (%s); %d retries done, not re-queued", trial.number,
                           trial.user_attrs["outage"], retries)
            return
        logger.warning("trial %d failed by an outage (%s); re-queued (retry %d of %d)", trial.number,
                       trial.user_attrs["outage"], retries + 1, self.max_retry)
        _requeue(study, trial)


# ------------------------------------------------------------------------------- dead-trial recovery
def recover(study: optuna.Study, tracking_uri: str | None = None, experiment: str | None = None) -> None:
    """Fail trials whose worker is gone, and re-queue them (RetryHeartbeatStaleTrialCallback semantics).
    With `tracking_uri` and `experiment`: the MLflow runs those trials left RUNNING (a SIGKILL gives a run no
    chance to end itself) are marked KILLED, before their points are trained again."""
    storage = study._storage
    now_ms = int(time.time() * 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if is_heartbeat_enabled(storage):
            running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            optuna.storages.fail_stale_trials(study)
            if tracking_uri and experiment:
                for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                    if trial.number in running:
                        _end_runs_of(trial, tracking_uri, experiment, now_ms, "its heartbeat stopped")
            return
    # Journal files have no heartbeat: a RUNNING trial of a dead process on this host is stale, and so is
    # one that never recorded its worker (its process died between optuna's ask and the objective's
    # first line) once UNCLAIMED_GRACE_S have passed, on any host.
    host = socket.gethostname()
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if owner is None:
            started = trial.datetime_start or now
            if (now - started).total_seconds() < UNCLAIMED_GRACE_S:
                continue
        elif owner.get("host") != host or _alive(owner.get("pid")):
            continue
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            who = f"worker pid {owner.get('pid')} is gone" if owner else "no worker claimed it"
            if owner is not None and tracking_uri and experiment:
                _end_runs_of(trial, tracking_uri, experiment, now_ms, f"{who} (host {owner.get('host')})")
            logger.warning("trial %d: %s; failed%s", trial.number, who, " and re-queued" if trial.params else "")
            if trial.params:  # a trial without a point yet leaves nothing to re-run
                _requeue(study, trial)


def _end_runs_of(trial: optuna.trial.FrozenTrial, tracking_uri: str, experiment: str, now_ms: int,
                 why: str) -> None:
    """The dead trial's MLflow run(s), found by its config hash, marked KILLED (store.end_orphaned_runs)."""
    from benchmark.tracking.store import end_orphaned_runs

    config_hash = trial.user_attrs.get("config_hash") or trial_key(trial)
    if not config_hash:
        return
    ended = end_orphaned_runs(tracking_uri, experiment, config_hash, now_ms,
                              reason=f"trial {trial.number} recovered: {why}")
    if ended:
        logger.warning("trial %d: its MLflow run(s) %s marked KILLED", trial.number, ", ".join(ended))


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A WAITING copy of `trial` (as RetryHeartbeatStaleTrialCallback does), without the old owner."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    system_attrs = {"failed_trial": history[0], **trial.system_attrs, "retry_history": history}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, system_attrs=system_attrs))


def requeue_failed_points(study: optuna.Study, keys: Sequence[str]) -> int:
    """On start: a point whose trials all failed (or stepped aside) gets one fresh WAITING trial."""
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    states = grid_states(study, keys)
    for trial in study.get_trials(deepcopy=False):
        key = trial_key(trial)
        if key in states and states[key] == "failed" and trial.state.is_finished():
            latest[key] = trial
    for trial in latest.values():
        _requeue(study, trial)
    if latest:
        logger.info("re-queued %d failed point(s)", len(latest))
    return len(latest)
