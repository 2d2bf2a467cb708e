"""Achieved training FLOP/s per device and backbone: the table `diffres-bench plan` estimates GPU-hours from.

For each task family and setting (front-end, δ, input hop): the paper suite's model (`recipe_for(task,
"paper")`: EfficientNet-B2, attention head; built with `pretrained="none"`, since the initial weights do not
change the cost), trained through the trainer's own `make_model` (channels-last on CUDA) and `train_step`
(AMP: bf16 autocast where the GPU supports it) on synthetic waveform batches of the recipe's batch size:
the filterbank runs on the device as in a run; no dataset is needed. A row records clips/s and
`train_flops_per_s` = 3 x forward FLOPs per clip (filterbank + front-end + backbone,
`benchmark.tracking.compute.count_flops`) x clips/s; a setting that does not fit the device's memory is a row with
`clips_per_s` = "oom". Rows of the same device and setting are replaced, others kept, so one table gathers
every machine it ran on:

    python -m benchmark.benches.bench_throughput --device cuda     # a GPU: the paper sizes (SETTINGS)
    python -m benchmark.benches.bench_throughput --device cpu --tasks esc50 --settings spec:0:10 \\
        diffres:0.5:10 --batch-size 4 --steps 2                      # a CPU, small
"""

from __future__ import annotations

import argparse
import csv
import datetime
from functools import partial
from pathlib import Path

import torch

from benchmark.config import RunConfig
from benchmark.plan import THROUGHPUT_CSV
from benchmark.tracking.compute import count_flops, describe_device, median_seconds
from benchmark.training.steps import Amp, choose_loss, make_model, make_optimizer, one_hot, train_step
from tasks import get_task

FAMILIES = {"audioset": None, "fsd50k": None, "esc50": 1, "speechcommands": None, "nsynth-instrument": None}
# front-end:δ:hop (ms): the spectrogram, average pooling and DiffRes at the paper's rates, from 10 and 1 ms
SETTINGS = [f"{fe}:{d}:{h}" for h in (10, 1) for fe, d in
            [("spec", 0), *[(fe, d) for fe in ("avgpool", "diffres") for d in (0.5, 0.75, 0.9)]]]
KEY = ("device", "task", "backbone", "head", "frontend", "reduction_rate", "hop_ms", "batch_size", "amp")


def bench(task: str, fold: int | None, frontend: str, delta: float, hop_ms: float, steps: int,
          batch_size: int | None, device: torch.device) -> dict:
    spec = get_task(task)
    cfg = RunConfig.for_task(task, fold=fold, recipe="paper", pretrained="none", frontend=frontend,
                             reduction_rate=delta, hop_ms=hop_ms, **({"batch_size": batch_size} if batch_size else {}))
    n = int(round(spec.clip_seconds * spec.sample_rate))
    t_in = cfg.feature_config(spec).num_frames(spec.clip_seconds)
    row = {"device": describe_device(device), "task": task, "backbone": cfg.backbone, "head": cfg.head,
           "frontend": frontend, "reduction_rate": cfg.reduction_rate, "hop_ms": hop_ms, "t_in": t_in,
           "n_mels": cfg.n_mels, "batch_size": cfg.batch_size, "steps": steps,
           "date": datetime.date.today().isoformat(), "torch": torch.__version__}
    try:
        model = make_model(cfg, spec.num_classes, t_in, device)
        model.eval()
        w1 = 0.1 * torch.randn(1, n, device=device)
        with torch.no_grad():
            x1 = model.filterbank(w1)
            features = model.frontend(x1).features
        flops = count_flops(model.filterbank, w1) + count_flops(model.frontend, x1) + count_flops(model.backbone,
                                                                                                  features)
        optimizer, amp = make_optimizer(model, cfg), Amp(device, cfg.amp)
        loss_kind = choose_loss(cfg, spec.label_kind)
        wave = 0.1 * torch.randn(cfg.batch_size, n, device=device)  # [B, N]
        y = one_hot(torch.randint(0, spec.num_classes, (cfg.batch_size,)), spec.num_classes).to(device)
        model.train()
        step_s = median_seconds(partial(train_step, model, optimizer, amp, cfg, loss_kind, wave, y), device,
                                repeats=steps, warmup=1)  # the first step warms up (allocations, cuDNN autotuning)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {**row, "t_out": "", "amp": cfg.amp and device.type == "cuda", "clips_per_s": "oom",
                "forward_flops_per_clip": "", "train_flops_per_s": ""}
    clips_per_s = cfg.batch_size / step_s
    out = {**row, "t_out": model.frontend.t_out(t_in), "amp": amp.enabled, "clips_per_s": round(clips_per_s, 3),
           "forward_flops_per_clip": flops, "train_flops_per_s": round(3 * flops * clips_per_s)}
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def write(rows: list[dict], path: Path) -> None:
    """Replace the rows of the same setting (KEY), keep the others, sorted by KEY."""
    old = []
    if path.is_file():
        with path.open(newline="") as fh:
            old = [{"hop_ms": "10.0", **r} for r in csv.DictReader(fh)]  # rows before hop_ms was a key: 10 ms
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
    parser.add_argument("--settings", nargs="+", default=SETTINGS,
                        help="front-end:δ:hop_ms triples (default: the paper sizes, SETTINGS)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per setting")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each recipe's batch size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=THROUGHPUT_CSV)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for task in args.tasks:
        for item in args.settings:
            frontend, delta, hop = item.split(":")
            rows.append(bench(task, FAMILIES[task], frontend, float(delta), float(hop), args.steps,
                              args.batch_size, device))
            print(rows[-1], flush=True)
    write(rows, args.out)
    print(f"wrote {args.out} ({len(rows)} rows, {rows[0]['device']})")


if __name__ == "__main__":
    main()
