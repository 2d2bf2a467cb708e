"""Does this checkout, on this machine, train a suite's committed runs again to the last digit?

Picks a sample of the runs in `results/<suite>/runs.csv` (one per task x front-end x filterbank x hop x δ,
its lowest seed; every such setting, or `--sample N` of them spread over the list), rebuilds each RunConfig
from the suite by its config hash, trains it
afresh in a throwaway MLflow store, and compares the test metric and final train loss with the committed
row exactly. Writes one row per run (`--out`, default `results/<suite>/recheck.csv`) and prints the count.

Two uses: a user checks in minutes that their machine reproduces the committed runs (a stronger check than
the canary: whole runs of the suite's own configs); and the evidence that a change of the engine moves no
number: each row names the engine digest the committed run was trained at and the one it was retrained at,
and the report's provenance (`benchmark.report.provenance.rechecked_digests`) counts a suite's runs of an
older digest as clean-equivalent when this file shows every rerun of that digest under the checkout's
identical (the steps chain: `rechecked_digests`). Run it on the CPU model that trained the runs (the `machine`
column says which); without that machine, `--runs` a runs.csv of this machine's own runs at the older digest.

    python -m benchmark.benches.recheck --suite quick [--sample N] [--out FILE]      (make recheck SUITE=quick)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.benches.machine import describe_machine
from benchmark.paths import suite_results_dir
from benchmark.report.leaderboard import FLOAT_FORMAT
from benchmark.study import load_suite
from benchmark.tracking.engine import engine_digest
from benchmark.tracking.provenance import git_commit

COLUMNS = ["task", "frontend", "filterbank", "hop_ms", "reduction_rate", "seed", "config_hash", "committed_test",
           "rerun_test", "committed_train_loss", "rerun_train_loss", "identical", "commit", "machine",
           "committed_engine_digest", "engine_digest"]
STRATA = ["task", "frontend", "filterbank", "hop_ms", "reduction_rate"]


def sample_runs(runs: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """One run per stratum (STRATA present in the table), its lowest seed; every stratum, or `n` of them spread
    evenly over the sorted strata."""
    keys = [k for k in STRATA if k in runs.columns]
    used = runs[runs["used"].astype(str) == "True"] if "used" in runs.columns else runs
    first = used.sort_values([*keys, "seed"]).groupby(keys, dropna=False, sort=True).head(1).reset_index(drop=True)
    if n is None or n >= len(first):
        return first
    return first.iloc[np.unique(np.linspace(0, len(first) - 1, n).round().astype(int))].reset_index(drop=True)


def recheck(suite_name: str, sample: int | None = None, runs_csv: Path | None = None,
            exclude: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The sampled runs retrained and compared (COLUMNS); `exclude`: column -> values whose runs are left out
    (e.g. {"filterbank": ["leaf"]} where a setting costs too much to recheck)."""
    from benchmark.training.train import run

    suite = load_suite(suite_name)
    runs_csv = runs_csv or suite_results_dir(suite.name) / "runs.csv"
    committed = pd.read_csv(runs_csv)
    for column, values in (exclude or {}).items():
        if column not in committed.columns:
            raise ValueError(f"{runs_csv}: no column {column!r} to exclude by (columns: {list(committed.columns)})")
        committed = committed[~committed[column].astype(str).isin(values)]
    by_hash = {cfg.config_hash: cfg for cfg in suite.configs}
    chosen = sample_runs(committed, sample)
    unknown = sorted(set(chosen["config_hash"]) - set(by_hash))
    if unknown:
        raise ValueError(f"{runs_csv}: field 'config_hash', value {unknown[0]!r}: not a point of suite "
                         f"{suite.name!r} as this checkout defines it")
    commit = git_commit()  # "-dirty" when the training code is uncommitted: no evidence for any commit
    digest = engine_digest()
    rows = []
    with tempfile.TemporaryDirectory(prefix="recheck-") as tmp:
        for _, row in chosen.iterrows():
            cfg = by_hash[row["config_hash"]]
            result = run(cfg, tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment="recheck",
                         checkpoint_dir=Path(tmp) / "ckpt", progress=False)
            loss = _final_train_loss(f"sqlite:///{tmp}/mlflow.db", result.run_id)
            same = _as_written(result.test_metric) == _as_written(row["test_metric"]) and (
                "final_train_loss" not in row or _as_written(loss) == _as_written(row["final_train_loss"]))
            rows.append({**{k: row.get(k) for k in STRATA}, "seed": row["seed"], "config_hash": row["config_hash"],
                         "committed_test": row["test_metric"], "rerun_test": result.test_metric,
                         "committed_train_loss": row.get("final_train_loss"), "rerun_train_loss": loss,
                         "identical": bool(same), "commit": commit, "machine": describe_machine(show_threads=False),
                         "committed_engine_digest": row.get("engine_digest", ""), "engine_digest": digest})
            print(f"{row['config_hash']} {cfg.task} {cfg.frontend}: committed {row['test_metric']}, "
                  f"rerun {result.test_metric} ({'identical' if same else 'DIFFERENT'})", flush=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def _as_written(value: float) -> str:
    """A number as runs.csv writes it (the committed file's precision is what can be compared)."""
    return FLOAT_FORMAT % float(value)


def _final_train_loss(uri: str, run_id: str) -> float:
    import mlflow

    return float(mlflow.MlflowClient(uri).get_run(run_id).data.metrics.get("final_train_loss", float("nan")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--sample", type=int, default=None,
                        help="runs to retrain, one per setting spread over them (default: every setting)")
    parser.add_argument("--runs", type=Path, default=None, help="the committed runs.csv (default results/<suite>/)")
    parser.add_argument("--out", type=Path, default=None, help="default results/<suite>/recheck.csv")
    parser.add_argument("--exclude", action="append", default=[], metavar="COLUMN=V1,V2",
                        help="leave out the runs whose runs.csv COLUMN is one of the values (repeatable)")
    args = parser.parse_args(argv)
    exclude = {}
    for item in args.exclude:
        column, _, values = item.partition("=")
        if not values:
            parser.error(f"--exclude {item!r}: expected COLUMN=V1,V2")
        exclude[column] = values.split(",")
    table = recheck(args.suite, args.sample, args.runs, exclude)
    out = args.out or suite_results_dir(load_suite(args.suite).name) / "recheck.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"{int(table['identical'].sum())} of {len(table)} runs identical to the committed ones; written to {out}")
    return 0 if table["identical"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
