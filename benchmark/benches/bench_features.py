"""Feature extraction throughput and cache read speed: writes results/bench_features.csv and prints it.

1. extract: log-mel (torchaudio MelSpectrogram, 25 ms window) of 3 s, 16 kHz clips in batches of
   32, for hops 1, 2.5, 5 and 10 ms -> clips/s.
2. cache: `load_features` of an embedded task's train split into a fresh cache folder (first:
   decode + resample + log-mel + train statistics, written to the datasets cache), then again
   (second: opened from the fingerprinted cache files); `load_speedup` = first / second. Then a
   full pass over every item (log-mel + waveform, batches of 64) after each load: `total_speedup`
   compares load + full pass, which on a slow disk is bound by reading the cache files. The
   parquet files are generated before the clock starts. Target (issue 3): second >= 20x faster.

    python -m benchmark.benches.bench_features [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parents[2] / "results"
HOPS_MS = (1.0, 2.5, 5.0, 10.0)


def machine() -> str:
    return f"{platform.system()} {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip()


def bench_extract(hop_ms: float, n_mels: int, clips: int = 64, batch: int = 32) -> dict:
    from tasks import FeatureConfig, LogMel

    cfg = FeatureConfig(n_mels=n_mels, hop_ms=hop_ms)
    extractor = LogMel(cfg)
    wave = torch.randn(batch, 48000) * 0.1
    with torch.no_grad():
        extractor(wave)  # warm-up
        start = time.perf_counter()
        for _ in range(clips // batch):
            extractor(wave)
        seconds = time.perf_counter() - start
    return dict(kind="extract", hop_ms=hop_ms, n_mels=n_mels, clips=clips, seconds=seconds,
                clips_per_s=clips / seconds)


def _load_and_read(task: str, cfg, batch: int = 64) -> tuple[int, float, float]:
    """-> (clips, seconds to load, seconds to read every item once)."""
    from tasks import load_features

    start = time.perf_counter()
    fs = load_features(task, "train", cfg)
    loaded = time.perf_counter()
    for first in range(0, len(fs), batch):
        fs.__getitems__(list(range(first, min(first + batch, len(fs)))))
    return len(fs), loaded - start, time.perf_counter() - loaded


def bench_cache(task: str, hop_ms: float, n_mels: int) -> dict:
    from tasks import FeatureConfig, get_task
    from tasks.data import cache_dir

    cfg = FeatureConfig(n_mels=n_mels, hop_ms=hop_ms)
    get_task(task).embedded.ensure(cache_dir() / "embedded" / task)
    clips, first_load, first_read = _load_and_read(task, cfg)
    _, second_load, second_read = _load_and_read(task, cfg)
    return dict(kind="cache", task=task, split="train", hop_ms=hop_ms, n_mels=n_mels, clips=clips,
                clips_per_s=clips / first_load, first_load_s=first_load, second_load_s=second_load,
                load_speedup=first_load / second_load, first_read_all_s=first_read,
                second_read_all_s=second_read,
                total_speedup=(first_load + first_read) / (second_load + second_read))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hops 1 and 10 ms only")
    parser.add_argument("--task", default="toy-transients")
    parser.add_argument("--n-mels", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_features.csv")
    args = parser.parse_args(argv)
    hops = (1.0, 10.0) if args.quick else HOPS_MS

    rows = [bench_extract(h, args.n_mels) for h in hops]
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("DIFFRES_CACHE_DIR")
        os.environ["DIFFRES_CACHE_DIR"] = tmp  # a cold cache for the "first" read
        try:
            rows += [bench_cache(args.task, h, args.n_mels) for h in hops]
        finally:
            if old is None:
                os.environ.pop("DIFFRES_CACHE_DIR", None)
            else:
                os.environ["DIFFRES_CACHE_DIR"] = old
    df = pd.DataFrame(rows)
    df.insert(0, "machine", machine())
    df.insert(1, "torch_threads", torch.get_num_threads())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, float_format="%.4g")
    print(f"machine: {machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(df.drop(columns=["machine"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {args.out}")
    return df


if __name__ == "__main__":
    main()
