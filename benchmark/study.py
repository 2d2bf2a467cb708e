"""Suites and Optuna studies: a suite YAML becomes a list of run configs, then one Optuna study that any
number of `worker` processes share.

- A suite (`benchmark/suites/<name>.yaml`) is data: `base` RunConfig overrides (on top of each task's
  recipe with `task_recipe: true`), a list of `grids` (axes -> value lists; `zip` lists axes that move
  together) and an optional `search` space with `n_trials`.
  The grids' union, deduplicated by config hash, is the suite's list of points.
- Grid suites run through `GridSampler` over one categorical parameter, `point` = the config hash, so the
  union of the sub-grids is covered exactly once and a point keeps its identity when the suite is edited.
- Suites with a search space run one TPE study (median pruner) per grid point, `n_trials` trials each.
- Storage: a journal file `results/<suite>/optuna.journal` by default (one machine, no server); any Optuna
  storage URL otherwise (PostgreSQL for many machines). RDB storages get heartbeats: a killed worker's
  trial is failed once its heartbeat is stale and re-queued by `RetryHeartbeatStaleTrialCallback`.
  Journal files have no heartbeat, so a trial whose worker process (same host) is gone is failed and
  re-queued instead. On start a worker re-queues the points whose trials all failed.
- A point is trained once: a trial that finds the same point finished, or running in a trial that started
  first, steps aside (PRUNED, `duplicate_of`); the runner also reuses a finished MLflow run by hash.
Passwords in storage and tracking URLs are masked in every log line, error and MLflow tag.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from benchmark import tracking
from benchmark.config import RunConfig, field_names
from benchmark.tracking import mask_uri as mask_url

logger = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).with_name("suites")
RESULTS_DIR = Path("results")
CHECKPOINTS_DIR = Path("checkpoints")

_TOP_KEYS = ("name", "description", "task_recipe", "base", "grids", "search", "n_trials")
_SEARCH_KEYS = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log", "step"},
                "categorical": {"type", "choices"}}
_ZIP = "zip"
_POINT = "point"
_FINISHED_SEARCH = (TrialState.COMPLETE, TrialState.PRUNED)


class SuiteError(ValueError):
    """A suite YAML file is malformed, or names a key, axis or value the benchmark does not accept."""


class SuiteNotFoundError(FileNotFoundError):
    """No suite of that name in benchmark/suites and no such YAML file."""


class UnreachableError(ConnectionError):
    """An Optuna storage or MLflow tracking server does not answer."""


# ------------------------------------------------------------------------------------------- suites
@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    configs: tuple[RunConfig, ...]  # the grid points, deduplicated by config hash, in file order
    search: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_trials: int | None = None

    @property
    def keys(self) -> list[str]:
        return [cfg.config_hash for cfg in self.configs]

    def study_name(self, key: str | None = None) -> str:
        """The grid study is named after the suite; a search suite has one study per point."""
        return self.name if key is None else f"{self.name}.{key}"


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str | Path) -> Path:
    """`quick` -> benchmark/suites/quick.yaml; a path to a .yaml/.yml file is taken as is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise SuiteNotFoundError(f"suite file {path} does not exist")
        return path
    path = SUITES_DIR / f"{text}.yaml"
    if not path.is_file():
        raise SuiteNotFoundError(f"unknown suite {text!r}: known suites {list_suites()} "
                                 f"(in {SUITES_DIR}), or give a path to a .yaml file")
    return path


