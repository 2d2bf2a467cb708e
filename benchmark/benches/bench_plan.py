"""`plan`'s CPU wall-time estimate against measured walls on this machine: writes results/bench_plan.csv.

Two rows, each the estimate (`benchmark.plan_cpu.estimate`, calibrated here) beside a measured study wall:

- `quick`: the measured wall is this CPU's row of `results/quick/suite_time.csv` (an idle `make reproduce`
  from an empty cache); where the file has none, the row says so and has no ratio.
- `yours` on a user corpus: a class-folder corpus written to a temporary folder (`CORPUS`: short tone
  bursts in noise at a random time, one frequency band a class), then `diffres-bench study --suite yours
  --task folder:DIR` timed as a user would run it, from an empty cache (temporary stores; nothing kept). No
  committed runs of that suite exist, so its epochs come from the early-stopped committed runs.

The target is a ratio within [0.5, 2].

    python -m benchmark.benches.bench_plan [--workers 2] [--skip-corpus]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.benches.machine import describe_machine
from benchmark.paths import RESULTS_DIR

CORPUS = dict(classes=4, train=40, val=10, test=10, seconds=2.0, sample_rate=16000)  # clips a class and split


def write_corpus(root: Path, seed: int = 0) -> Path:
    """root/{train,validation,test}/<class>/*.wav: a 150 ms tone burst in noise, its band the class's."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sr, n = CORPUS["sample_rate"], round(CORPUS["seconds"] * CORPUS["sample_rate"])
    folders = {"train": "train", "val": "validation", "test": "test"}
    for split, folder in folders.items():
        for c in range(CORPUS["classes"]):
            for i in range(CORPUS[split]):
                wave = 0.3 * rng.standard_normal(n)
                start, length = rng.integers(0, n - 2400), 2400
                freq = 400.0 * 1.5 ** c * (1 + 0.1 * rng.standard_normal())
                t = np.arange(length) / sr
                wave[start:start + length] += 0.4 * np.sin(2 * np.pi * freq * t)
                path = root / folder / f"class{c}" / f"{split}-{c}-{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, wave.astype(np.float32), sr)
    return root


def quick_row(workers: int | None) -> dict:
    from benchmark.plan_cpu import estimate
    from benchmark.study import load_suite
    from benchmark.tracking.numerics import cpu_model

    measured = pd.read_csv(RESULTS_DIR / "quick" / "suite_time.csv")
    totals = measured[measured["task"] == "all"]
    here = totals[totals["machine"].astype(str).str.startswith(f"cpu:{cpu_model()};")]
    total = (here if len(here) else totals).iloc[-1]  # this CPU's measurement where the file has one
    workers = int(total["workers"]) if workers is None else workers
    est = estimate(load_suite("quick"), workers=workers)
    same = len(here) > 0
    return _row("quick", est, float(total["study_wall_s"]) if same else None,
                "results/quick/suite_time.csv" if same else f"not comparable: measured on {total['machine']}")


def corpus_row(workers: int) -> dict:
    from benchmark.plan_cpu import estimate
    from benchmark.study import load_suite

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = write_corpus(Path(tmp) / "corpus")
        env = {**os.environ, "DIFFRES_CACHE_DIR": str(Path(tmp) / "cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
        os.environ["DIFFRES_CACHE_DIR"] = env["DIFFRES_CACHE_DIR"]  # the estimate indexes the corpus there too
        task = f"folder:{root}"
        est = estimate(load_suite("yours", task=task), workers=workers)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchmark", "study", "--suite", "yours", "--task", task,
                        "--n-workers", str(workers), "--results-dir", str(Path(tmp) / "results"),
                        "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}", "--allow-dirty",
                        "--no-progress"], check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    return _row("yours on a user corpus", est, wall, "diffres-bench study timed here (empty cache)")


def _row(suite: str, est, measured: float | None, basis: str) -> dict:
    return {"suite": suite, "points": est.points, "workers": est.workers, "estimate_s": est.wall_s,
            "measured_s": measured, "ratio": est.wall_s / measured if measured else None,
            "calibration_s": est.calibration_s, "measured_from": basis, "epochs_basis": est.epochs_basis,
            "machine": describe_machine(show_threads=False, cores=True)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="default: the measured quick study's, and 2")
    parser.add_argument("--skip-corpus", action="store_true", help="only the quick row (seconds, not minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_plan.csv")
    args = parser.parse_args(argv)
    rows = [quick_row(args.workers)]
    if not args.skip_corpus:
        rows.append(corpus_row(args.workers or 2))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.2f")
    print(table.drop(columns=["machine", "epochs_basis"]).to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
