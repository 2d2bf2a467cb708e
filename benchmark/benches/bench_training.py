"""Training throughput (clips/s) per front-end at δ ∈ {0 (spec), 0.5, 0.75}.

Default: the embedded task "toy-transients" with the quick recipe's backbone on this machine's CPU,
through the trainer's own `train_one_epoch` (waveform mixup, SpecAugment, front-end, backbone, guide
loss, Adam step), written to results/bench_training.csv with the machine named in every row.

    python -m benchmark.benches.bench_training                       # CPU, embedded task
    python -m benchmark.benches.bench_training --paper-sizes --device cuda --out results/bench_training_gpu.csv

`--paper-sizes` times the paper's recipe instead (EfficientNet-B2, 128 mel bins, each hub task's
frame count and batch size) on synthetic log-mel batches, with AMP on CUDA: no dataset download.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from benchmark.compute import describe_device
from benchmark.config import QUICK_RECIPE, RunConfig, recipe_for
from benchmark.model import build_model
from benchmark.train import _Amp, _loss_fn, load_task_data, train_one_epoch

FRONTENDS = ["spec", "diffres", "avgpool", "maxpool", "avgmaxpool", "changehop", "convavgpool", "specpool",
             "pool3ch"]
# paper frame counts at 10 ms (../shared/PAPER.md) and the recipe's batch size
PAPER_SIZES = {"audioset": 1056, "fsd50k": 3000, "esc50": 500, "speechcommands": 100, "nsynth": 400}


def grid(frontends: list[str]) -> list[tuple[str, float]]:
    return [("spec", 0.0)] * ("spec" in frontends) + [(fe, d) for fe in frontends if fe != "spec"
                                                      for d in (0.5, 0.75)]


def bench_embedded(task: str, frontends: list[str], batches: int, device: torch.device) -> list[dict]:
    rows = []
    base = RunConfig.for_task(task, max_train_clips=QUICK_RECIPE["batch_size"] * (batches + 1))
    data = load_task_data(base)
    for frontend, delta in grid(frontends):
        cfg = base.replace(frontend=frontend, reduction_rate=delta, mixup_prob=0.5)
        torch.manual_seed(0)
        model = build_model(cfg, num_classes=data.spec.num_classes, t_in=data.t_in).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        amp, gen = _Amp(device, cfg.amp), torch.Generator().manual_seed(0)
        warm = DataLoader(Subset(data.train, range(cfg.batch_size)), batch_size=cfg.batch_size)
        timed = DataLoader(Subset(data.train, range(cfg.batch_size, cfg.batch_size * (batches + 1))),
                           batch_size=cfg.batch_size)
        loss_kind = _loss_fn(cfg, data.spec.label_kind)
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
            torch.manual_seed(0)
            model = build_model(cfg, num_classes=50, t_in=t_in).to(device)
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
            amp = _Amp(device, cfg.amp)
            x = torch.randn(cfg.batch_size, t_in, cfg.n_mels, device=device)  # [B, T, F]
            y = torch.randint(0, 50, (cfg.batch_size,), device=device)
            times = []
            for i in range(steps + 2):
                _sync(device)
                start = time.perf_counter()
                with amp.autocast():
                    logits, out = model(x)
                    loss = torch.nn.functional.cross_entropy(logits.float(), y) + out.aux_loss.float()
                optimizer.zero_grad(set_to_none=True)
                amp.scaler.scale(loss).backward()
                amp.scaler.step(optimizer)
                amp.scaler.update()
                _sync(device)
                if i >= 2:
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times) * steps
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
    parser.add_argument("--out", type=Path, default=Path("results/bench_training.csv"))
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
