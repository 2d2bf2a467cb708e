"""MLflow glue: one MLflow run per config, in the schema the report reads.

Schema of a finished run (experiment = suite name; run name = `RunConfig.run_name`):
- tags: config_hash, suite, metric_name, git_commit, device, torch_version, timm_version (+ caller's tags)
- params: `RunConfig.to_params()`
- metrics: train_loss and val_metric_epoch per epoch (step = epoch), val_metric, test_metric, best_epoch,
  compute figures (`ComputeReport.metrics()`), clip counts
- artifacts: written by `benchmark.tracking.artifacts` (its docstring is the schema), uploaded by `log_artifacts`
Only FINISHED runs count: a RUNNING / FAILED / KILLED run left by an interrupted attempt is ignored by
`find_finished_run`, and the next attempt opens a new run (the report dedupes by config_hash).
The client API (`MlflowClient`, no global active run) keeps concurrent workers in threads apart.
Before a study or run starts, `check_tracking_uri` fails within seconds on a server that does not answer,
and `ensure_experiment` creates the suite's experiment once (tagged with its study).
Passwords in URIs are masked (`mask_uri`) in every param, tag and error message.

A tracking server that goes away mid-run costs no training (`benchmark.tracking.outages` has the limits):
`TrackedRun` keeps the calls it cannot make, in order, and sends them when the server answers again, so
the epochs go on; `finish` waits for the server (bounded backoff) before it marks the run FINISHED, last,
so a run is FINISHED only with everything in it. Retried calls are idempotent (same metric timestamps,
same params, tags overwritten, artefacts overwritten). The look-ups before a run (`find_finished_run`,
the experiment) wait too. MLflow's own HTTP retries (7 by default, ~4 min per call) are cut to 2 unless
`MLFLOW_HTTP_REQUEST_MAX_RETRIES` is set, so that one limit, ours, governs how long a call may wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # our own retry (outages.retry) governs

import requests  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, Run, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from benchmark.tracking.outages import (  # noqa: E402
    Backoff,
    UnreachableError,
    first_line,
    mask_uri,
    retry,
    tracking_backoff,
)

log = logging.getLogger(__name__)


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


def end_orphaned_runs(tracking_uri: str, experiment: str, config_hash: str, started_before_ms: int, *,
                      status: str = "KILLED", reason: str = "") -> list[str]:
    """Mark the RUNNING runs of `config_hash` that started before `started_before_ms` (epoch ms) as `status`:
    the runs of an attempt whose process was killed (SIGKILL leaves no chance to mark them). Runs started
    later belong to a live retry and are left alone. Best effort, no waiting: a store that does not answer
    now keeps them RUNNING (the report ignores them either way); returns the ids marked."""
    try:
        client = client_for(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = client.search_runs([found.experiment_id], filter_string=(
            f"tags.config_hash = '{config_hash}' and attributes.status = 'RUNNING'"))
        ended = []
        for run in runs:
            if run.info.start_time is not None and run.info.start_time >= started_before_ms:
                continue
            if reason:
                client.set_tag(run.info.run_id, "ended_by", mask_uri(reason))
            client.set_terminated(run.info.run_id, status)
            ended.append(run.info.run_id)
        return ended
    except Exception as err:  # noqa: BLE001 — recovery goes on without the store
        log.warning("could not mark the orphaned MLflow runs of %s %s: %s", config_hash, status,
                    mask_uri(first_line(err)))
        return []


def is_unreachable(err: BaseException) -> bool:
    """True when an MLflow call failed because the server did not answer (refused, reset, timed out, or
    "try later"), not because the request was wrong: only those are retried."""
    if isinstance(err, (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(err, MlflowException):
        message = str(err.message)
        if message.startswith("API request to ") and ("failed with exception" in message
                                                       or "failed with timeout exception" in message):
            return True  # mlflow.utils.rest_utils wraps connection errors this way
        return err.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
    return False


def _patiently(call, tracking_uri: str, backoff: Backoff | None = None):
    return retry(call, transient=is_unreachable, backoff=backoff or tracking_backoff(),
                 what=f"MLflow tracking server {mask_uri(tracking_uri)}")


def find_finished_run(tracking_uri: str, experiment: str, config_hash: str) -> Run | None:
    """The latest FINISHED run of `config_hash` in `experiment`, or None (waits for a server that is down,
    up to the tracking retry limit: before a run nothing is lost by waiting)."""
    client = client_for(tracking_uri)

    def latest() -> Run | None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.config_hash = '{config_hash}' and attributes.status = 'FINISHED'",
            max_results=1, order_by=["attributes.end_time DESC"])
        return runs[0] if runs else None

    return _patiently(latest, tracking_uri)


class TrackedRun:
    """One MLflow run being written; `finish` marks it FINISHED, `abandon` FAILED or KILLED.

    Every call is queued and sent in order. One the server does not answer stays queued with those
    after it, and the caller goes on (training does not wait on the tracking server); the next call
    sends the backlog. While the server is down a send is tried at most every `backoff.max_s`, so a
    host that does not answer (connect time-outs) does not slow every epoch. `finish` waits, with
    backoff up to `backoff.limit_s`, until everything is sent, the FINISHED mark last; past the limit
    it raises `OutageError` and the run is not FINISHED (the caller's checkpoint lets a retry finish it).
    The run itself is created by the first call that gets through (`run_id` is None until then).
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str, params: Mapping[str, object],
                 tags: Mapping[str, object], backoff: Backoff | None = None):
        self.tracking_uri = tracking_uri
        self.client = client_for(tracking_uri)
        self.backoff = backoff or tracking_backoff()
        self.run_id: str | None = None
        self._pending: deque[Callable[[], None]] = deque()
        self._down_since: float | None = None
        self._next_try = 0.0
        run_tags = {k: str(v) for k, v in tags.items()}
        masked = [Param(k, mask_uri(str(v))) for k, v in params.items()]

        def create() -> None:
            experiment_id = get_or_create_experiment(tracking_uri, experiment)
            self.run_id = self.client.create_run(experiment_id, tags=run_tags, run_name=run_name).info.run_id

        self._queue(create)
        self._queue(lambda: self.client.log_batch(self.run_id, params=masked))

    @property
    def pending(self) -> int:
        """Calls not yet sent (0: the server has everything logged so far)."""
        return len(self._pending)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)  # fixed here, so a resent batch is the same rows, not new ones
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self._queue(lambda: self.client.log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: Mapping[str, object]) -> None:
        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._queue(lambda: self.client.log_batch(self.run_id, tags=batch))

    def log_artifacts(self, files: Mapping[str, bytes]) -> None:
        """Upload each `name -> bytes` at the artifact root (through a temporary folder)."""
        files = dict(files)

        def upload() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in files.items():
                    path = Path(tmp) / name
                    path.write_bytes(data)
                    self.client.log_artifact(self.run_id, str(path))

        self._queue(upload)

    def finish(self, status: str = "FINISHED") -> None:
        """Send everything, then the end mark; waits for a server that is down (`OutageError` past the limit)."""
        self._pending.append(lambda: self.client.set_terminated(self.run_id, status))
        _patiently(self._send, self.tracking_uri, self.backoff)
        self._down_since = None

    def abandon(self, status: str = "FAILED") -> None:
        """Best effort, no waiting: mark the run FAILED / KILLED if the server takes it now."""
        self._pending.append(lambda: self.client.set_terminated(self.run_id, status))
        with contextlib.suppress(Exception):
            self._send()

    def flush(self) -> bool:
        """Send what the server takes now, without waiting; True when nothing is left to send."""
        if self._down_since is not None and time.monotonic() < self._next_try:
            return False
        try:
            self._send()
        except Exception as err:
            if not is_unreachable(err):
                raise
            self._next_try = time.monotonic() + self.backoff.max_s
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("MLflow tracking server %s does not answer (%s); %d call(s) kept, training goes on",
                            mask_uri(self.tracking_uri), first_line(err), len(self._pending))
            return False
        if self._down_since is not None:
            log.warning("MLflow tracking server %s answers again after %.0f s; kept calls sent",
                        mask_uri(self.tracking_uri), time.monotonic() - self._down_since)
            self._down_since = None
        return True

    def _queue(self, call: Callable[[], None]) -> None:
        self._pending.append(call)
        self.flush()

    def _send(self) -> None:
        while self._pending:
            self._pending[0]()
            self._pending.popleft()


def start_run(tracking_uri: str, experiment: str, *, run_name: str, params: Mapping[str, object],
              tags: Mapping[str, object]) -> TrackedRun:
    """A new RUNNING run with its params and tags (values of params are masked if they hold URIs); while
    the server is down, the run is created as soon as it answers again."""
    return TrackedRun(tracking_uri, experiment, run_name=run_name, params=params, tags=tags)
