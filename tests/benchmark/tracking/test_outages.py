"""Outages of the shared services with real parts on loopback: an `mlflow server` stopped mid-run and
started again (the run trains on, then lands in MLflow once, complete), one that stays down past the
limit (the trial fails, the checkpoint is kept, the retry finishes from it), a PostgreSQL restart
mid-study (workers reconnect, every point finishes once, no live trial is failed as stale), and a
report read while a run is being written (finished runs only, no crash)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from benchmark import study
from benchmark.report.runs import load_runs
from benchmark.study import load_suite
from benchmark.tracking import artifacts
from benchmark.tracking.outages import (
    BACKOFF_MAX_ENV,
    TRACKING_RETRY_ENV,
    Backoff,
    OutageError,
    retry,
    tracking_backoff,
)
from benchmark.training.checkpoint import checkpoint_path, load_checkpoint
from benchmark.training.train import run

EPOCHS = 4
DOWN_S = 5.0  # plus the ~20 s the server takes to start again here: an outage of ~25-30 s

SUITE = """
name: {name}
base: {{task: toy-transients, epochs: 5, batch_size: 16, max_train_clips: 32, max_eval_clips: 32,
        backbone: audiocnn_tiny}}
grids:
  - frontend: [spec]
    reduction_rate: [0.0]
    seed: [0, 1, 2, 3, 4, 5]
"""


@pytest.fixture(autouse=True)
def _short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry every second at most (not every 10 s): the tests wait less after a service is back."""
    monkeypatch.setenv(BACKOFF_MAX_ENV, "1")


def test_retry_waits_out_transient_errors_and_gives_up_at_the_limit() -> None:
    calls = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionRefusedError("refused")
        return "ok"

    fast = Backoff(limit_s=5, max_s=0.1, first_s=0.01, limit_env="X_RETRY_S")
    assert retry(flaky, transient=lambda e: isinstance(e, ConnectionError), backoff=fast, what="svc") == "ok"
    assert len(calls) == 3
    with pytest.raises(ValueError):  # not transient: raised at once, never retried
        retry(lambda: int("x"), transient=lambda e: isinstance(e, ConnectionError), backoff=fast, what="svc")
    def refused() -> None:
        raise ConnectionRefusedError("refused")

    start = time.monotonic()
    with pytest.raises(OutageError, match=r"svc did not answer for \d+ s \(\d+ tries; limit 0.3 s, set by X_RETRY_S"):
        retry(refused, transient=lambda e: isinstance(e, ConnectionError), what="svc",
              backoff=Backoff(limit_s=0.3, max_s=0.05, first_s=0.01, limit_env="X_RETRY_S"))
    assert 0.3 <= time.monotonic() - start < 2


def test_the_limits_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(TRACKING_RETRY_ENV, "7.5")
    assert tracking_backoff().limit_s == 7.5 and tracking_backoff().max_s == 1
    monkeypatch.setenv(TRACKING_RETRY_ENV, "soon")
    with pytest.raises(ValueError, match=f"{TRACKING_RETRY_ENV}='soon': expected a number >= 0 \\(seconds\\)"):
        tracking_backoff()


