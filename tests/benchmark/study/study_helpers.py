"""Shared by the study tests: suite files written to a temporary folder, and a run function that records
what it was asked to train instead of training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.study import Suite, load_suite

TINY = """
name: tiny
base: {task: toy-transients, epochs: 1, max_train_clips: 16, max_eval_clips: 16, batch_size: 16}
grids:
  - frontend: [spec]
    reduction_rate: [0.0, 0.5]     # spec ignores δ: one point
    seed: [0]
  - frontend: [avgpool, diffres]
    seed: [0]
    zip:
      - {hop_ms: 10.0, reduction_rate: 0.5}
      - {hop_ms: 5.0, reduction_rate: 0.5}
"""


def write_suite(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def tiny_suite(tmp_path: Path) -> tuple[Suite, str, str]:
    """The TINY suite (5 points), a journal storage and a SQLite MLflow store in `tmp_path`."""
    suite = load_suite(write_suite(tmp_path, TINY))
    return suite, str(tmp_path / "optuna.journal"), f"sqlite:///{tmp_path / 'mlflow.db'}"


@dataclass(frozen=True)
class _Result:
    val_metric: float
    test_metric: float
    run_id: str
    reused: bool = False


class Recorder:
    """A run function that records which configs it was asked to train (the real runner is exercised
    end to end in test_study_workers.py, test_scaleout.py and test_cli.py)."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.trained: list[str] = []
        self.fail = set(fail)

    def __call__(self, cfg, *, tracking_uri, experiment, checkpoint_dir, trial, progress, data_dir):
        if cfg.config_hash in self.fail:
            raise RuntimeError(f"boom {cfg.config_hash}")
        self.trained.append(cfg.config_hash)
        return _Result(val_metric=cfg.seed + cfg.reduction_rate, test_metric=0.5, run_id=f"run-{cfg.config_hash}")
