"""Soak: a grid of tiny trials run by several workers on one PostgreSQL study and one MLflow server, while
workers are killed with SIGKILL and each service is restarted once; then the outcome is checked and
written to results/soak.csv (columns `COLUMNS`). A script, not a unit test: minutes, not seconds.

    python -m benchmark.benches.soak [--trials 200] [--workers 3] [--seed 0] [--out results/soak.csv]

What it does: starts a throwaway PostgreSQL cluster and an `mlflow server` on 127.0.0.1
(`benchmark.benches.services`), creates the study, starts `--workers` `diffres-bench worker` processes (one torch
thread each), and fires four kinds of event at random progress points (seeded): `--kills` workers killed
with SIGKILL (each replaced by a fresh worker, as a cluster scheduler would), one database restart
(`pg_ctl stop -m fast`, down `--db-down-s`), one tracking server restart (down `--tracking-down-s`, plus
the time it takes to start). Events are at least `EVENT_GAP_S` apart, so a replacement worker has joined
before the next outage. It ends when every worker has exited (the study is done) or after `--deadline-s`,
then kills what is left of its workers and stops both services; nothing it started outlives it.

The check: `points_done` (grid points with a COMPLETE trial), `duplicate_runs` (FINISHED MLflow runs beyond
one per point), `lost_runs` (points without a complete FINISHED run: metrics `test_metric`, `val_metric`,
the artefact config.json). A sound run reads points_done = trials, duplicate_runs = 0, lost_runs = 0.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.benches.machine import describe_machine
from benchmark.benches.services import start_mlflow_server, start_postgres
from benchmark.paths import BACKOFF_MAX_ENV, RESULTS_DIR

COLUMNS = ["trials", "workers", "worker_kills", "db_restarts", "tracking_restarts", "points_done",
           "duplicate_runs", "lost_runs", "wall_s", "machine"]
OUT = RESULTS_DIR / "soak.csv"
EVENT_GAP_S = 15.0
HEARTBEAT_S, GRACE_S = 2, 20  # the grace period outlasts the database restart (a few seconds)

SUITE = """
name: soak
base: {{task: toy-transients, epochs: 3, batch_size: 16, max_train_clips: 64, max_eval_clips: 16,
        backbone: audiocnn_tiny, frontend: spec, reduction_rate: 0.0}}
grids:
  - seed: [{seeds}]
