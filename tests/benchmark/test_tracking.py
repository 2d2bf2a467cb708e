"""MLflow glue on a real SQLite store: experiments, finished-run lookup, masking, artifacts."""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from benchmark import tracking


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
    assert tracking.mask_uri(uri) == masked


def test_telemetry_is_off():
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_experiment_is_created_once_by_concurrent_workers(store):
    tracking_uri = store[0]
    tracking.get_or_create_experiment(tracking_uri, "warmup")  # the store's tables, created once
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: tracking.get_or_create_experiment(tracking_uri, "quick"), range(4)))
    assert len(set(ids)) == 1
    assert MlflowClient(tracking_uri).get_experiment_by_name("quick").experiment_id == ids[0]


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


def test_artifacts_are_uploaded(store, tmp_path):
    tracking_uri = store[0]
    run = tracking.start_run(tracking_uri, "quick", run_name="x", params={}, tags={})
    files = {"per_class.csv": tracking.per_class_csv(["a", "b"], [0.5, float("nan")], [4, 0])}
    files.update(tracking.diffres_examples(np.random.rand(2, 40, 8), np.random.rand(2, 40), np.random.rand(2, 20, 8),
                                           np.random.rand(2, 20, 8), title="t"))
    run.log_artifacts(files)
    run.finish()
    client = MlflowClient(tracking_uri)
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert names == {"per_class.csv", "diffres_examples.npz", "diffres_examples.png"}
    local = Path(client.download_artifacts(run.run_id, "diffres_examples.npz", str(tmp_path)))
    with np.load(local) as npz:
        assert {k: npz[k].shape for k in npz.files} == {"mel": (2, 40, 8), "score": (2, 40), "merged": (2, 20, 8),
                                                        "resolution_enc": (2, 20, 8)}
    rows = list(csv.DictReader(io.StringIO(files["per_class.csv"].decode())))
    assert rows == [{"class": "a", "metric": "0.500000", "support": "4"}, {"class": "b", "metric": "", "support": "0"}]
    assert files["diffres_examples.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_git_commit_names_the_checkout():
    commit = tracking.git_commit()
    assert commit == "unknown" or len(commit.split("-")[0]) == 40