def load_suite(name_or_path: str | Path | Suite) -> Suite:
    """Read and validate a suite; every error names the file, the key and the value."""
    if isinstance(name_or_path, Suite):
        return name_or_path
    path = suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: malformed YAML: {err}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping with keys {list(_TOP_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise SuiteError(f"{path}: unknown key {key!r}; expected one of {list(_TOP_KEYS)}")

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise SuiteError(f"{path}: name={name!r}: expected letters, digits, '-' or '_' (it names "
                         f"directories and the Optuna study)")
    fields_ = field_names()
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise SuiteError(f"{path}: base: expected a mapping of RunConfig fields, got {base!r}")
    for key in base:
        if key not in fields_:
            raise SuiteError(f"{path}: base: unknown RunConfig field {key!r}; known fields: {fields_}")

    task_recipe = data.get("task_recipe", False)
    if not isinstance(task_recipe, bool):
        raise SuiteError(f"{path}: task_recipe={task_recipe!r}: expected true (start every point from its "
                         f"task's recipe, RunConfig.for_task) or false")

    grids = data.get("grids")
    if not isinstance(grids, list) or not grids:
        raise SuiteError(f"{path}: grids: expected a non-empty list of grids (axis -> list of values), "
                         f"got {grids!r}")
    configs: dict[str, RunConfig] = {}
    for index, grid in enumerate(grids):
        where = f"{path}: grids[{index}]"
        for point in _expand_grid(grid, where, fields_):
            merged = {**base, **point}
            if "task" not in merged:
                raise SuiteError(f"{where}: no task: give `task` in base or as an axis")
            try:
                cfg = _build_recipe(**merged) if task_recipe else RunConfig.from_dict(merged)
            except (ValueError, KeyError, TypeError) as err:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise SuiteError(f"{where} point ({shown}): {_message(err)}") from None
            configs.setdefault(cfg.config_hash, cfg)

    search = data.get("search") or {}
    n_trials = data.get("n_trials")
    _validate_search(search, n_trials, path, fields_, axes=_axes(grids))
    return Suite(name=name, path=path, description=str(data.get("description", "")).strip(),
                 configs=tuple(configs.values()), search=search, n_trials=n_trials)


def _build_recipe(task: str, **overrides: Any) -> RunConfig:
    from tasks import get_task

    get_task(task)  # an unknown task is named before the recipe lookup
    return RunConfig.for_task(task, **overrides)


def _expand_grid(grid: Any, where: str, fields_: list[str]) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise SuiteError(f"{where}: expected a mapping of axis -> list of values, got {grid!r}")
    axes: dict[str, list[Any]] = {}
    for axis, values in grid.items():
        if axis == _ZIP:
            continue
        if axis not in fields_:
            raise SuiteError(f"{where}: unknown axis {axis!r}; axes are RunConfig fields: {fields_}")
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{where}: {axis}={values!r}: expected a non-empty list of values")
        axes[axis] = values
    zipped = grid.get(_ZIP, [{}])
    if not isinstance(zipped, list) or not zipped or not all(isinstance(z, dict) for z in zipped):
        raise SuiteError(f"{where}: zip={zipped!r}: expected a non-empty list of mappings "
                         f"(axes that move together, e.g. {{hop_ms: 5, reduction_rate: 0.5}})")
    for entry in zipped:
        for axis in entry:
            if axis not in fields_:
                raise SuiteError(f"{where}: zip: unknown axis {axis!r}; axes are RunConfig fields: {fields_}")
            if axis in axes:
                raise SuiteError(f"{where}: zip: axis {axis!r} is also a grid axis of this grid")
    return [{**dict(zip(axes, values, strict=True)), **entry}
            for values in itertools.product(*axes.values()) for entry in zipped]


def _axes(grids: list[dict[str, Any]]) -> set[str]:
    axes = {axis for grid in grids for axis in grid if axis != _ZIP}
    return axes | {axis for grid in grids for entry in grid.get(_ZIP, []) for axis in entry}


def _validate_search(search: Any, n_trials: Any, path: Path, fields_: list[str], axes: set[str]) -> None:
    if not isinstance(search, dict):
        raise SuiteError(f"{path}: search: expected a mapping param -> {{type, low, high, log}}, got {search!r}")
    for param, spec in search.items():
        where = f"{path}: search.{param}"
        if param not in fields_:
            raise SuiteError(f"{where}: unknown RunConfig field {param!r}; known fields: {fields_}")
        if param in axes:
            raise SuiteError(f"{where}: {param!r} is also a grid axis; a parameter is either searched or gridded")
        if not isinstance(spec, dict) or spec.get("type") not in _SEARCH_KEYS:
            raise SuiteError(f"{where}={spec!r}: expected a mapping with type one of {list(_SEARCH_KEYS)}")
        unknown = set(spec) - _SEARCH_KEYS[spec["type"]]
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {sorted(unknown)} for type {spec['type']!r}; "
                             f"expected {sorted(_SEARCH_KEYS[spec['type']])}")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise SuiteError(f"{where}.choices={spec.get('choices')!r}: expected a non-empty list")
            continue
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
            raise SuiteError(f"{where}: low={low!r}, high={high!r}: expected numbers with low < high")
        if spec.get("log", False) and low <= 0:
            raise SuiteError(f"{where}: low={low!r}: a log-scaled range needs low > 0")
        if not isinstance(spec.get("log", False), bool):
            raise SuiteError(f"{where}.log={spec['log']!r}: expected true or false")
    if search and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1):
        raise SuiteError(f"{path}: n_trials={n_trials!r}: expected an integer >= 1 with a search space")
    if not search and n_trials is not None:
        raise SuiteError(f"{path}: n_trials={n_trials!r} without a search space; grids run each point once")


