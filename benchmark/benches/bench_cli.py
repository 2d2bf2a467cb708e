"""How fast the console script answers what needs no training: `--help`, a command's help, and a bad flag,
each as a fresh `python -m benchmark` process, against a process that only does `import torch` (the floor
of every command that trains), measured in the same run on the same machine. Writes results/bench_cli.csv:
one row per case, the median wall time of `--repeats` runs and its ratio to `import torch`."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from benchmark.benches.machine import describe_machine
from benchmark.paths import RESULTS_DIR

CASES = {  # case -> the interpreter's arguments
    "import torch": ["-c", "import torch"],
    "--help": ["-m", "benchmark", "--help"],
    "run --help": ["-m", "benchmark", "run", "--help"],
    "bad flag (study --n-workers two)": ["-m", "benchmark", "study", "--suite", "quick", "--n-workers", "two"],
    "suites": ["-m", "benchmark", "suites"],
}


def wall_seconds(args: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return times


def bench(repeats: int = 5) -> pd.DataFrame:
    rows = []
    for case, args in CASES.items():
        times = wall_seconds(args, repeats)
        rows.append({"case": case, "median_s": statistics.median(times), "min_s": min(times), "repeats": repeats})
    table = pd.DataFrame(rows)
    table["ratio_to_import_torch"] = table["median_s"] / table.loc[table["case"] == "import torch", "median_s"].iloc[0]
    table["machine"] = describe_machine(show_threads=False)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_cli.csv")
    args = parser.parse_args(argv)
    table = bench(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.3f")
    print(table.drop(columns="machine").to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
