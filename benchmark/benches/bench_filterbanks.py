"""Filterbank speed, memory and FLOPs beside the mel path: writes results/bench_filterbanks.csv and prints it.

For every registered filterbank (``diffres.filterbanks``) at ``n_bands`` bands, 25 ms / 10 ms, on clips of
``clip_seconds`` at 16 kHz in batches of ``batch``: forward+backward time per batch (forward only for
``mel``, which has no parameters to back-propagate into), the median of passes
2-6 in a fresh process; the peak resident memory of those passes above the memory before them (as
``bench_frontends``); and FLOPs per clip (``benchmark.tracking.compute.count_flops``, forward, batch 1). Per-clip
columns divide by the batch. The number of torch threads is a column: compare rows of one machine only.

    python -m benchmark.benches.bench_filterbanks [--batch 8] [--seconds 1.0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchmark.benches.machine import describe_machine, peak_reader
from benchmark.paths import REPO_ROOT, RESULTS_DIR

RESULTS = REPO_ROOT / RESULTS_DIR
SAMPLE_RATE = 16000


def run_case(name: str, batch: int, n_samples: int, n_bands: int) -> dict:
    """Time 6 passes of filterbank ``name`` in this process (meant to be a fresh one, see ``time_case``)."""
    import time

    import torch

    from benchmark.tracking.compute import count_flops
    from diffres.filterbanks import create_filterbank

    torch.manual_seed(0)
    fb = create_filterbank(name, n_bands=n_bands).train()
    x = 0.1 * torch.randn(batch, n_samples)
    learnable = any(p.requires_grad for p in fb.parameters())
    flops = count_flops(fb.eval(), x[:1])
    fb.train()
    reset, peak = peak_reader()
    before = reset()
    times = []
    for _ in range(6):
        start = time.perf_counter()
        if learnable:
            fb(x).mean().backward()
            fb.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                fb(x)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times[1:]), "peak_mib": (peak() - before) / 1024, "flops_per_clip": flops,
            "params": sum(p.numel() for p in fb.parameters()), "passes": "fwd+bwd" if learnable else "fwd"}


def time_case(name: str, batch: int, n_samples: int, n_bands: int, threads: int) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "benchmark.benches.bench_filterbanks", "--case", name, str(batch),
               str(n_samples), str(n_bands)]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        return {"seconds": float("nan"), "peak_mib": float("nan"), "note": f"failed: {proc.stderr[-300:]}"}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "note": ""}


def table(batch: int, seconds: float, n_bands: int, threads: int):
    import pandas as pd

    from diffres.filterbanks import filterbank_info, list_filterbanks

    n_samples = int(round(seconds * SAMPLE_RATE))
    rows = []
    for name in list_filterbanks():
        r = time_case(name, batch, n_samples, n_bands, threads)
        rows.append({"filterbank": name, "learnable": filterbank_info(name).learnable, "batch": batch,
                     "clip_seconds": seconds, "n_bands": n_bands, "threads": threads,
                     "passes": r.get("passes", ""), "params": r.get("params", 0),
                     "seconds_per_batch": r["seconds"], "ms_per_clip": 1000 * r["seconds"] / batch,
                     "peak_mib": r["peak_mib"], "peak_mib_per_clip": r["peak_mib"] / batch,
                     "mflops_per_clip": r.get("flops_per_clip", float("nan")) / 1e6, "note": r["note"]})
    df = pd.DataFrame(rows)
    mel = df.loc[df["filterbank"] == "mel"].iloc[0]
    df["time_vs_mel"] = df["ms_per_clip"] / mel["ms_per_clip"]
    df["flops_vs_mel"] = df["mflops_per_clip"] / mel["mflops_per_clip"]

    df["machine"] = describe_machine(threads=threads)
    return df


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=4, metavar=("NAME", "BATCH", "SAMPLES", "BANDS"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--bands", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.case:
        name, batch, samples, bands = args.case
        print(json.dumps(run_case(name, int(batch), int(samples), int(bands))))
        return None
    df = table(args.batch, args.seconds, args.bands, args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "bench_filterbanks.csv"
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    print(df.drop(columns=["machine"]).to_string(index=False))
    print(f"wrote {path}")
    return df


if __name__ == "__main__":
    main()