def _suggest(trial: optuna.Trial, name: str, spec: Mapping[str, Any]) -> Any:
    if spec["type"] == "categorical":
        return trial.suggest_categorical(name, spec["choices"])
    if spec["type"] == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1),
                                 log=spec.get("log", False))
    return trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))


# ------------------------------------------------------------------------------- storage, tracking
def default_storage(suite_name: str) -> str:
    return str(RESULTS_DIR / suite_name / "optuna.journal")


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


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
            raise UnreachableError(f"Optuna storage {mask_url(storage)}: driver missing: {err}") from None
        except Exception as err:  # sqlalchemy raises many types: refused, auth, bad URL
            raise UnreachableError(f"cannot open Optuna storage {mask_url(storage)}: "
                                   f"{mask_url(_message(err)).splitlines()[0]}") from None


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; this project ships psycopg2."""
    import importlib.util

    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        return f"postgresql+psycopg2://{rest}"
    return url


def check_tracking_uri(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (a few seconds) when an MLflow server does not answer; make a SQLite store's directory."""
    if tracking_uri.startswith(("http://", "https://")):
        url = tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http only)
                if response.status != 200:
                    raise OSError(f"HTTP {response.status}")
        except (OSError, urllib.error.URLError) as err:
            raise UnreachableError(f"cannot reach the MLflow tracking server {mask_url(tracking_uri)}: "
                                   f"{mask_url(str(err))}; start it with `mlflow server --host 127.0.0.1 "
                                   f"--port PORT` or pass --tracking-uri") from None
    elif tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def ensure_experiment(tracking_uri: str, name: str, tags: Mapping[str, str] | None = None) -> str:
    """Create the MLflow experiment once, before workers start (tagged with the study); returns its id."""
    experiment_id = tracking.get_or_create_experiment(tracking_uri, name)
    client = tracking.client_for(tracking_uri)
    for key, value in (tags or {}).items():
        client.set_experiment_tag(experiment_id, key, mask_url(str(value)))
    return experiment_id


# ------------------------------------------------------------------------------------------- status
@dataclass(frozen=True)
class StudyStatus:
    suite: str
    total: int
    done: int
    running: int
    failed: int
    left: int

    @property
    def finished(self) -> bool:
        return self.done == self.total

    def __str__(self) -> str:
        return (f"{self.suite}: {self.done}/{self.total} done, {self.running} running, "
                f"{self.failed} failed, {self.left} left")


def _trial_key(trial: optuna.trial.FrozenTrial) -> str | None:
    if _POINT in trial.params:
        return trial.params[_POINT]
    return trial.system_attrs.get("fixed_params", {}).get(_POINT)


def _grid_states(study: optuna.Study, keys: Sequence[str]) -> dict[str, str]:
    """Per point: done | running | waiting | failed | left (never tried)."""
    trials: dict[str, list[TrialState]] = {key: [] for key in keys}
    for trial in study.get_trials(deepcopy=False):
        key = _trial_key(trial)
        if key in trials:
            trials[key].append(trial.state)
    return {key: _state_of(states) for key, states in trials.items()}


def _state_of(states: list[TrialState]) -> str:
    for state, name in ((TrialState.COMPLETE, "done"), (TrialState.RUNNING, "running"),
                        (TrialState.WAITING, "waiting")):
        if state in states:
            return name
    return "failed" if states else "left"


