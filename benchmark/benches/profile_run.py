"""Where one run's time goes: what share is training steps, and what is everything else. Writes
results/profile_run.csv (one row per stage per profiled run, with the machine).

Each run is trained for real (a temporary MLflow store and checkpoint folder, nothing kept) under cProfile, warm
(the store created and the task's clips, waveform cache and statistics built before it starts, as for every run
of a suite but the first on its task); the
stages are the cumulative times of the functions that do them, so they can overlap only where one calls
another (they do not here):

- `train_steps`: `train_one_epoch` (forward, backward, optimiser step, augmentation, batch assembly),
- `validation`: the per-epoch validation pass, `test`: the final test pass (`evaluate`),
- `data`: `load_task_data` (the waveform cache, the features, the train statistics) and `hold_features` (a
  fixed filterbank's output computed once on a CPU),
- `checkpoints`: `save_checkpoint` (every epoch), `compute`: `measure` (FLOPs, parameters and latency of the
  final model, logged with the run),
- `tracking`: MLflow at the start and the end of the run (tags, final metrics, artifacts) and the look-up of a
  finished run,
- `other`: the rest of the run's wall time (model construction, the per-epoch metric logging, the loader).

    python -m benchmark.benches.profile_run [--task map-gap16ms-event15pct] [--frontend diffres] [--rate 0.9]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmark.benches.machine import describe_machine
from benchmark.config import RunConfig
from benchmark.paths import RESULTS_DIR

STAGES = {  # stage -> (module file suffix, function name) whose cumulative time it is
    "train_steps": ("benchmark/training/steps.py", "train_one_epoch"),
    "validation": ("benchmark/training/train.py", "validate"),
    "test": ("benchmark/training/train.py", "evaluate"),
    "data": ("benchmark/training/data.py", "load_task_data"),
    "hold_features": ("benchmark/training/data.py", "hold_features"),
    "checkpoints": ("benchmark/training/checkpoint.py", "save_checkpoint"),
    "compute": ("benchmark/tracking/compute.py", "measure"),
    "tracking": ("benchmark/training/train.py", "_start_tracking"),
    "tracking_finish": ("benchmark/training/train.py", "_finish"),
    "find_finished": ("benchmark/tracking/store.py", "find_finished_run"),
}


def profile(cfg: RunConfig) -> pd.DataFrame:
    from benchmark.tracking.store import ensure_experiment
    from benchmark.training.data import load_task_data
    from benchmark.training.train import run

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="profile-run-") as tmp:
        # warm, as every run of a suite but its task's first finds them: the store and the task's caches exist
        ensure_experiment(f"sqlite:///{Path(tmp) / 'mlflow.db'}", "profile")
        load_task_data(cfg)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        result = run(cfg, tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}", experiment="profile",
                     checkpoint_dir=Path(tmp) / "checkpoints", progress=False)
        profiler.disable()
        wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    # the largest cumulative time of the functions of that name in that file (two `hold_features` in data.py:
    # TaskData's calls each Split's, so the outer one holds both)
    seconds = {stage: max([v[3] for (path, _, name), v in stats.items() if path.endswith(suffix) and name == fn],
                          default=0.0) for stage, (suffix, fn) in STAGES.items()}
    seconds["tracking"] += seconds.pop("tracking_finish") - seconds["compute"] + seconds.pop("find_finished")
    seconds["data"] += seconds.pop("hold_features")
    seconds["other"] = wall - sum(seconds.values())
    return pd.DataFrame({"run": cfg.run_name, "epochs_run": result.epochs_run, "stage": list(seconds),
                         "seconds": list(seconds.values()), "share": [s / wall for s in seconds.values()],
                         "wall_s": wall, "machine": describe_machine(show_threads=False)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", nargs="+", default=["map-gap16ms-event15pct", "toy-rhythm"])
    parser.add_argument("--frontend", default="diffres")
    parser.add_argument("--rate", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "profile_run.csv")
    args = parser.parse_args(argv)
    from benchmark.validation import validate

    tables = [profile(validate(RunConfig(task=task, frontend=args.frontend, reduction_rate=args.rate,
                                         seed=args.seed))) for task in args.task]
    table = pd.concat(tables, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.3f")
    print(table.drop(columns="machine").to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
