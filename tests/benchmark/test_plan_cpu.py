"""`plan`'s CPU wall-time estimate: the list-scheduling bound over workers and cores, epochs from committed
runs, and a calibration that times the suite's own models here (how close it comes to a measured wall is a
benchmark, `benchmark.benches.bench_plan`, not a test)."""

from __future__ import annotations

import csv

import pytest

from benchmark.cli import main
from benchmark.plan_cpu import RUN_OVERHEAD_S, CpuEstimate, estimate, load_epochs
from benchmark.study import load_suite

SUITE = """name: tiny-plan
base:
  max_train_clips: 64
  max_eval_clips: 32
  epochs: 10
grids:
  - task: [toy-rhythm]
    frontend: [avgpool, maxpool]
    hop_ms: [10.0]
    reduction_rate: [0.5]
    seed: [0, 1]
"""


def _estimate(points: float, longest: float, workers: int, cores: int) -> CpuEstimate:
    return CpuEstimate(points=4, point_seconds=points, longest_point_s=longest, workers=workers, cores=cores,
                       shapes=1, calibration_s=0.0, epochs_basis="")


def test_the_wall_is_the_list_scheduling_bound_over_the_cores_used():
    assert _estimate(100.0, 40.0, 1, 2).wall_s == 100.0
    assert _estimate(100.0, 40.0, 2, 2).wall_s == 50.0 + 20.0
    assert _estimate(100.0, 40.0, 4, 2).wall_s == 50.0 + 20.0  # four single-threaded workers share two cores


def _runs_csv(path, rows):
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["task", "frontend", "epochs_run", "stopped_early"])
        writer.writeheader()
        writer.writerows(rows)


def test_epochs_come_from_the_suites_committed_runs_else_the_share_early_stopped_runs_used(tmp_path):
    _runs_csv(tmp_path / "tiny-plan" / "runs.csv", [
        dict(task="toy-rhythm", frontend="spec", epochs_run=4, stopped_early="True"),
        dict(task="toy-rhythm", frontend="spec", epochs_run=6, stopped_early="True")])
    _runs_csv(tmp_path / "other" / "runs.csv", [dict(task="t", frontend="f", epochs_run=30, stopped_early="False")])
    means, share = load_epochs(tmp_path)
    assert means[("tiny-plan", "toy-rhythm", "spec")] == 5.0 and means[("other", "t", "f")] == 30.0
    assert share == pytest.approx(5 / 30)  # only the early-stopped runs, over the quick recipe's 30 epochs


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "tiny-plan.yaml"
    path.write_text(SUITE)
    return load_suite(path)


def test_the_estimate_times_each_model_shape_once_and_uses_committed_epochs(suite, tmp_path):
    at_max = estimate(suite, workers=1, results_dir=tmp_path)  # no committed runs: every point at 10 epochs
    assert at_max.shapes == 2 and at_max.points == 4
    assert "4 points at their maximum epochs" in at_max.epochs_basis
    assert at_max.point_seconds > 4 * RUN_OVERHEAD_S
    _runs_csv(tmp_path / "tiny-plan" / "runs.csv", [
        dict(task="toy-rhythm", frontend=f, epochs_run=1, stopped_early="True") for f in ("avgpool", "maxpool")])
    short = estimate(suite, workers=1, results_dir=tmp_path)
    assert "4 points' epochs from results/tiny-plan/runs.csv" in short.epochs_basis
    # 1 epoch instead of 10: the steps' share shrinks tenfold, the per-run overhead stays
    steps_at_max = at_max.point_seconds - 4 * RUN_OVERHEAD_S
    assert short.point_seconds - 4 * RUN_OVERHEAD_S < steps_at_max / 3


def test_the_plan_command_prints_the_cpu_line(suite, capsys):
    assert main(["plan", "--suite", str(suite.path), "--device", "nowhere", "--cpu-estimate",
                 "--n-workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("CPU wall here: ~") and "at 2 worker(s)" in out[-1] and "2 model shapes" in out[-1]


def test_the_plan_command_refuses_zero_workers(suite, capsys):
    assert main(["plan", "--suite", str(suite.path), "--n-workers", "0"]) == 2
    assert "--n-workers 0" in capsys.readouterr().err