def _search_state(study: optuna.Study, n_trials: int) -> str:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if sum(s in _FINISHED_SEARCH for s in states) >= n_trials:
        return "done"
    if TrialState.RUNNING in states:
        return "running"
    if TrialState.FAIL in states and TrialState.WAITING not in states:
        return "failed"
    return "left"


def _count(suite: Suite, states: list[str]) -> StudyStatus:
    return StudyStatus(suite=suite.name, total=len(states), done=states.count("done"),
                       running=states.count("running"), failed=states.count("failed"),
                       left=states.count("left") + states.count("waiting"))


def status(suite: str | Path | Suite, storage: str | None = None) -> StudyStatus:
    """How many points of the suite are done / running / failed / left (a study not created yet: all left)."""
    suite = load_suite(suite)
    return _status(suite, open_storage(storage or default_storage(suite.name)))


def _status(suite: Suite, storage_obj: optuna.storages.BaseStorage) -> StudyStatus:
    if not suite.search:
        study = _load(suite.study_name(), storage_obj)
        states = list(_grid_states(study, suite.keys).values()) if study else ["left"] * len(suite.keys)
        return _count(suite, states)
    states = []
    for key in suite.keys:
        study = _load(suite.study_name(key), storage_obj)
        states.append(_search_state(study, suite.n_trials) if study else "left")
    return _count(suite, states)


