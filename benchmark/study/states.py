"""Where a study stands: the state of each grid point (done | running | waiting | failed | left) read from
its trials, and `status`, the suite's count of them (`diffres-bench status`).

A grid point is the categorical parameter `point` (the config hash) of the suite's one grid study; a
search suite has one study per point, done after `n_trials` finished (complete or pruned) trials.
(Named `states`, not `status`, so that `benchmark.study.status` stays the function.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from benchmark.paths import storage_or_default, store_exists
from benchmark.study.storage import load_study, open_storage
from benchmark.study.suites import Suite, load_suite

POINT = "point"  # the grid study's one parameter: a point's config hash
FINISHED_SEARCH = (TrialState.COMPLETE, TrialState.PRUNED)


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


def trial_key(trial: optuna.trial.FrozenTrial) -> str | None:
    """The point a trial trains (also of a WAITING trial, whose params are only enqueued)."""
    if POINT in trial.params:
        return trial.params[POINT]
    return trial.system_attrs.get("fixed_params", {}).get(POINT)


def grid_states(study: optuna.Study, keys: Sequence[str]) -> dict[str, str]:
    """Per point: done | running | waiting | failed | left (never tried)."""
    trials: dict[str, list[TrialState]] = {key: [] for key in keys}
    for trial in study.get_trials(deepcopy=False):
        key = trial_key(trial)
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
    if sum(s in FINISHED_SEARCH for s in states) >= n_trials:
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


def status(suite: str | Path | Suite, storage: str | None = None, results_dir: Path | None = None) -> StudyStatus:
    """How many points of the suite are done / running / failed / left (a study not created yet: all left).
    `results_dir`: where the suite's journal is when no `storage` is given (`<results_dir>/<suite>/`).
    Read only: a journal file or SQLite storage that is not there is not created."""
    suite = load_suite(suite)
    storage = storage_or_default(storage, suite.name, results_dir)
    if not store_exists(storage):
        return _count(suite, ["left"] * len(suite.keys))
    return status_in(suite, open_storage(storage))


def status_in(suite: Suite, storage_obj: optuna.storages.BaseStorage) -> StudyStatus:
    """`status` on an opened storage (workers poll it without reopening)."""
    if not suite.search:
        study = load_study(suite.study_name(), storage_obj)
        states = list(grid_states(study, suite.keys).values()) if study else ["left"] * len(suite.keys)
        return _count(suite, states)
    states = []
    for key in suite.keys:
        study = load_study(suite.study_name(key), storage_obj)
        states.append(_search_state(study, suite.n_trials) if study else "left")
    return _count(suite, states)
