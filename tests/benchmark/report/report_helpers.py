"""A tiny real study for the report tests: runs logged by the real MLflow client into SQLite."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmark import report
from benchmark.paths import REPO_ROOT
from benchmark.tracking import artifacts
from benchmark.tracking.engine import dependency_versions

SUITE = "tiny"
# The runs of the tiny studies are tagged with the checkout's own HEAD: clean-current, so the report decides on them.
HEAD = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                      check=True).stdout.strip()
RATES = (0.25, 0.5, 0.75)
BASE = {"spec": 0.80, "diffres": 0.83, "changehop": 0.70, "avgpool": 0.74, "pool3ch": 0.76, "leaf": 0.6}
SEED_EFFECT = {0: 0.0, 1: 0.01, 2: -0.01}


def _config_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def expected_accuracy(frontend: str, hop_ms: float, rate: float, seed: int) -> float:
    wiggle = 0.002 * ((seed * 7 + int(rate * 4) * 3 + int(hop_ms)) % 3)
    drop = 0.0 if frontend == "diffres" else 0.08 * rate
    return BASE[frontend] - drop + SEED_EFFECT[seed] + wiggle + (0.01 if hop_ms == 5.0 else 0.0)


def grid():
    rows = []
    for task, hops, frontends in (("toy-a", (10.0, 5.0), ("changehop", "avgpool", "diffres", "pool3ch")),
                                  ("toy-b", (10.0,), ("avgpool", "diffres"))):
        for hop in hops:
            for seed in (0, 1, 2):
                rows.append((task, "spec", hop, 0.0, seed))
                rows += [(task, fe, hop, rate, seed) for fe in frontends for rate in RATES]
    return rows


class Study:
    def __init__(self, root: Path, suite: str = SUITE, uri: str | None = None):
        self.uri = uri or f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment(suite, artifact_location=(root / suite).as_uri())
        self.root = root
        self.suite = suite

    def log(self, task, frontend, hop_ms, rate, seed, status="FINISHED", accuracy=None, examples=False,
            extra_params=None, npz_arrays=None, extra_metrics=None, git_commit=None, extra_tags=None):
        params = {"task": task, "fold": None, "backbone": "mobilenetv3_small_050", "frontend": frontend,
                  "hop_ms": hop_ms, "reduction_rate": rate, "n_mels": 64, "seed": seed, "lr": 0.001,
                  "epochs": 2, "guide_loss_weight": 1.0, **(extra_params or {})}
        t_in = int(300 * 10 / hop_ms)
        t_out = max(1, int(t_in * (1 - rate)))
        run = self.client.create_run(self.exp, run_name=f"{task}/{frontend}/h{hop_ms}/d{rate}/s{seed}")
        rid = run.info.run_id
        acc = expected_accuracy(frontend, hop_ms, rate, seed) if accuracy is None else accuracy
        ts = int(time.time() * 1000)
        fe_flops = 0.0 if frontend in ("spec", "changehop") else (2e4 if frontend == "diffres" else 1e3) * t_in
        metrics = {"val_metric": acc + 0.01, "test_metric": acc, "flops_frontend": fe_flops,
                   "flops_backbone": 1e5 * t_out, "flops_total": fe_flops + 1e5 * t_out,
                   "params_frontend": 82000.0 if frontend == "diffres" else 0.0, "params_backbone": 5e5,
                   "params_total": 5e5 + (82000.0 if frontend == "diffres" else 0.0), "latency_ms": 3.5,
                   "latency_pipeline_ms": 4.0 + (1.0 if frontend == "diffres" else 0.0),
                   "t_in": float(t_in), "t_out": float(t_out), **(extra_metrics or {})}
        tags = {"config_hash": _config_hash(params), "suite": self.suite, "metric_name": "accuracy",
                "git_commit": HEAD if git_commit is None else git_commit,
                "device": "cpu", **dependency_versions(), **(extra_tags or {})}
        self.client.log_batch(rid, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()]
                              + [Metric("train_loss", 1.0 / (e + 1), ts, e) for e in range(2)],
                              params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        if examples:
            rng = np.random.default_rng(seed)
            npz_arrays = dict(mel=rng.normal(size=(3, t_in, 64)), score=rng.uniform(size=(3, t_in)),
                              merged=rng.normal(size=(3, t_out, 64)),
                              resolution_enc=np.sin(np.arange(t_out * 64).reshape(1, t_out, 64) / 9.0).repeat(3, 0))
        if npz_arrays is not None:
            (self.root / rid).mkdir()
            path = self.root / rid / artifacts.EXAMPLES_NPZ
            np.savez(path, **npz_arrays)
            self.client.log_artifact(rid, str(path))
        self.client.set_terminated(rid, status)
        return rid


def build_study(root: Path, out: Path):
    """The grid of ``grid()`` with a duplicate and a FAILED run, and its report under ``out``."""
    s = Study(root)
    for task, fe, hop, rate, seed in grid():
        examples = fe == "diffres" and hop == 10.0 and rate == 0.5 and seed == 0
        s.log(task, fe, hop, rate, seed, examples=examples)
    # A re-run of an existing config (same config_hash): the later one wins.
    s.log("toy-a", "diffres", 10.0, 0.5, 1, accuracy=0.9)
    # A failed run that would otherwise be the best of its setting.
    s.log("toy-a", "spec", 10.0, 0.0, 0, status="FAILED", accuracy=0.99)
    paths = report.build_report(SUITE, s.uri, out / "results", out / "reports")
    return s, out, paths


def make_runs(rows) -> report.Runs:
    df = pd.DataFrame(rows, columns=["task", "backbone", "frontend", "hop_ms", "reduction_rate", "seed",
                                     "test_metric"]).assign(fold=report.NO_FOLD)
    return report.Runs(df, (), len(df), 0, 0)


@contextlib.contextmanager
def registered_tasks():
    """Yields ``register(control) -> name``: a copy of toy-transients with ``control`` set, under a fresh name;
    the names leave the task registry on exit."""
    import dataclasses

    from tasks import get_task, registry

    names = []

    def register(control: str | None) -> str:
        name = f"test-only-{control}-{uuid.uuid4().hex[:8]}"
        spec = dataclasses.replace(get_task("toy-transients"), name=name, control=control)
        registry.register_task(lambda: spec)
        names.append(name)
        return name

    try:
        yield register
    finally:
        for name in names:
            registry.TASKS.remove(name)