def _load(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


# ---------------------------------------------------------------------------------------- the study
def create(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None) -> Suite:
    """Create the Optuna study (or studies) and the MLflow experiment once, before any worker starts."""
    suite = load_suite(suite)
    storage = storage or default_storage(suite.name)
    tracking_uri = tracking_uri or default_tracking_uri()
    check_tracking_uri(tracking_uri)
    check_data(suite)
    storage_obj = open_storage(storage)
    names = [suite.study_name(key) for key in suite.keys] if suite.search else [suite.study_name()]
    for name in names:
        study = optuna.create_study(study_name=name, storage=storage_obj, direction="maximize",
                                    load_if_exists=True)
        study.set_user_attr("suite_file", str(suite.path))
    ensure_experiment(tracking_uri, suite.name, tags={
        "suite": suite.name, "optuna_study": suite.name, "optuna_storage": mask_url(storage),
        "n_points": str(len(suite.keys))})
    logger.info("created study %s (%d points) in %s; MLflow experiment %r at %s", suite.name,
                len(suite.keys), mask_url(storage), suite.name, mask_url(tracking_uri))
    return suite


def check_data(suite: Suite) -> None:
    """Fail before any trial starts when a task's data cannot be had (a hub task offline without a local
    copy raises `TaskDataUnavailable` with what to download), instead of failing every point in turn;
    warn when a suite of hub tasks is about to train on a CPU."""
    from tasks import get_task
    from tasks.data import resolve_files

    specs = [get_task(name) for name in sorted({cfg.task for cfg in suite.configs})]
    for spec in specs:
        resolve_files(spec)  # embedded tasks: generated here once; hub tasks: local copy or reachable hub
    import torch

    hub = [spec.name for spec in specs if not spec.is_embedded]
    if hub and not torch.cuda.is_available():
        logger.warning("suite %s trains %d points on hub tasks (%s) and no GPU is visible: it is sized for a "
                       "GPU and will be very slow on this CPU", suite.name, len(suite.configs), ", ".join(hub))


RunFn = Callable[..., Any]


def _default_run() -> RunFn:
    from benchmark.train import run

    return run


@dataclass
class _Objective:
    """objective(trial) = run(config.replace(**sampled)); a point finished or running elsewhere steps aside."""

    suite: Suite
    tracking_uri: str
    checkpoint_dir: Path
    run_fn: RunFn
    run_progress: bool = False
    config: RunConfig | None = None  # search mode: the grid point whose search space is sampled

    def __call__(self, trial: optuna.Trial) -> float:
        if self.config is None:
            key = trial.suggest_categorical(_POINT, self.suite.keys)
            cfg = dict(zip(self.suite.keys, self.suite.configs, strict=True))[key]
        else:
            cfg = self.config.replace(**{name: _suggest(trial, name, spec)
                                         for name, spec in self.suite.search.items()})
        trial.set_user_attr("config_hash", cfg.config_hash)
        trial.set_user_attr("run_name", cfg.run_name)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        if self.config is None:
            other = _first_claim(trial, cfg.config_hash)
            if other is not None:
                trial.set_user_attr("duplicate_of", other)
                raise optuna.TrialPruned(f"point {cfg.config_hash} is taken by trial {other}")
        logger.info("trial %d: %s (%s)", trial.number, cfg.run_name, cfg.config_hash)
        result = self.run_fn(cfg, tracking_uri=self.tracking_uri, experiment=self.suite.name,
                             checkpoint_dir=self.checkpoint_dir,
                             trial=trial if self.config is not None else None, progress=self.run_progress)
        trial.set_user_attr("run_id", result.run_id)
        trial.set_user_attr("test_metric", float(result.test_metric))
        trial.set_user_attr("reused", bool(result.reused))
        return float(result.val_metric)


def _first_claim(trial: optuna.Trial, key: str) -> int | None:
    """The number of another trial that finished this point, or runs it and started before us."""
    first = (trial.datetime_start, trial.number)
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number == trial.number or _trial_key(other) != key:
            continue
        if other.state == TrialState.COMPLETE or (other.datetime_start, other.number) < first:
            return other.number
    return None


def _recover(study: optuna.Study) -> None:
    """Fail trials whose worker is gone, and re-queue them (RetryHeartbeatStaleTrialCallback semantics)."""
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if is_heartbeat_enabled(storage):
            optuna.storages.fail_stale_trials(study)
            return
    # Journal files have no heartbeat: a RUNNING trial of a dead process on this host is stale.
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker") or {}
        if owner.get("host") != host or _alive(owner.get("pid")):
            continue
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            logger.warning("trial %d: worker pid %s is gone; failed and re-queued", trial.number,
                           owner.get("pid"))
            _requeue(study, trial)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True  # not claimed yet: leave it to its owner
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


def _requeue_failed_points(study: optuna.Study, keys: Sequence[str]) -> int:
    """On start: a point whose trials all failed (or stepped aside) gets one fresh WAITING trial."""
    latest: dict[str, optuna.trial.FrozenTrial] = {}
    states = _grid_states(study, keys)
    for trial in study.get_trials(deepcopy=False):
        key = _trial_key(trial)
        if key in states and states[key] == "failed" and trial.state.is_finished():
            latest[key] = trial
    for trial in latest.values():
        _requeue(study, trial)
    if latest:
        logger.info("re-queued %d failed point(s)", len(latest))
    return len(latest)


def worker(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None, *,
           checkpoint_dir: Path | None = None, heartbeat_interval: int = 30, grace_period: int | None = None,
           poll_seconds: float = 5.0, progress: bool = False, run_progress: bool = False,
           run_fn: RunFn | None = None) -> StudyStatus:
    """Join the suite's study and train points until every point is done or failed; returns the status.

    Safe to start on many machines at once against one RDB storage and one MLflow server.
    """
    suite = create(suite, storage, tracking_uri)  # idempotent; `study` has already done it
    storage = storage or default_storage(suite.name)
    tracking_uri = tracking_uri or default_tracking_uri()
    storage_obj = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    objective = _Objective(suite, tracking_uri, Path(checkpoint_dir or CHECKPOINTS_DIR / suite.name),
                           run_fn or _default_run(), run_progress)
    logger.info("worker %s:%d joins %s at %s", socket.gethostname(), os.getpid(), suite.name, mask_url(storage))
    bar = _bar(progress, suite, _status(suite, storage_obj))
    try:
        if suite.search:
            _search_loop(suite, storage_obj, objective, poll_seconds, bar)
        else:
            _grid_loop(suite, storage_obj, objective, poll_seconds, bar)
    finally:
        if bar is not None:
            bar.close()
    final = _status(suite, storage_obj)
    logger.info("worker done: %s", final)
    return final


def _grid_loop(suite: Suite, storage: optuna.storages.BaseStorage, objective: _Objective,
               poll_seconds: float, bar: Any) -> None:
    keys = suite.keys
    study = optuna.load_study(study_name=suite.study_name(), storage=storage,
                              sampler=optuna.samplers.GridSampler({_POINT: keys}),
                              pruner=optuna.pruners.NopPruner())
    _recover(study)
    _requeue_failed_points(study, keys)
    while True:
        _recover(study)
        states = list(_grid_states(study, keys).values())
        if "left" in states or "waiting" in states:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        elif "running" in states:
            time.sleep(poll_seconds)
        else:
            break
        if bar is not None:
            _update(bar, _status(suite, storage).done)


def _search_loop(suite: Suite, storage: optuna.storages.BaseStorage, objective: _Objective,
                 poll_seconds: float, bar: Any) -> None:
    assert suite.n_trials is not None
    for key, cfg in zip(suite.keys, suite.configs, strict=True):
        study = optuna.load_study(study_name=suite.study_name(key), storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
        point_objective = _Objective(suite, objective.tracking_uri, objective.checkpoint_dir,
                                     objective.run_fn, objective.run_progress, config=cfg)
        _recover(study)
        failures = 0
        while failures < suite.n_trials:
            _recover(study)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in _FINISHED_SEARCH for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if finished >= suite.n_trials:
                break
            if finished + running >= suite.n_trials:
                time.sleep(poll_seconds)
                continue
            study.optimize(point_objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            failures += study.get_trials(deepcopy=False)[-1].state == TrialState.FAIL
        if bar is not None:
            _update(bar, _status(suite, storage).done)


def _bar(progress: bool, suite: Suite, current: StudyStatus) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=current.total, initial=current.done, desc=f"suite {suite.name}", unit="run",
                dynamic_ncols=True)


def _update(bar: Any, done: int) -> None:
    if done > bar.n:
        bar.update(done - bar.n)


def default_n_workers() -> int:
    """One worker on a GPU; on a CPU one single-threaded worker per core (at most 4): small models use
    threads poorly, and a multi-threaded process stalls whenever another process holds a core."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(4, os.cpu_count() or 1))


def run_study(suite: str | Path | Suite, storage: str | None = None, tracking_uri: str | None = None, *,
              n_workers: int | None = None, checkpoint_dir: Path | None = None, heartbeat_interval: int = 30,
              grace_period: int | None = None, progress: bool = True, run_fn: RunFn | None = None) -> StudyStatus:
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
    suite = create(suite, storage, tracking_uri)
    storage = storage or default_storage(suite.name)
    tracking_uri = tracking_uri or default_tracking_uri()
    current = status(suite, storage)
    if current.finished:  # a second `reproduce` only reports
        return current
    if n_workers == 1:
        return worker(suite, storage, tracking_uri, checkpoint_dir=checkpoint_dir,
                      heartbeat_interval=heartbeat_interval, grace_period=grace_period, progress=progress,
                      run_fn=run_fn)
    procs = [spawn_worker(suite.path, storage, tracking_uri, checkpoint_dir=checkpoint_dir,
                          heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                          threads=max(1, (os.cpu_count() or 1) // n_workers))
             for _ in range(n_workers)]
    storage_obj = open_storage(storage)
    bar = _bar(progress, suite, _status(suite, storage_obj))
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2.0)
            if bar is not None:
                _update(bar, _status(suite, storage_obj).done)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        if bar is not None:
            bar.close()
    failed = [p.returncode for p in procs if p.returncode not in (0, None)]
    if failed:
        logger.warning("%d worker(s) exited with an error: %s", len(failed), failed)
    return _status(suite, storage_obj)


def spawn_worker(suite: str | Path, storage: str, tracking_uri: str, *, checkpoint_dir: Path | None = None,
                 heartbeat_interval: int = 30, grace_period: int | None = None, poll_seconds: float = 5.0,
                 threads: int | None = None, log_file: Path | None = None) -> subprocess.Popen:
    """Start `diffres-bench worker` as a child process; the storage URL travels in the environment (not
    the command line, where `ps` would show a password)."""
    env = dict(os.environ, DIFFRES_BENCH_STORAGE=storage, MLFLOW_TRACKING_URI=tracking_uri)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "benchmark", "worker", "--suite", str(suite),
           "--heartbeat-interval", str(heartbeat_interval), "--poll-seconds", str(poll_seconds),
           "--no-progress"]
    if grace_period is not None:
        cmd += ["--grace-period", str(grace_period)]
    if checkpoint_dir is not None:
        cmd += ["--checkpoint-dir", str(checkpoint_dir)]
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


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
