"""The objective and dead-trial recovery: a point finished elsewhere steps aside; the trial of a killed
worker is failed and its point trained again."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import Recorder, tiny_suite

from benchmark import study
from benchmark.study.objective import Objective


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[study.Suite, str, str]:
    return tiny_suite(tmp_path)


def test_trial_of_a_dead_worker_is_failed_and_retried(tiny) -> None:
    suite, storage, tracking = tiny
    study.create(suite, storage, tracking)
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    orphan = journal.ask()  # a worker that claimed a point and was killed (SIGKILL) before finishing
    orphan.suggest_categorical("point", suite.keys)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    assert study.status(suite, storage).running == 1

    runner = Recorder()
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=runner).finished
    assert sorted(runner.trained) == sorted(suite.keys)
    states = {t.number: t.state for t in journal.get_trials()}
    assert states[orphan.number] == TrialState.FAIL


def test_a_point_finished_elsewhere_steps_aside(tiny) -> None:
    suite, storage, tracking = tiny
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    journal.enqueue_trial({"point": suite.keys[0]})  # a second worker that got the same point
    runner = Recorder()
    objective = Objective(suite, tracking, Path("unused"), runner)
    journal.optimize(objective, n_trials=1)
    last = journal.get_trials()[-1]
    assert last.state == TrialState.PRUNED and "duplicate_of" in last.user_attrs
    assert runner.trained == []
