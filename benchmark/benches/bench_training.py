"""Training throughput (clips/s) per front-end at δ ∈ {0 (spec), 0.5, 0.75}.

Default: the embedded task "toy-transients" with the quick recipe's backbone on this machine's CPU,
through the trainer's own `train_one_epoch` (waveform mixup, SpecAugment, front-end, backbone, guide
loss, Adam step), written to results/bench_training.csv with the machine named in every row. Model,
optimizer, AMP and loss are the trainer's (`make_model`, `make_optimizer`, `Amp`, `choose_loss`), so the
bench times what a run does.

    python -m benchmark.benches.bench_training                       # CPU, embedded task
    python -m benchmark.benches.bench_training --paper-sizes --device cuda --out results/bench_training_gpu.csv

`--paper-sizes` times the paper's recipe instead (EfficientNet-B2, 128 mel bins, each hub task's
frame count and batch size) on synthetic waveform batches (the filterbank on the device, as in
training) through the trainer's `train_step`, with AMP on CUDA: no dataset download.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from benchmark.config import RunConfig
from benchmark.paths import RESULTS_DIR
from benchmark.tracking.compute import describe_device, median_seconds
from benchmark.training.data import load_task_data
from benchmark.training.recipes import QUICK_RECIPE, recipe_for
from benchmark.training.steps import Amp, choose_loss, make_model, make_optimizer, one_hot, train_one_epoch, train_step

FRONTENDS = ["spec", "diffres", "avgpool", "maxpool", "avgmaxpool", "changehop", "convavgpool", "specpool",
             "pool3ch"]
# paper frame counts at 10 ms (the tasks' clip lengths, tasks/hub.py) and the recipe's batch size
PAPER_SIZES = {"audioset": 1056, "fsd50k": 3000, "esc50": 500, "speechcommands": 100, "nsynth": 400}
PAPER_CLASSES = 50  # one single-label head size for every family: the head is a small part of the step


def grid(frontends: list[str]) -> list[tuple[str, float]]:
    return [("spec", 0.0)] * ("spec" in frontends) + [(fe, d) for fe in frontends if fe != "spec"
                                                      for d in (0.5, 0.75)]


def bench_embedded(task: str, frontends: list[str], batches: int, device: torch.device) -> list[dict]:
    rows = []
    base = RunConfig.for_task(task, max_train_clips=QUICK_RECIPE["batch_size"] * (batches + 1))
    data = load_task_data(base)
    for frontend, delta in grid(frontends):
        cfg = base.replace(frontend=frontend, reduction_rate=delta, mixup_prob=0.5)
        model = make_model(cfg, data.spec.num_classes, data.t_in, device)
        optimizer = make_optimizer(model, cfg)
        amp, gen = Amp(device, cfg.amp), torch.Generator().manual_seed(0)
        warm = DataLoader(Subset(data.train, range(cfg.batch_size)), batch_size=cfg.batch_size)
        timed = DataLoader(Subset(data.train, range(cfg.batch_size, cfg.batch_size * (batches + 1))),
                           batch_size=cfg.batch_size)
        loss_kind = choose_loss(cfg, data.spec.label_kind)
        train_one_epoch(model, warm, optimizer, amp, cfg, data, loss_kind, gen, device)
        _sync(device)
        start = time.perf_counter()
        train_one_epoch(model, timed, optimizer, amp, cfg, data, loss_kind, gen, device)
        _sync(device)
        seconds = time.perf_counter() - start
        rows.append(_row(task, cfg, data.t_in, model.frontend.t_out(data.t_in), batches * cfg.batch_size,
                         seconds, device, amp.enabled))
        print(rows[-1], flush=True)
    return rows


def bench_paper_sizes(frontends: list[str], steps: int, device: torch.device) -> list[dict]:
    rows = []
    for family, t_in in PAPER_SIZES.items():
        base = RunConfig.for_task(family, fold=1 if family == "esc50" else None)
        for frontend, delta in grid(frontends):
            cfg = base.replace(frontend=frontend, reduction_rate=delta)
            model = make_model(cfg, PAPER_CLASSES, t_in, device)
            optimizer = make_optimizer(model, cfg)
            amp, loss_kind = Amp(device, cfg.amp), choose_loss(cfg, "single")
            samples = (t_in - 1) * cfg.feature_config().hop_length  # the filterbank then gives t_in frames
            x = torch.randn(cfg.batch_size, samples, device=device)  # waveform [B, N], as the trainer feeds it
            y = one_hot(torch.randint(0, PAPER_CLASSES, (cfg.batch_size,)), PAPER_CLASSES).to(device)  # [B, C]
            seconds = median_seconds(partial(train_step, model, optimizer, amp, cfg, loss_kind, x, y), device,
                                     repeats=steps, warmup=2) * steps
            rows.append(_row(family, cfg, t_in, model.frontend.t_out(t_in), steps * cfg.batch_size, seconds,
                             device, amp.enabled))
            print(rows[-1], flush=True)
    return rows


def _row(task: str, cfg: RunConfig, t_in: int, t_out: int, clips: int, seconds: float, device: torch.device,
         amp: bool) -> dict:
    return {"task": task, "backbone": cfg.backbone, "frontend": cfg.frontend, "reduction_rate": cfg.reduction_rate,
            "t_in": t_in, "t_out": t_out, "n_mels": cfg.n_mels, "batch_size": cfg.batch_size, "clips": clips,
            "seconds": round(seconds, 4), "clips_per_s": round(clips / seconds, 2), "amp": amp,
            "device": describe_device(device), "threads": torch.get_num_threads(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="toy-transients")
    parser.add_argument("--frontends", nargs="+", default=FRONTENDS)
    parser.add_argument("--batches", type=int, default=3, help="timed batches per point (embedded)")
    parser.add_argument("--paper-sizes", action="store_true", help="EfficientNet-B2 at the paper's sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_training.csv")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe_for(args.task)  # fail fast on a task without a recipe
    device = torch.device(args.device)
    rows = (bench_paper_sizes(args.frontends, args.batches, device) if args.paper_sizes
            else bench_embedded(args.task, args.frontends, args.batches, device))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out} ({len(rows)} rows, {rows[0]['device']})")


if __name__ == "__main__":
    main()
