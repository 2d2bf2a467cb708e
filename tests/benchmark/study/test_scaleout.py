"""Scale-out and faults with real parts on loopback: PostgreSQL (Optuna storage), an `mlflow server`,
`diffres-bench worker` processes training the embedded task; a worker killed with SIGKILL mid-trial; a
study killed mid-way and run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from benchmark import study
from benchmark.study import load_suite

SUITE = """
name: {name}
base: {{task: toy-transients, epochs: 3, batch_size: 16, max_train_clips: 32, max_eval_clips: 32,
        lr_decay_from: 1, lr_decay_every: 1}}
grids:
  - frontend: [spec]
    reduction_rate: [0.0]
    seed: [0, 1]
  - frontend: [avgpool, changehop]
    reduction_rate: [0.5]
    seed: [0, 1]
"""


def _suite(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(name=name))
    return path


def _finished_hashes(tracking_uri: str, experiment: str) -> Counter:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
    return Counter(r.data.tags["config_hash"] for r in runs)


def _running_runs(tracking_uri: str, experiment: str) -> list[str]:
    """Runs left RUNNING: a killed worker's run, unless its recovery marked it KILLED."""
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    return [r.info.run_id for r in runs]


def _wait(predicate, timeout_s: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_workers_share_a_postgres_study_and_survive_a_sigkill(tmp_path, postgres, mlflow_server) -> None:
    path = _suite(tmp_path, "scaleout")
    suite = load_suite(path)
    storage = postgres.create_database("scaleout")
    tracking = mlflow_server.url
    study.create(suite, storage, tracking)  # once, before the workers (no creation race)

    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [study.spawn_worker(path, storage, tracking, checkpoint_dir=tmp_path / "ckpt", heartbeat_interval=1,
                                  grace_period=4, poll_seconds=1, threads=1, log_file=log) for log in logs]
    by_pid = {w.pid: w for w in workers}
    optuna_study = optuna.load_study(study_name="scaleout", storage=study.open_storage(storage))

    def running_trial_of_a_worker():
        for trial in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("worker", {}).get("pid") in by_pid:
                return trial
        return None

    _wait(lambda: running_trial_of_a_worker() is not None, 180, "a worker to start a trial")
    victim = running_trial_of_a_worker()
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    by_pid[victim.user_attrs["worker"]["pid"]].wait()

    survivors = [w for w in workers if w.pid != victim.user_attrs["worker"]["pid"]]
    for w in survivors:
        assert w.wait(timeout=300) == 0, [log.read_text()[-3000:] for log in logs]

    assert study.status(suite, storage).finished
    trials = optuna_study.get_trials()
    assert next(t for t in trials if t.number == victim.number).state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert [t.state for t in retries] == [TrialState.COMPLETE]
    # every grid point finished exactly once, none lost
    assert _finished_hashes(tracking, "scaleout") == Counter(suite.keys)
    assert _running_runs(tracking, "scaleout") == []  # the victim's run, if it had one, was marked KILLED
    done = Counter(t.params["point"] for t in trials if t.state == TrialState.COMPLETE)
    assert done == Counter(suite.keys)
    # the storage password never reaches the logs or MLflow
    assert postgres.password not in "".join(log.read_text() for log in logs)
    exp = MlflowClient(tracking).get_experiment_by_name("scaleout")
    assert postgres.password not in str(exp.tags) and "***@" in exp.tags["optuna_storage"]


def test_a_study_killed_mid_way_finishes_only_what_was_left(tmp_path) -> None:
    path = _suite(tmp_path, "faults")
    suite = load_suite(path)
    storage = str(tmp_path / "optuna.journal")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "study", "--suite", str(path), "--storage",
                             storage, "--tracking-uri", tracking, "--checkpoint-dir", str(tmp_path / "ckpt"),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: study.status(suite, storage).done >= 2, 240, "two finished points")
    proc.send_signal(signal.SIGKILL)  # its local workers die with it (PR_SET_PDEATHSIG)
    proc.wait()
    time.sleep(2.0)

    finished_before = _finished_hashes(tracking, "faults")
    assert 2 <= sum(finished_before.values()) < len(suite.keys)
    trials_before = len(optuna.load_study(study_name="faults", storage=study.open_storage(storage)).trials)

    final = study.run_study(path, storage, tracking, checkpoint_dir=tmp_path / "ckpt", progress=False, n_workers=1)
    assert final.finished
    assert _finished_hashes(tracking, "faults") == Counter(suite.keys)
    assert _running_runs(tracking, "faults") == []  # the killed workers' runs were marked KILLED
    trials = optuna.load_study(study_name="faults", storage=study.open_storage(storage)).trials
    rerun = [t for t in trials[trials_before:] if t.state == TrialState.COMPLETE]
    trained = [t for t in rerun if not t.user_attrs["reused"]]
    assert len(trained) == len(suite.keys) - sum(finished_before.values())
    assert not {t.params["point"] for t in trained} & set(finished_before)
