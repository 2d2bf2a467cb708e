"""What a suite costs on *this* CPU: a wall-time estimate from a few seconds of calibration on the spot.

`plan` prints it beside the GPU line (`CpuEstimate`). For each distinct model shape of the suite (task,
front-end, filterbank, backbone, hop, δ, n_mels, batch size, threads) the calibration builds the run's own
model on the CPU, under the run's own thread count and determinism, and times `CALIBRATION_STEPS` training
steps (forward + backward + optimiser step, after one untimed warm-up step) and one evaluation batch. A
point then costs

    epochs x (ceil(train clips / batch) x step + val clips x eval per clip) + test clips x eval per clip
    + RUN_OVERHEAD_S

- Epochs: a recipe without early stopping trains every epoch; with early stopping, the mean `epochs_run` of
  the suite's committed runs of the same task and front-end (`results/<suite>/runs.csv`), else the median
  share of the maximum that all committed runs with early stopping used (`results/*/runs.csv`), times the
  point's maximum; the plan says which.
- `RUN_OVERHEAD_S`: what a run costs besides its steps (process start, data and statistics, MLflow logging,
  checkpoints): a stated constant, checked by `python -m benchmark.benches.bench_plan`.
- Wall time: the points' seconds over the workers, each single-threaded run on its own core
  (`min(workers, cores)` lanes), plus (1 - 1/lanes) x the longest point: the bound of list scheduling.
- The waveform cache of a task not yet built, and the embedded tasks' clip generation, are not counted.

It is an estimate: `results/bench_plan.csv` holds it against the measured wall of the quick suite and of a
user corpus suite on the machine named there (the target: within 2x).
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.paths import RESULTS_DIR

CALIBRATION_STEPS = 3
CALIBRATION_MAX_BATCH = 8  # clips per calibration step; a larger batch is scaled linearly (one thread)
RUN_OVERHEAD_S = 2.0


@dataclass(frozen=True)
class CpuEstimate:
    points: int
    point_seconds: float  # sum over the points, on one core each
    longest_point_s: float
    workers: int
    cores: int
    shapes: int  # distinct model shapes calibrated
    calibration_s: float
    epochs_basis: str

    @property
    def wall_s(self) -> float:
        lanes = max(1, min(self.workers, self.cores))
        return self.point_seconds / lanes + (1 - 1 / lanes) * self.longest_point_s  # Graham's list-scheduling bound

    def __str__(self) -> str:
        return (f"CPU wall here: ~{self.wall_s / 60:.0f} min at {self.workers} worker(s) on {self.cores} core(s) "
                f"({self.point_seconds / 3600:.2f} core-hours; an estimate: {self.shapes} model shapes timed on this "
                f"CPU in {self.calibration_s:.0f} s, + {RUN_OVERHEAD_S:g} s a run; {self.epochs_basis}; "
                f"checked against measured walls in results/bench_plan.csv)")


def _shape_key(cfg: Any) -> tuple:
    return (cfg.task, cfg.frontend, cfg.filterbank, cfg.backbone, cfg.head, cfg.hop_ms, cfg.win_ms,
            cfg.reduction_rate, cfg.n_mels, cfg.batch_size, cfg.cpu_threads, cfg.pretrained_weights)


def calibrate(cfg: Any, spec: Any) -> tuple[float, float]:
    """(seconds per training step at cfg.batch_size, seconds per evaluated clip) of `cfg`'s model on this CPU."""
    import torch

    from benchmark.model.classifier import task_normalised
    from benchmark.training.steps import Amp, choose_loss, eval_batch_size, make_model, make_optimizer, train_step
    from benchmark.training.train import cpu_threads, deterministic

    device = torch.device("cpu")
    features = cfg.feature_config(spec)
    t_in = features.num_frames(spec.clip_seconds)
    samples = round(spec.clip_seconds * spec.sample_rate)
    batch = min(cfg.batch_size, CALIBRATION_MAX_BATCH)
    with deterministic(True), cpu_threads(cfg, device):
        gen = torch.Generator().manual_seed(0)
        model = make_model(cfg, spec.num_classes, t_in, device)
        optimizer, amp = make_optimizer(model, cfg), Amp(device, False)
        loss_kind = choose_loss(cfg, spec.label_kind)
        wave = torch.randn(batch, samples, generator=gen) * 0.1
        target = torch.nn.functional.one_hot(torch.arange(batch) % spec.num_classes, spec.num_classes).float()
        held = None
        if task_normalised(cfg):  # a fixed filterbank's features are computed once and held, as in a run
            with torch.no_grad():
                held = model.filterbank(wave)
        model.train()
        train_step(model, optimizer, amp, cfg, loss_kind, wave, target, features=held)  # warm-up, untimed
        start = time.perf_counter()
        for _ in range(CALIBRATION_STEPS):
            train_step(model, optimizer, amp, cfg, loss_kind, wave, target, features=held)
        step = (time.perf_counter() - start) / CALIBRATION_STEPS * cfg.batch_size / batch
        n_eval = min(eval_batch_size(cfg, t_in), CALIBRATION_MAX_BATCH * 4)
        model.eval()
        eval_wave = torch.randn(n_eval, samples, generator=gen) * 0.1
        with torch.no_grad():
            start = time.perf_counter()
            model(eval_wave)
            per_clip = (time.perf_counter() - start) / n_eval
    return step, per_clip