def _runs(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp is not None else []


def _assert_complete(tracking_uri: str, experiment: str, cfg) -> None:
    """Exactly one FINISHED run of `cfg`, with every epoch's metrics, its params, tags and artefacts."""
    finished = [r for r in _runs(tracking_uri, experiment) if r.info.status == "FINISHED"]
    assert [r.data.tags["config_hash"] for r in finished] == [cfg.config_hash]
    done = finished[0]
    client = MlflowClient(tracking_uri)
    assert [m.step for m in client.get_metric_history(done.info.run_id, "train_loss")] == list(range(EPOCHS))
    assert {"val_metric", "test_metric", "epochs_run", "flops_total"} <= set(done.data.metrics)
    assert done.data.params == {k: str(v) for k, v in cfg.to_params().items()}
    assert done.data.tags["suite"] == experiment
    names = {a.path for a in client.list_artifacts(done.info.run_id)}
    assert {artifacts.CONFIG_JSON, artifacts.PER_CLASS_CSV} <= names


def test_a_tracking_server_restart_mid_run_loses_nothing(tmp_path, mlflow_server, tiny_config) -> None:
    cfg = tiny_config(epochs=EPOCHS, backbone="audiocnn_tiny", seed=11)
    ended: dict[int, float] = {}
    back: list[float] = []
    restart = threading.Thread(target=lambda: (time.sleep(DOWN_S), mlflow_server.start(),
                                               back.append(time.monotonic())))

    def on_epoch_end(epoch: int, metrics: dict) -> None:
        ended[epoch] = time.monotonic()
        if epoch == 0:
            mlflow_server.halt()
            restart.start()

    result = run(cfg, tracking_uri=mlflow_server.url, experiment="outage", checkpoint_dir=tmp_path / "ckpt",
                 progress=False, on_epoch_end=on_epoch_end)
    restart.join()
    assert back and not result.reused
    # the epochs after the server went down were trained while it was down, not after it came back
    assert sorted(ended) == list(range(EPOCHS)) and ended[EPOCHS - 1] < back[0]
    _assert_complete(mlflow_server.url, "outage", cfg)
    assert len(_runs(mlflow_server.url, "outage")) == 1  # no second run opened by a retried call


def test_a_tracking_server_down_past_the_limit_fails_the_run_and_the_retry_resumes(
        tmp_path, mlflow_server, monkeypatch, tiny_config) -> None:
    cfg = tiny_config(epochs=EPOCHS, backbone="audiocnn_tiny", seed=12)
    monkeypatch.setenv(TRACKING_RETRY_ENV, "2")

    def halt_at_the_end(epoch: int, metrics: dict) -> None:
        if epoch == EPOCHS - 1:
            mlflow_server.halt()

    ckpt = tmp_path / "ckpt"
    try:
        with pytest.raises(OutageError, match=rf"did not answer .* {TRACKING_RETRY_ENV}"):
            run(cfg, tracking_uri=mlflow_server.url, experiment="stays-down", checkpoint_dir=ckpt,
                progress=False, on_epoch_end=halt_at_the_end)
        state = load_checkpoint(checkpoint_path(ckpt, cfg), cfg)
        assert state is not None and state["epoch"] == EPOCHS  # the finished training is kept
    finally:
        mlflow_server.start()

    monkeypatch.delenv(TRACKING_RETRY_ENV)
    trained_again: list[int] = []
    result = run(cfg, tracking_uri=mlflow_server.url, experiment="stays-down", checkpoint_dir=ckpt,
                 progress=False, on_epoch_end=lambda epoch, metrics: trained_again.append(epoch))
    assert trained_again == [] and not result.reused  # finished from the checkpoint, nothing retrained
    _assert_complete(mlflow_server.url, "stays-down", cfg)
    finished = next(r for r in _runs(mlflow_server.url, "stays-down") if r.info.status == "FINISHED")
    assert finished.data.tags["resumed_from_epoch"] == str(EPOCHS)


def test_a_report_while_a_run_is_written_reads_finished_runs_only(tmp_path, mlflow_server, tiny_config) -> None:
    url, experiment = mlflow_server.url, "snapshot"
    first = run(tiny_config(epochs=2, backbone="audiocnn_tiny", seed=21), tracking_uri=url,
                experiment=experiment, checkpoint_dir=tmp_path / "ckpt", progress=False)
    writing = threading.Thread(target=run, args=(tiny_config(epochs=6, backbone="audiocnn_tiny", seed=22),),
                               kwargs=dict(tracking_uri=url, experiment=experiment, checkpoint_dir=tmp_path / "ckpt",
                                           progress=False, on_epoch_end=lambda epoch, metrics: time.sleep(0.3)))
    writing.start()
    snapshots = []
    while writing.is_alive():
        snapshots.append(load_runs(experiment, url))
    writing.join()
    assert snapshots
    client = MlflowClient(url)
    for runs in snapshots:
        assert first.run_id in set(runs.table["run_id"])
        assert all(client.get_run(r).info.status == "FINISHED" for r in runs.table["run_id"])
    assert any(runs.n_not_finished == 1 and len(runs.table) == 1 for runs in snapshots)  # caught mid-write
    assert len(load_runs(experiment, url).table) == 2


def test_a_database_restart_mid_study_loses_nothing(tmp_path, postgres) -> None:
    path = tmp_path / "dbrestart.yaml"
    path.write_text(SUITE.format(name="dbrestart"))
    suite = load_suite(path)
    storage = postgres.create_database("dbrestart")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study.create(suite, storage, tracking)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [study.spawn_worker(path, storage, tracking, checkpoint_dir=tmp_path / "ckpt", heartbeat_interval=1,
                                  grace_period=15, poll_seconds=1, threads=1, log_file=log) for log in logs]
    try:
        optuna_study = optuna.load_study(study_name="dbrestart", storage=study.open_storage(storage))
        deadline = time.monotonic() + 180
        # both workers past their start (a worker that cannot open the storage at start fails fast, by
        # design) and a trial running: the outage meets workers mid-study
        while not (all(log.exists() and " joins " in log.read_text() for log in logs)
                   and optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
            assert time.monotonic() < deadline, "the workers did not start a trial"
            time.sleep(0.2)
        postgres.halt()  # mid-trial: heartbeats and the end of the trial meet a database that is gone
        time.sleep(3.0)
        postgres.start()
        for worker, log in zip(workers, logs, strict=True):
            assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    text = "".join(log.read_text() for log in logs)
    assert "does not answer" in text and "answers again" in text  # the outage did reach the workers
    assert study.status(suite, storage).finished
    trials = optuna.load_study(study_name="dbrestart", storage=study.open_storage(storage)).get_trials()
    assert not [t.number for t in trials if t.state == TrialState.FAIL]  # no live trial failed as stale
    assert Counter(t.params["point"] for t in trials if t.state == TrialState.COMPLETE) == Counter(suite.keys)
    finished = [r for r in _runs(tracking, "dbrestart") if r.info.status == "FINISHED"]
    assert Counter(r.data.tags["config_hash"] for r in finished) == Counter(suite.keys)
    assert Path(tmp_path / "ckpt").is_dir()