"""


@dataclass
class Soak:
    """The running soak: its workers (pid -> process) and what happened so far."""

    root: Path
    suite_path: Path
    storage: str
    tracking: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    crashed: set[int] = field(default_factory=set)  # pids of workers that exited with an error (replaced)

    def spawn(self) -> None:
        from benchmark import study

        log = self.root / f"worker-{len(self.procs)}.log"
        self.procs.append(study.spawn_worker(self.suite_path, self.storage, self.tracking,
                                             checkpoint_dir=self.root / "ckpt", heartbeat_interval=HEARTBEAT_S,
                                             grace_period=GRACE_S, poll_seconds=1, threads=1, log_file=log))

    def live(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.live())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.counts["worker_kills"] += 1
        print(f"  killed worker pid {victim.pid} (SIGKILL); starting a replacement", flush=True)
        self.spawn()

    def replace_crashed(self, finished: bool) -> None:
        for proc in list(self.procs):
            if proc.returncode not in (None, 0, -signal.SIGKILL) and proc.pid not in self.crashed:
                self.crashed.add(proc.pid)
                print(f"  worker pid {proc.pid} exited with {proc.returncode}; see {self.root}", flush=True)
                if not finished:
                    self.spawn()

    def end(self) -> None:
        for proc in self.live():
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def machine() -> str:


    return describe_machine(cores=True)


def soak(trials: int = 200, workers: int = 3, kills: int = 2, seed: int = 0, db_down_s: float = 3.0,
         tracking_down_s: float = 10.0, deadline_s: float = 1800.0) -> dict[str, object]:
    """Run the soak (see the module docstring); returns the CSV row."""
    from benchmark import study
    from benchmark.study import load_suite, open_storage
    from benchmark.study.states import status_in

    rng = random.Random(seed)
    os.environ.setdefault(BACKOFF_MAX_ENV, "2")  # the workers (children) inherit it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = Path(tempfile.mkdtemp(prefix="diffres-soak-"))
    suite_path = root / "soak.yaml"
    suite_path.write_text(SUITE.format(seeds=", ".join(str(s) for s in range(trials))))
    suite = load_suite(suite_path)
    # events at random fractions of the grid done, in the order drawn
    events = sorted([(rng.uniform(0.10, 0.80), "kill") for _ in range(kills)]
                    + [(rng.uniform(0.15, 0.45), "db"), (rng.uniform(0.50, 0.85), "tracking")])
    print(f"soak: {trials} trials, {workers} workers in {root}; events at "
          + ", ".join(f"{name} {at:.0%}" for at, name in events), flush=True)
    start = time.monotonic()
    with start_postgres() as pg, start_mlflow_server(root / "mlflow") as ml:
        run = Soak(root, suite_path, pg.create_database("soak"), ml.url)
        study.create(suite, run.storage, run.tracking)
        storage_obj = open_storage(run.storage)
        try:
            for _ in range(workers):
                run.spawn()
            last_event = time.monotonic()
            done = 0
            while run.live() and time.monotonic() - start < deadline_s:
                time.sleep(1.0)
                done = status_in(suite, storage_obj).done
                run.replace_crashed(finished=done == trials)
                if events and done >= events[0][0] * trials and time.monotonic() - last_event >= EVENT_GAP_S:
                    _, name = events.pop(0)
                    print(f"[{time.monotonic() - start:6.0f} s] {done}/{trials} done: {name}", flush=True)
                    if name == "kill":
                        run.kill_one(rng)
                    elif name == "db":
                        pg.halt()
                        time.sleep(db_down_s)
                        pg.start()
                        run.counts["db_restarts"] += 1
                    else:
                        ml.halt()
                        time.sleep(tracking_down_s)
                        ml.start()
                        run.counts["tracking_restarts"] += 1
                    last_event = time.monotonic()
        finally:
            run.end()
        wall_s = time.monotonic() - start
        row = {"trials": trials, "workers": workers, **{k: run.counts[k] for k in COLUMNS[2:5]},
               **check(suite, storage_obj, ml.url), "wall_s": round(wall_s, 1), "machine": machine()}
    print("the outages as the workers saw them: " + outage_lines(root), flush=True)
    if run.crashed:
        print(f"soak: {len(run.crashed)} worker(s) exited with an error; logs kept in {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return row


def outage_lines(root: Path) -> str:
    """How often the workers' logs say a service did not answer / answered again (the outages reached them)."""
    text = "".join(log.read_text(errors="replace") for log in sorted(root.glob("worker-*.log")))
    counts = {(service, event): sum(service in line and event in line for line in text.splitlines())
              for service in ("MLflow tracking server", "Optuna storage")
              for event in ("does not answer", "answers again")}
    return "; ".join(f"{service} {event}: {n}" for (service, event), n in counts.items())


def check(suite, storage_obj, tracking_uri: str) -> dict[str, int]:
    """points_done, duplicate_runs, lost_runs (see the module docstring)."""
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from benchmark.tracking import artifacts

    trials = optuna.load_study(study_name=suite.name, storage=storage_obj).get_trials(deepcopy=False)
    done = {t.params["point"] for t in trials if t.state == TrialState.COMPLETE}
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(suite.name)
    finished = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=50000)
    per_point = Counter(r.data.tags.get("config_hash") for r in finished)
    complete = {r.data.tags.get("config_hash") for r in finished
                if {"test_metric", "val_metric"} <= set(r.data.metrics)
                and artifacts.CONFIG_JSON in {a.path for a in client.list_artifacts(r.info.run_id)}}
    return {"points_done": len(done & set(suite.keys)),
            "duplicate_runs": sum(n - 1 for n in per_point.values() if n > 1),
            "lost_runs": sum(key not in complete for key in suite.keys)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db-down-s", type=float, default=3.0)
    parser.add_argument("--tracking-down-s", type=float, default=10.0)
    parser.add_argument("--deadline-s", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    row = soak(args.trials, args.workers, args.kills, args.seed, args.db_down_s, args.tracking_down_s,
               args.deadline_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    print(", ".join(f"{k}={v}" for k, v in row.items()))
    sound = row["points_done"] == row["trials"] and row["duplicate_runs"] == 0 and row["lost_runs"] == 0
    print(f"wrote {args.out}: {'sound' if sound else 'NOT SOUND'}")
    sys.exit(0 if sound else 1)


if __name__ == "__main__":
    main()