def load_epochs(results_dir: Path = RESULTS_DIR) -> tuple[dict[tuple[str, str, str], float], float | None]:
    """({(suite, task, frontend): mean epochs_run}, median share of the maximum used by early-stopped runs)."""
    from benchmark.training.recipes import QUICK_RECIPE

    by_arm: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    shares = []
    for path in sorted(Path(results_dir).glob("*/runs.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get("epochs_run"):
                    continue
                epochs = float(row["epochs_run"])
                by_arm[(path.parent.name, row["task"], row["frontend"])].append(epochs)
                if row.get("stopped_early") in ("True", "true", "1"):
                    shares.append(epochs / QUICK_RECIPE["epochs"])
    means = {k: statistics.fmean(v) for k, v in by_arm.items()}
    return means, (statistics.median(shares) if shares else None)


def estimate(suite: Any, workers: int | None = None, results_dir: Path = RESULTS_DIR) -> CpuEstimate:
    """The CPU wall-time estimate of a loaded `Suite` at `workers` local workers (default: the study's)."""
    from benchmark.study.workers import default_n_workers
    from tasks import get_task

    workers = default_n_workers() if workers is None else workers
    arm_epochs, share = load_epochs(results_dir)
    started = time.perf_counter()
    timings: dict[tuple, tuple[float, float]] = {}
    total = longest = 0.0
    from_suite = from_share = 0
    for cfg in suite.configs:
        spec = get_task(cfg.task)
        key = _shape_key(cfg)
        if key not in timings:
            timings[key] = calibrate(cfg, spec)
        step, per_clip = timings[key]
        n_train = min(spec.clips("train"), cfg.max_train_clips or spec.clips("train"))
        n_val = min(spec.clips("val"), cfg.max_eval_clips or spec.clips("val"))
        n_test = min(spec.clips("test"), cfg.max_eval_clips or spec.clips("test"))
        epochs = float(cfg.epochs)
        if cfg.patience is not None:
            known = arm_epochs.get((suite.name, cfg.task, cfg.frontend))
            if known is not None:
                epochs, from_suite = min(known, cfg.epochs), from_suite + 1
            elif share is not None:
                epochs, from_share = max(cfg.min_epochs, share * cfg.epochs), from_share + 1
        point = (epochs * (math.ceil(n_train / cfg.batch_size) * step + n_val * per_clip) + n_test * per_clip
                 + RUN_OVERHEAD_S)
        total, longest = total + point, max(longest, point)
    basis = [f"{from_suite} points' epochs from results/{suite.name}/runs.csv"] if from_suite else []
    if from_share:
        basis.append(f"{from_share} points at {share:.0%} of their maximum epochs (early-stopped committed runs)")
    rest = len(suite.configs) - from_suite - from_share
    if rest:
        basis.append(f"{rest} points at their maximum epochs")
    return CpuEstimate(points=len(suite.configs), point_seconds=total, longest_point_s=longest, workers=workers,
                       cores=os.cpu_count() or 1, shapes=len(timings), calibration_s=time.perf_counter() - started,
                       epochs_basis=", ".join(basis))
