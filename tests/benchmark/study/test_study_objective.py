"""The objective and dead-trial recovery: a point finished elsewhere steps aside; the trial of a killed
worker is failed and its point trained again; a trial failed by an outage is re-queued, a bounded number
of times."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import Recorder, tiny_suite, write_suite

import benchmark.study.objective as objective_module
from benchmark import study
from benchmark.study.objective import MAX_OUTAGE_RETRIES, Objective
from benchmark.tracking.outages import OutageError

ONE_POINT = """
name: one
base: {task: toy-transients, epochs: 1, max_train_clips: 16, max_eval_clips: 16}
grids:
  - {frontend: [spec], seed: [0]}
"""


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


def test_the_mlflow_run_of_a_killed_worker_is_marked_killed_when_its_trial_is_recovered(tiny) -> None:
    """SIGKILL gives a run no chance to end itself: the recovery marks it, and only it, KILLED."""
    from mlflow.tracking import MlflowClient

    suite, storage, tracking = tiny
    study.create(suite, storage, tracking)
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    orphan = journal.ask()
    key = orphan.suggest_categorical("point", suite.keys)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    orphan.set_user_attr("config_hash", key)
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    killed = client.create_run(experiment, tags={"config_hash": key}).info.run_id  # RUNNING, as SIGKILL left it
    other = next(k for k in suite.keys if k != key)
    live = client.create_run(experiment, tags={"config_hash": other}).info.run_id  # someone else's, alive

    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
    assert client.get_run(killed).info.status == "KILLED"
    assert "worker pid" in client.get_run(killed).data.tags["ended_by"]
    assert client.get_run(live).info.status == "RUNNING"


def test_a_trial_whose_process_died_before_it_recorded_its_worker_is_failed_after_the_grace(tiny, monkeypatch):
    """Killed between optuna's ask and the objective's first line: the trial has its point but no worker.
    Left alone while it is young (its owner may be about to claim it), failed and re-queued once it is not,
    so the study finishes instead of waiting for it forever."""
    suite, storage, tracking = tiny
    study.create(suite, storage, tracking)
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    orphan = journal.ask()
    orphan.suggest_categorical("point", suite.keys)
    objective_module.recover(journal)
    assert journal.get_trials()[orphan.number].state == TrialState.RUNNING  # young: its owner's to claim

    monkeypatch.setattr(objective_module, "UNCLAIMED_GRACE_S", 0.0)
    runner = Recorder()
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=runner).finished
    assert sorted(runner.trained) == sorted(suite.keys)
    assert {t.number: t.state for t in journal.get_trials()}[orphan.number] == TrialState.FAIL


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


class _DownOnce(Recorder):
    """Fails its first call the way `train.run` does when the tracking server stays down past its limit."""

    down = True

    def __call__(self, cfg, **kwargs):
        if self.down:
            self.down = False
            raise OutageError("MLflow tracking server http://127.0.0.1:1 did not answer for 3 s")
        return super().__call__(cfg, **kwargs)


def test_a_trial_failed_by_an_outage_is_requeued_and_its_point_finished(tiny) -> None:
    suite, storage, tracking = tiny
    runner = _DownOnce()
    final = study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=runner)
    assert final.finished  # within the same worker, not only on the next start
    assert sorted(runner.trained) == sorted(suite.keys)
    trials = optuna.load_study(study_name="tiny", storage=study.open_storage(storage)).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "did not answer" in failed[0].user_attrs["outage"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert [t.state for t in retry] == [TrialState.COMPLETE]
    assert retry[0].params == failed[0].params


def test_outage_retries_are_bounded(tmp_path) -> None:
    suite = study.load_suite(write_suite(tmp_path, ONE_POINT, name="one"))
    storage, tracking = str(tmp_path / "optuna.journal"), f"sqlite:///{tmp_path / 'mlflow.db'}"

    def always_down(cfg, **kwargs):
        raise OutageError("MLflow tracking server http://127.0.0.1:1 did not answer for 3 s")

    final = study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=always_down)
    assert final.failed == len(suite.keys) and not final.finished
    trials = optuna.load_study(study_name="one", storage=study.open_storage(storage)).get_trials()
    assert len(trials) == 1 + MAX_OUTAGE_RETRIES
