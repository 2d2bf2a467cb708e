"""Suites and Optuna studies: a suite YAML becomes a list of run configs, then one Optuna study that any
number of `worker` processes share.

- `suites`: the suite YAML (base, grids, zip, search space), validated; the data check before a study.
- `storage`: Optuna storages: a journal file `results/<suite>/optuna.journal` by default (one machine, no
  server); any Optuna storage URL otherwise (PostgreSQL for many machines, with heartbeats).
- `states`: each point's state and the suite's `status` (done / running / failed / left).
- `objective`: `objective(trial) = run(config.replace(**sampled))`; a point is trained once; trials of
  dead workers are failed and re-queued.
- `workers`: `create`, `worker`, `run_study`, `spawn_worker`, `clean_checkpoints`.
Passwords in storage and tracking URLs are masked in every log line, error and MLflow tag.

The study layer's public names are importable from here (`from benchmark import study; study.run_study(...)`);
what belongs to other layers is imported from them (`benchmark.paths`, `benchmark.tracking`). The suite
functions load at once; the rest loads on first use, so that reading a suite (`diffres-bench report`,
`suites`) does not import Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

from benchmark.study.suites import (
    Suite,
    SuiteError,
    SuiteNotFoundError,
    check_data,
    check_task_data,
    list_suites,
    load_suite,
    suite_path,
)

_LAZY = {  # name here -> "module:name there"
    "Objective": "benchmark.study.objective:Objective",
    "RunFn": "benchmark.study.objective:RunFn",
    "StudyStatus": "benchmark.study.states:StudyStatus",
    "status": "benchmark.study.states:status",
    "open_storage": "benchmark.study.storage:open_storage",
    "clean_checkpoints": "benchmark.study.workers:clean_checkpoints",
    "create": "benchmark.study.workers:create",
    "default_n_workers": "benchmark.study.workers:default_n_workers",
    "run_study": "benchmark.study.workers:run_study",
    "spawn_worker": "benchmark.study.workers:spawn_worker",
    "worker": "benchmark.study.workers:worker",
}

__all__ = ["Suite", "SuiteError", "SuiteNotFoundError", "check_data", "check_task_data", "list_suites", "load_suite",
           "suite_path", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
