"""The resolution map's cells decided from a suite's committed files: `results/<suite>/runs.csv` and
`predictions.parquet` in, `results/<suite>/map_cells.csv` and one heatmap per comparison out
(`reports/<suite>/map_<comparison>.png`, `benchmark.report.resolution_map`). No MLflow store is needed.

A cell is a task of the family (its dials from the task registry, `TaskSpec.dials`) at one δ. In each cell
DiffRes is compared with each other arm the suite ran at that δ (`avgpool`, `maxpool`) and with the spectrogram
(`spec`, its δ = 0 runs), pairs matched on seed; every comparison of the suite is one Holm family, decided by
the rule of the claims (`verdicts.decide_table`: the seeds x clips t where every run kept its per-clip
predictions, a superiority test read both ways: holds = DiffRes better, refuted = DiffRes worse).

    python -m benchmark.report.map_cells --suite resolution-map-slice
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmark.paths import REPORTS_DIR, RESULTS_DIR
from benchmark.report import stats
from benchmark.report.predictions import correctness
from benchmark.report.resolution_map import plot_resolution_map
from benchmark.report.verdicts import PAIRS, decide_table

TREATMENT = "diffres"
REFERENCE = "spec"
OUT_COLUMNS = ["gap_ms", "fraction", "reduction_rate", "comparison", "task", "n_pairs", "mean_diff", "ci_low",
               "ci_high", "verdict", "rule", "n_clips", "p_verdict", "p_exact", "treatment_mean", "control_mean"]


def comparisons(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, δ, control arm): DiffRes against that arm, seeds paired, with the pairs for the clips."""
    rows = []
    for (task, rate), arm in runs[runs["frontend"] == TREATMENT].groupby(["task", "reduction_rate"]):
        treated = arm.set_index("seed")
        same_task = runs[runs["task"] == task]
        at_rate = same_task[same_task["reduction_rate"] == rate]
        controls = {f: g for f, g in at_rate.groupby("frontend") if f != TREATMENT}
        controls[REFERENCE] = same_task[same_task["frontend"] == REFERENCE]
        for name, control in controls.items():
            control = control.set_index("seed")
            seeds = sorted(set(treated.index) & set(control.index))
            if not seeds:
                continue
            t, c = treated.loc[seeds, "test_metric"], control.loc[seeds, "test_metric"]
            diff = stats.paired_difference(t.to_numpy(), c.to_numpy())
            rows.append({"task": task, "reduction_rate": float(rate), "comparison": f"{TREATMENT} - {name}",
                         "n_pairs": diff.n_pairs, "mean_diff": diff.mean_diff, "std_diff": diff.std_diff,
                         "ci95_low": diff.ci_low, "ci95_high": diff.ci_high, "treatment_mean": float(t.mean()),
                         "control_mean": float(c.mean()),
                         PAIRS: [(treated.loc[s, "config_hash"], control.loc[s, "config_hash"],
                                  float(treated.loc[s, "test_metric"] - control.loc[s, "test_metric"]))
                                 for s in seeds]})
    return pd.DataFrame(rows)


def decide_cells(runs: pd.DataFrame, predictions: pd.DataFrame | None, margin: float = 0.0) -> pd.DataFrame:
    """Every cell x comparison decided as one Holm family (module docstring), with the cell's dials."""
    from tasks import get_task

    comps = comparisons(runs)
    if comps.empty:
        raise ValueError("no DiffRes run with a comparable arm (avgpool, maxpool at its δ, or spec) in the runs")
    decided = decide_table(comps, stats.SUPERIORITY, margin, correctness(predictions))
    dials = {task: dict(get_task(task).dials) for task in decided["task"].unique()}
    missing = [t for t, d in dials.items() if not {"gap_ms", "fraction"} <= set(d)]
    if missing:
        raise ValueError(f"task {missing[0]!r} has no resolution-map dials (TaskSpec.dials): not a cell of the "
                         f"family")
    decided["gap_ms"] = decided["task"].map(lambda t: dials[t]["gap_ms"])
    decided["fraction"] = decided["task"].map(lambda t: dials[t]["fraction"])
    decided = decided.rename(columns={"ci_low_bonferroni": "ci_low", "ci_high_bonferroni": "ci_high"})
    return decided[OUT_COLUMNS].sort_values(["comparison", "gap_ms", "fraction", "reduction_rate"]).reset_index(
        drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--reports-dir", type=Path, default=REPORTS_DIR)
    args = parser.parse_args(argv)
    results = args.results_dir / args.suite
    runs = pd.read_csv(results / "runs.csv")
    if "used" in runs.columns:  # the report's choice: the runs its verdicts read
        runs = runs[runs["used"].astype(str) == "True"]
    predictions = pd.read_parquet(results / "predictions.parquet") if (results / "predictions.parquet").exists() \
        else None
    cells = decide_cells(runs, predictions)
    cells.to_csv(results / "map_cells.csv", index=False, float_format="%.6g")
    for comparison, rows in cells.groupby("comparison"):
        name = comparison.replace(" - ", "_minus_")
        plot_resolution_map(rows, args.reports_dir / args.suite / f"map_{name}.png",
                            what=comparison.replace(" - ", " − ").replace("diffres", "DiffRes"))
    with pd.option_context("display.width", 200):
        print(cells.drop(columns=["task"]).to_string(index=False))
    print(f"wrote {results / 'map_cells.csv'} and {len(cells['comparison'].unique())} figure(s) in "
          f"{args.reports_dir / args.suite}")


if __name__ == "__main__":
    main()
