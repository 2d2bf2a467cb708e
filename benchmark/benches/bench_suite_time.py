"""End-to-end time of a suite's study, read back from its Optuna storage: writes results/<suite>/suite_time.csv.

Nothing is re-run: every trial carries its start and end time and the worker (host, pid) that ran it,
so the wall time of `make reproduce` (first trial start to last trial end, summed over the studies of an
edited suite), the summed training time and the mean time per task x front-end x filterbank come from
the studies that produced the committed results.

    python -m benchmark.benches.bench_suite_time --suite quick [--storage URL]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from benchmark.benches.machine import describe_machine
from benchmark.paths import default_storage, suite_results_dir
from benchmark.study import load_suite, open_storage
from benchmark.tracking.outages import mask_uri

GROUP = ("task", "frontend", "filterbank")  # RunConfig fields a row of the CSV sums over


def suite_times(suite_name: str, storage: str | None = None) -> pd.DataFrame:
    """One row per task x front-end x filterbank (``GROUP``) plus an `all` row: trials trained, seconds per
    trial, summed and wall time.

    A suite edited after its study existed has earlier studies kept as `<suite>@<time>` in the same
    storage (`benchmark.study.workers`), and its unchanged points were trained there (the current study
    only marks them `reused`). Every study is read: a current point counts once, with the trial that
    trained it, and the wall time is the sum over studies of each one's first trial start to last end
    (the time between two studies, when nothing ran, is not counted; `studies` says how many).
    """
    suite = load_suite(suite_name)  # a name or a path
    storage = storage or default_storage(suite.name)
    opened = open_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)
             if s.study_name == suite.name or s.study_name.startswith(f"{suite.name}@")]
    by_hash = {cfg.config_hash: cfg for cfg in suite.configs}
    trained: dict[str, tuple[str, object]] = {}  # point -> (study, trial); the latest study wins
    for name in sorted(names, key=lambda n: (n != suite.name, n)):  # current study first
        for t in optuna.load_study(study_name=name, storage=opened).get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,)):
            point = t.params.get("point")
            if (point in by_hash and point not in trained and not t.user_attrs.get("reused")
                    and t.datetime_start and t.datetime_complete):
                trained[point] = (name, t)
    if not trained:
        raise SystemExit(f"suite {suite.name!r}: no completed, trained trials in {mask_uri(storage)}")
    rows = pd.DataFrame({
        **{key: [getattr(by_hash[point], key) for point in trained] for key in GROUP},
        "study": [name for name, _ in trained.values()],
        "start": [t.datetime_start for _, t in trained.values()],
        "end": [t.datetime_complete for _, t in trained.values()],
        "worker": [str(t.user_attrs.get("worker", {}).get("pid")) for _, t in trained.values()],
    })
    rows["seconds"] = (rows["end"] - rows["start"]).dt.total_seconds()
    spans = rows.groupby("study").agg(start=("start", "min"), end=("end", "max"))
    wall = (spans["end"] - spans["start"]).dt.total_seconds().sum()
    summary = rows.groupby(list(GROUP))["seconds"].agg(trials="count", mean_s="mean", sum_s="sum").reset_index()
    total = pd.DataFrame([{**{key: "all" for key in GROUP}, "trials": len(rows), "mean_s": rows["seconds"].mean(),
                           "sum_s": rows["seconds"].sum()}])
    out = pd.concat([summary, total], ignore_index=True)
    out.insert(0, "suite", suite.name)
    out["study_wall_s"] = wall
    out["studies"] = len(spans)
    out["workers"] = rows["worker"].nunique()
    out["machine"] = describe_machine(show_threads=False)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--storage", default=None, help="Optuna storage (default: the suite's journal file)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/<suite>/suite_time.csv")
    args = parser.parse_args(argv)
    table = suite_times(args.suite, args.storage)
    out = args.out or suite_results_dir(args.suite) / "suite_time.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.2f")
    with pd.option_context("display.width", 160):
        print(table.drop(columns="machine").to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
