"""What the input pipeline delivers: writes results/bench_loader.csv, which `diffres-bench plan` reads.

Two measurements per paper task format (its clip length, 16 kHz, single- or multi-label), no dataset needed:

- `loader`: clips/s that `benchmark.training.loader.train_loader` delivers over one epoch of a synthetic int16
  waveform cache in the task's format (the same Arrow schema `tasks.wavecache` writes), read from the
  memory-mapped file (`in_memory_bytes=0`, as a paper-scale split that does not fit in memory), in the
  paper recipe's batch size, with 0 (the main process), 1, 2, ... workers: the steady rate after the first
  batch arrived (`clips_per_s`), and the seconds to that first batch (`first_batch_s`: the workers' start,
  paid once per epoch since a run restarts them each epoch). The file was just written, so it is in the OS page cache:
  the rate of a warm cache, which a machine with the RAM for the task's cache keeps after the first epoch.
  A worker's rate on a GPU host is its rate here scaled by the per-core speed.
- `features`: the device-side cost of the model's first stage (the paper recipe's log-mel: STFT, mel,
  log, standardisation) per clip at hops 10, 5, 2 and 1 ms, on `--device` (ms per clip, median of
  `--repeats` batches after a warm-up).

    python -m benchmark.benches.bench_loader                   # this CPU: workers 0, 1, 2
    python -m benchmark.benches.bench_loader --device cuda     # a GPU host: features on the GPU too

Rows of the same device and setting are replaced, others kept (one table for every machine it ran on).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.paths import RESULTS_DIR
from benchmark.tracking.compute import describe_device, median_seconds

LOADER_CSV = RESULTS_DIR / "bench_loader.csv"
TASKS = ("speechcommands", "nsynth-instrument", "esc50", "audioset", "fsd50k")  # 1, 4, 5, 10, 30 s clips
HOPS_MS = (10.0, 5.0, 2.0, 1.0)
EPOCH_BYTES = 768 * 2**20  # int16 bytes of one synthetic epoch (clips = this / clip bytes, within CLIPS)
CLIPS = (96, 4096)
MIN_BATCHES = 8  # the steady rate is timed over the batches after the first
KEY = ("kind", "device", "task", "hop_ms", "workers")


def write_synthetic_cache(path: Path, spec, n_clips: int, seed: int = 0) -> None:
    """`n_clips` random clips written as `tasks.wavecache` writes a cache (its schema and record batches)."""
    import pyarrow as pa

    from tasks.wavecache import unit_batch, unit_schema

    n = int(round(spec.clip_seconds * spec.sample_rate))
    rng = np.random.default_rng(seed)
    single = spec.label_kind == "single"
    schema = unit_schema(spec, n)
    step = max(1, 64 * 2**20 // (2 * n))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for start in range(0, n_clips, step):
            k = min(step, n_clips - start)
            waves = rng.integers(-3000, 3000, size=(k, n), dtype=np.int16)
            labels = [int(c) for c in rng.integers(0, spec.num_classes, k)]
            labels = labels if single else [[c] for c in labels]
            writer.write_batch(unit_batch(schema, [f"clip{start + i}" for i in range(k)], labels, waves))


def loader_rows(task: str, workers: list[int], tmp: Path) -> list[dict]:
    from benchmark.config import RunConfig
    from benchmark.training.data import Split, epoch_batches
    from benchmark.training.loader import train_loader
    from tasks import get_task
    from tasks.features import FeatureSet
    from tasks.wavecache import WaveformSet

    spec = get_task(task)
    cfg = RunConfig.for_task(task, recipe="paper", fold=1 if spec.folds else None)
    clip_bytes = 2 * int(round(spec.clip_seconds * spec.sample_rate))
    n_clips = max(int(np.clip(EPOCH_BYTES // clip_bytes, *CLIPS)), MIN_BATCHES * cfg.batch_size)
    path = tmp / f"{task}.arrow"
    write_synthetic_cache(path, spec, n_clips)
    waves = WaveformSet(spec, "train", None, path, None, "bench")
    features = FeatureSet(spec, cfg.feature_config(spec), "train", None, waves, 0.0, 1.0)
    split = Split(features, range(n_clips), in_memory_bytes=0)  # read from the memory-mapped file
    batches = epoch_batches(n_clips, cfg.batch_size, torch.Generator().manual_seed(0))
    rows = []
    for w in workers:
        start = time.perf_counter()
        seen, first, first_at = 0, 0, 0.0
        for batch in train_loader(split, batches, torch.device("cpu"), workers=w):
            seen += len(batch["target"])
            if not first:
                first, first_at = seen, time.perf_counter()
        seconds = time.perf_counter() - first_at  # steady state: after the first batch arrived
        rows.append({"kind": "loader", "task": task, "clip_s": spec.clip_seconds, "hop_ms": "", "workers": w,
                     "batch_size": cfg.batch_size, "clips": seen, "first_batch_s": round(first_at - start, 3),
                     "clips_per_s": round((seen - first) / seconds, 1),
                     "ms_per_clip": round(1e3 * seconds / (seen - first), 3), "device": describe_device("cpu")})
        print(rows[-1], flush=True)
    path.unlink()
    return rows


@torch.no_grad()
def feature_rows(task: str, device: torch.device, repeats: int) -> list[dict]:
    from benchmark.config import RunConfig
    from benchmark.model.classifier import build_filterbank
    from tasks import get_task

    spec = get_task(task)
    rows = []
    for hop in HOPS_MS:
        cfg = RunConfig.for_task(task, recipe="paper", hop_ms=hop, fold=1 if spec.folds else None)
        stage = build_filterbank(cfg).to(device).eval()
        batch = max(1, min(cfg.batch_size, int(64 / spec.clip_seconds)))  # about a minute of audio per call
        x = 0.1 * torch.randn(batch, int(round(spec.clip_seconds * spec.sample_rate)), device=device)
        seconds = median_seconds(lambda stage=stage, x=x: stage(x), device, repeats=repeats, warmup=1)
        rows.append({"kind": "features", "task": task, "clip_s": spec.clip_seconds, "hop_ms": hop, "workers": "",
                     "batch_size": batch, "clips": batch * repeats, "first_batch_s": "",
                     "clips_per_s": round(batch / seconds, 1),
                     "ms_per_clip": round(1e3 * seconds / batch, 3), "device": describe_device(device)})
        print(rows[-1], flush=True)
    return rows


def write_rows(rows: list[dict], path: Path = LOADER_CSV) -> None:
    """Replace rows with the same KEY, keep the others."""
    stamp = {"date": datetime.date.today().isoformat(), "torch": torch.__version__}
    rows = [{**r, **stamp} for r in rows]
    new = {tuple(str(r[k]) for k in KEY) for r in rows}
    kept = []
    if path.is_file():
        with path.open(newline="") as fh:
            kept = [r for r in csv.DictReader(fh) if tuple(r[k] for k in KEY) not in new]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept + rows)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the features are computed (cpu, cuda)")
    parser.add_argument("--workers", default=None,
                        help="comma-separated worker counts (default: 0, 1, 2, then doubling up to the cores)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated paper tasks (clip formats)")
    parser.add_argument("--repeats", type=int, default=5, help="timed feature batches per hop")
    parser.add_argument("--out", type=Path, default=LOADER_CSV)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one core for the main process, as a run's reader has beside its step
    cores = os.cpu_count() or 1
    workers = [int(w) for w in args.workers.split(",")] if args.workers else \
        [0, 1, *[2 ** k for k in range(1, 5) if 2 ** k <= cores]]
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            rows += loader_rows(task, workers, Path(tmp))
            rows += feature_rows(task, device, args.repeats)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
