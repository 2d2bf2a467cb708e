"""Achieved training FLOP/s per device and backbone: the table `diffres-bench plan` estimates GPU-hours from.

For each task family and front-end: the paper suite's model (`recipe_for(task, "paper")`: EfficientNet-B2,
attention head; built with `pretrained="none"`, since the initial weights do not change the cost) at the
family's frame count at 10 ms, trained through the trainer's own `train_step` on synthetic log-mel batches
(AMP on CUDA), no dataset needed. A row records clips/s and `train_flops_per_s` = 3 x forward FLOPs per
clip (`benchmark.compute.count_flops`) x clips/s. Rows of the same device and setting are replaced, others
kept, so one table gathers every machine it was run on:

    python -m benchmark.benches.bench_throughput                       # a GPU: the recipe batch sizes
    python -m benchmark.benches.bench_throughput --tasks esc50 --batch-size 4 --steps 2   # a CPU, small
"""

from __future__ import annotations

import argparse
import csv
import datetime
from functools import partial
from pathlib import Path

import torch

from benchmark.compute import count_flops, describe_device, median_seconds
from benchmark.config import RunConfig
from benchmark.plan import THROUGHPUT_CSV
from benchmark.steps import Amp, choose_loss, make_model, make_optimizer, one_hot, train_step
from tasks import FeatureConfig, get_task

FAMILIES = {"audioset": None, "fsd50k": None, "esc50": 1, "speechcommands": None, "nsynth-instrument": None}
KEY = ("device", "task", "backbone", "head", "frontend", "reduction_rate", "batch_size", "amp")


def bench(task: str, fold: int | None, frontend: str, delta: float, steps: int, batch_size: int | None,
          device: torch.device) -> dict:
    spec = get_task(task)
    cfg = RunConfig.for_task(task, fold=fold, recipe="paper", pretrained="none", frontend=frontend,
                             reduction_rate=delta, **({"batch_size": batch_size} if batch_size else {}))
    t_in = FeatureConfig(sample_rate=spec.sample_rate, n_mels=cfg.n_mels, win_ms=cfg.win_ms,
                         hop_ms=cfg.hop_ms).num_frames(spec.clip_seconds)
    model = make_model(cfg, spec.num_classes, t_in, device)
    model.eval()
    x1 = torch.randn(1, t_in, cfg.n_mels, device=device)
    flops = count_flops(model.frontend, x1) + count_flops(model.backbone, model.frontend(x1).features)
    optimizer, amp = make_optimizer(model, cfg), Amp(device, cfg.amp)
    loss_kind = choose_loss(cfg, spec.label_kind)
    x = torch.randn(cfg.batch_size, t_in, cfg.n_mels, device=device)  # [B, T, F]
    y = one_hot(torch.randint(0, spec.num_classes, (cfg.batch_size,)), spec.num_classes).to(device)
    model.train()
    step_s = median_seconds(partial(train_step, model, optimizer, amp, cfg, loss_kind, x, y), device,
                            repeats=steps, warmup=1)  # the first step warms up (allocations, cuDNN autotuning)
    clips_per_s = cfg.batch_size / step_s
    return {"device": describe_device(device), "task": task, "backbone": cfg.backbone, "head": cfg.head,
            "frontend": frontend, "reduction_rate": cfg.reduction_rate, "t_in": t_in,
            "t_out": model.frontend.t_out(t_in), "n_mels": cfg.n_mels, "batch_size": cfg.batch_size,
            "amp": amp.enabled, "steps": steps, "clips_per_s": round(clips_per_s, 3),
            "forward_flops_per_clip": flops, "train_flops_per_s": round(3 * flops * clips_per_s),
            "date": datetime.date.today().isoformat(), "torch": torch.__version__}



def write(rows: list[dict], path: Path) -> None:
    """Replace the rows of the same setting (KEY), keep the others, sorted by KEY."""
    old = []
    if path.is_file():
        with path.open(newline="") as fh:
            old = list(csv.DictReader(fh))
    fresh = {tuple(str(r[k]) for k in KEY) for r in rows}
    kept = [r for r in old if tuple(r[k] for k in KEY) not in fresh]
    table = sorted(kept + [{k: str(v) for k, v in r.items()} for r in rows], key=lambda r: tuple(r[k] for k in KEY))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--frontends", nargs="+", default=["spec:0", "diffres:0.5"],
                        help="front-end:δ pairs (default spec:0 diffres:0.5)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per setting")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each recipe's batch size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=THROUGHPUT_CSV)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for task in args.tasks:
        for item in args.frontends:
            frontend, delta = item.split(":")
            rows.append(bench(task, FAMILIES[task], frontend, float(delta), args.steps, args.batch_size, device))
            print(rows[-1], flush=True)
    write(rows, args.out)
    print(f"wrote {args.out} ({len(rows)} rows, {rows[0]['device']})")


if __name__ == "__main__":
    main()
