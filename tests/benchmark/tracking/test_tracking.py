"""MLflow glue on a real SQLite store: experiments, finished-run lookup, masking (artefacts: test_artifacts)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow import MlflowClient

from benchmark.tracking import store as tracking
from benchmark.tracking.outages import UnreachableError, mask_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    """One SQLite store for the module (creating its tables takes seconds); tests use their own experiments."""
    root = tmp_path_factory.mktemp("store")
    return f"sqlite:///{root / 'mlflow.db'}", root


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgresql://bench:s3cr3t@db.example:5432/optuna", "postgresql://bench:***@db.example:5432/optuna"),
        ("postgresql+psycopg2://u:p%40ss@127.0.0.1/x", "postgresql+psycopg2://u:***@127.0.0.1/x"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ],
)
def test_passwords_in_uris_are_masked(uri, masked):
    assert mask_uri(uri) == masked


def test_passwords_in_messages_are_masked_and_paths_kept():
    assert mask_uri("error at http://u:p@x/ y") == "error at http://u:***@x/ y"
    assert mask_uri("sqlite:///results/x.db") == "sqlite:///results/x.db"
    assert mask_uri("results/quick/optuna.journal") == "results/quick/optuna.journal"


def test_unreachable_tracking_server_fails_fast():
    from benchmark.benches.services import free_port

    with pytest.raises(UnreachableError, match="MLflow tracking server") as err:
        tracking.check_tracking_uri(f"http://user:pw@127.0.0.1:{free_port()}", timeout_s=2)
    assert "user:***@" in str(err.value) and ":pw@" not in str(err.value)


def test_a_sqlite_store_gets_its_folder_but_no_database(tmp_path):
    tracking.check_tracking_uri(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "mlflow.db").exists()


def test_telemetry_is_off():
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_experiment_is_created_once_by_concurrent_workers(store):
    tracking_uri = store[0]
    tracking.get_or_create_experiment(tracking_uri, "warmup")  # the store's tables, created once
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: tracking.get_or_create_experiment(tracking_uri, "quick"), range(4)))
    assert len(set(ids)) == 1
    assert MlflowClient(tracking_uri).get_experiment_by_name("quick").experiment_id == ids[0]


def test_experiment_is_created_once_with_a_masked_storage_tag(store):
    tracking_uri = store[0]
    secret = "postgresql://bench:hunter2@127.0.0.1:1/optuna"
    first = tracking.ensure_experiment(tracking_uri, "tiny", tags={"optuna_storage": mask_uri(secret)})
    assert tracking.ensure_experiment(tracking_uri, "tiny") == first
    tags = MlflowClient(tracking_uri).get_experiment(first).tags
    assert "hunter2" not in str(tags) and tags["optuna_storage"].startswith("postgresql://bench:***@")
    tracking.ensure_experiment(tracking_uri, "tiny", tags={"optuna_storage": secret})  # masked here as well
    assert "hunter2" not in str(MlflowClient(tracking_uri).get_experiment(first).tags)


def test_artifacts_of_a_sqlite_store_live_next_to_the_database(store):
    tracking_uri, root = store
    exp_id = tracking.get_or_create_experiment(tracking_uri, "paper/v1")
    location = MlflowClient(tracking_uri).get_experiment(exp_id).artifact_location
    assert location == (root / "mlartifacts" / "paper_v1").as_uri()


def test_only_finished_runs_are_found(store):
    tracking_uri = store[0]
    assert tracking.find_finished_run(tracking_uri, "quick", "abc123abc123") is None  # no experiment yet
    params, tags = {"lr": 0.1}, {"config_hash": "abc123abc123"}
    for status in ("FAILED", "KILLED"):
        tracking.start_run(tracking_uri, "quick", run_name="x", params=params, tags=tags).finish(status)
    tracking.start_run(tracking_uri, "quick", run_name="x", params=params, tags=tags)  # left RUNNING
    assert tracking.find_finished_run(tracking_uri, "quick", "abc123abc123") is None
    done = tracking.start_run(tracking_uri, "quick", run_name="x", params=params, tags=tags)
    done.log_metrics({"val_metric": 0.5})
    done.finish()
    found = tracking.find_finished_run(tracking_uri, "quick", "abc123abc123")
    assert found.info.run_id == done.run_id and found.data.metrics["val_metric"] == 0.5
    assert tracking.find_finished_run(tracking_uri, "quick", "ffffffffffff") is None
    assert tracking.find_finished_run(tracking_uri, "other-suite", "abc123abc123") is None


def test_uri_params_are_masked_in_mlflow(store):
    tracking_uri = store[0]
    run = tracking.start_run(tracking_uri, "quick", run_name="x",
                             params={"storage": "postgresql://u:hunter2@h/db"}, tags={})
    assert MlflowClient(tracking_uri).get_run(run.run_id).data.params["storage"] == "postgresql://u:***@h/db"
