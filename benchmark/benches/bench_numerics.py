"""Which CPU settings move a run's numbers, and what pinning them costs: writes results/numerics/isa.csv
(the canary under each setting), results/numerics/isa_runs.csv (whole quick-suite runs under the default
and the pinned instruction set, with `--runs`) and this machine's rows of results/numerics/canary.csv.

Each setting runs in a fresh process (ATen, oneDNN and MKL read their environment once, at first use):
- `default`: the machine's own dispatch;
- one row per variable of `benchmark.tracking.numerics.ISA_PIN` alone, then all of them (`pin-all`);
at 1 and 2 torch threads. A row says whether the canary's digest equals the default's at that thread
count (the setting changes the numbers on this machine) and its ms per step (what it costs: the best of
`REPEATS` further canaries in the same process, so oneDNN's first-use compilation is not counted; run it
on an otherwise idle machine).
`--runs`: the quick suite's 5 `diffres-noenc` runs on the positive control (the runs whose numbers moved
most between an Intel and an AMD machine), default against `pin-all`, 1 thread, run side by
side (one per core): test metric, best epoch, seconds per epoch.

    python -m benchmark.benches.bench_numerics [--runs]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

from benchmark.benches.machine import describe_machine
from benchmark.paths import REPO_ROOT, RESULTS_DIR
from benchmark.tracking.numerics import ISA_PIN

OUT = REPO_ROOT / RESULTS_DIR / "numerics"
SETTINGS = {"default": {}, **{f"{k}={v}": {k: v} for k, v in ISA_PIN.items()}, "pin-all": dict(ISA_PIN)}
REPEATS = 3
RUNS = {"task": "toy-ctrl-sweeps", "frontend": "diffres-noenc"}

_CANARY = """
import json, torch
from benchmark.tracking import numerics
torch.set_num_threads({threads})
c = numerics.canary()
warm = min(numerics.canary().ms_per_step for _ in range({repeats}))  # kernels compiled, caches warm
numerics.write_canary(c, machine_note={note!r}) if {write} else None
print(json.dumps({{"digest": c.digest, "final_loss": c.final_loss, "ms_per_step": round(warm, 1),
                  "cpu_capability": c.cpu_capability}}))
"""

_RUNS = """
import json, sys, tempfile, time
from benchmark.study.suites import load_suite
from benchmark.training.train import run
d = tempfile.mkdtemp()
for cfg in sorted((c for c in load_suite("quick").configs if c.task == {task!r} and c.frontend == {frontend!r}),
                  key=lambda c: c.seed):
    start = time.perf_counter()
    r = run(cfg, tracking_uri=f"sqlite:///{{d}}/mlflow.db", experiment="x", checkpoint_dir=f"{{d}}/ck", progress=False)
    per_epoch = round((time.perf_counter() - start) / r.epochs_run, 2)
    print(json.dumps({{"seed": cfg.seed, "test_metric": r.test_metric, "best_epoch": r.best_epoch,
                      "epochs_run": r.epochs_run, "seconds_per_epoch": per_epoch}}), flush=True)
"""


def _env(setting: dict[str, str], threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ISA_PIN}
    return {**env, **setting, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO_ROOT)}


def canary_rows(note: str) -> list[dict]:
    rows = []
    for threads in (1, 2):
        default = None
        for name, setting in SETTINGS.items():
            code = _CANARY.format(threads=threads, note=note, write=name in ("default", "pin-all"), repeats=REPEATS)
            out = subprocess.run([sys.executable, "-c", code], env=_env(setting, threads), cwd=REPO_ROOT,
                                 capture_output=True, text=True, check=True).stdout
            row = {"setting": name, "threads": threads, **json.loads(out.splitlines()[-1])}
            default = default or row["digest"]
            row["same_as_default"] = row["digest"] == default
            rows.append(row)
            print(row, flush=True)
    return rows


def run_rows() -> list[dict]:
    code = _RUNS.format(**RUNS)
    procs = {name: subprocess.Popen([sys.executable, "-c", code], env=_env(SETTINGS[name], 1), cwd=REPO_ROOT,
                                    stdout=subprocess.PIPE, text=True) for name in ("default", "pin-all")}
    rows = []
    for name, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"the {name} runs failed (exit {proc.returncode})")
        rows += [{"setting": name, **json.loads(line)} for line in out.splitlines() if line.startswith("{")]
    return rows


def _write(path, rows: list[dict], machine: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "machine"])
        writer.writeheader()
        writer.writerows({**r, "machine": machine} for r in rows)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", action="store_true", help="also train the 5 diffres-noenc control runs twice")
    args = parser.parse_args(argv)

    machine = describe_machine(show_threads=False)
    _write(OUT / "isa.csv", canary_rows(note=machine), machine)
    if args.runs:
        _write(OUT / "isa_runs.csv", run_rows(), machine)


if __name__ == "__main__":
    main()
