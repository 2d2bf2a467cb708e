"""MLflow glue: one MLflow run per config, in the schema the report reads.

Schema of a finished run (experiment = suite name; run name = `RunConfig.run_name`):
- tags: config_hash, suite, metric_name, git_commit, device, torch_version, timm_version (+ caller's tags)
- params: `RunConfig.to_params()`
- metrics: train_loss and val_metric_epoch per epoch (step = epoch), val_metric, test_metric, best_epoch,
  compute figures (`ComputeReport.metrics()`), clip counts
- artifacts: written by `benchmark.artifacts` (its docstring is the schema), uploaded by `log_artifacts`
Only FINISHED runs count: a RUNNING / FAILED / KILLED run left by an interrupted attempt is ignored by
`find_finished_run`, and the next attempt opens a new run (the report dedupes by config_hash).
The client API (`MlflowClient`, no global active run) keeps concurrent workers in threads apart.
Before a study or run starts, `check_tracking_uri` fails within seconds on a server that does not answer,
and `ensure_experiment` creates the suite's experiment once (tagged with its study).
Passwords in URIs are masked (`mask_uri`) in every param, tag and error message.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, Run, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from benchmark.paths import REPO_ROOT  # noqa: E402

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]*)@")


def mask_uri(uri: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db` (for logs and params)."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", str(uri))


class UnreachableError(ConnectionError):
    """An Optuna storage or MLflow tracking server does not answer."""


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def check_tracking_uri(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (a few seconds) when an MLflow server does not answer; make a SQLite store's directory."""
    if tracking_uri.startswith(("http://", "https://")):
        url = tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http only)
                if response.status != 200:
                    raise OSError(f"HTTP {response.status}")
        except (OSError, urllib.error.URLError) as err:
            raise UnreachableError(f"cannot reach the MLflow tracking server {mask_uri(tracking_uri)}: "
                                   f"{mask_uri(str(err))}; start it with `mlflow server --host 127.0.0.1 "
                                   f"--port PORT` or pass --tracking-uri") from None
    elif tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store go next to the database file (not into the current directory)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path in ("/", "/:memory:"):
        return None
    db_path = Path(unquote(parsed.path[1:]))  # sqlite:///rel.db and sqlite:////abs/path.db
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)
    return (db_path.resolve().parent / "mlartifacts" / safe).as_uri()


def get_or_create_experiment(tracking_uri: str, experiment: str) -> str:
    """The experiment id; created once, tolerating other workers creating it at the same moment."""
    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ValueError(f"MLflow experiment {experiment!r} at {mask_uri(tracking_uri)} is deleted; "
                             f"restore it or choose another suite name")
        return found.experiment_id
    try:
        return client.create_experiment(experiment, default_artifact_location(tracking_uri, experiment))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS" and "already exists" not in str(err).lower() \
                and "unique constraint" not in str(err).lower():
            raise
        for _ in range(20):  # the other writer's transaction may not be visible yet
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                return found.experiment_id
            time.sleep(0.1)
        raise


def ensure_experiment(tracking_uri: str, name: str, tags: Mapping[str, str] | None = None) -> str:
    """Create the MLflow experiment once, before workers start (tagged with the study); returns its id."""
    experiment_id = get_or_create_experiment(tracking_uri, name)
    client = client_for(tracking_uri)
    for key, value in (tags or {}).items():
        client.set_experiment_tag(experiment_id, key, mask_uri(str(value)))
    return experiment_id


def find_finished_run(tracking_uri: str, experiment: str, config_hash: str) -> Run | None:
    """The latest FINISHED run of `config_hash` in `experiment`, or None."""
    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.config_hash = '{config_hash}' and attributes.status = 'FINISHED'",
        max_results=1, order_by=["attributes.end_time DESC"])
    return runs[0] if runs else None


def git_commit() -> str:
    """HEAD of the project checkout, with "-dirty" when tracked files differ; "unknown" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=REPO_ROOT, capture_output=True,
                               timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


class TrackedRun:
    """One MLflow run being written; `finish` marks it FINISHED, FAILED or KILLED."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.client = client_for(tracking_uri)
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, files: Mapping[str, bytes]) -> None:
        """Write each `name -> bytes` to a temporary folder and upload it at the artifact root."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                path = Path(tmp) / name
                path.write_bytes(data)
                self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def start_run(tracking_uri: str, experiment: str, *, run_name: str, params: Mapping[str, object],
              tags: Mapping[str, object]) -> TrackedRun:
    """A new RUNNING run with its params and tags (values of params are masked if they hold URIs)."""
    experiment_id = get_or_create_experiment(tracking_uri, experiment)
    client = client_for(tracking_uri)
    run = client.create_run(experiment_id, tags={k: str(v) for k, v in tags.items()}, run_name=run_name)
    client.log_batch(run.info.run_id, params=[Param(k, mask_uri(str(v))) for k, v in params.items()])
    return TrackedRun(tracking_uri, run.info.run_id)

