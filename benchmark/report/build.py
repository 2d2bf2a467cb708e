"""``build_report``: one suite's MLflow runs -> results/<suite>/*.csv, reports/<suite>/*.png + REPORT.md.

The one place that decides which files a report consists of and where they go; the numbers come
from ``leaderboard``, ``claims``, ``controls`` and ``health``, the pictures from ``figures``, the text
from ``markdown``. The non-inferiority margin is the suite YAML's ``margin`` (benchmark/suites/<suite>.yaml,
``Suite.margin``) when that file exists, else ``stats.DEFAULT_MARGIN``; REPORT.md says which.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns

from benchmark.paths import REPO_ROOT, REPORTS_DIR, RESULTS_DIR, SUITES_DIR
from benchmark.report import stats
from benchmark.report.aacontrol import AAControl, check_aa, parse_aa_controls, second_streams_apart
from benchmark.report.claims import paper_claims
from benchmark.report.controls import CONTROL_COLUMNS, check_controls
from benchmark.report.figures import (
    plot_accuracy_vs_flops,
    plot_accuracy_vs_hop,
    plot_accuracy_vs_latency,
    plot_accuracy_vs_rate,
    plot_diffres_examples,
)
from benchmark.report.health import health, runs_table
from benchmark.report.judging import COMPARISON_COLUMNS, check_claims, claims_summary
from benchmark.report.leaderboard import BASELINE_HOP_MS, leaderboard, write_csv
from benchmark.report.markdown import render_markdown
from benchmark.report.pairs import full_diffres
from benchmark.report.predictions import PREDICTION_TABLE_COLUMNS
from benchmark.report.provenance import DECIDABLE, provenance_column
from benchmark.report.replication import replication
from benchmark.report.runs import ReportDataError, Runs, download_examples, load_runs
from benchmark.tracking import artifacts

REPORT_FILE = "REPORT.md"
LEADERBOARD_CSV = "leaderboard.csv"
COMPARISONS_CSV = "claims.csv"
SUMMARY_CSV = "claims_summary.csv"
CONTROLS_CSV = "controls.csv"
RUNS_CSV = "runs.csv"
RECHECK_CSV = "recheck.csv"  # written by benchmark.benches.recheck, read as provenance evidence
REPLICATION_CSV = "replication.csv"
PREDICTIONS_PARQUET = "predictions.parquet"  # every used run's per-clip predictions, keyed by config hash
EXAMPLE_CANDIDATES = 5  # runs tried, best first, for a task's DiffRes example figure


@dataclass(frozen=True)
class ReportPaths:
    """Where build_report wrote its outputs."""

    leaderboard: Path
    task_tables: tuple[Path, ...]
    comparisons: Path
    figures: tuple[Path, ...]
    report: Path
    skipped: tuple[str, ...]  # one line per figure/claim that could not be produced, with the reason
    claims_summary: Path
    controls: Path
    runs: Path
    margin: float  # the non-inferiority margin the claims were tested with
    replication: Path | None = None
    predictions: Path | None = None


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _example_candidates(runs: Runs, task: str) -> pd.DataFrame:
    """Full-DiffRes runs of ``task``, the one nearest 10 ms and δ = 0.5 first."""
    df = runs.table
    rows = df[(df["task"] == task) & full_diffres(df)]
    return rows.assign(_hop=(rows["hop_ms"] - BASELINE_HOP_MS).abs(),
                       _rate=(rows["reduction_rate"] - 0.5).abs()).sort_values(
        ["_hop", "_rate", "backbone", "seed", "fold", "run_id"])


PLOTS = [
    ("Accuracy vs compute per task (Pareto front marked; points of equal compute spread ≤ 4 % "
     "sideways)", "accuracy_vs_flops.png", plot_accuracy_vs_flops,
     "no run logged flops_total"),
    ("Accuracy vs measured latency per clip from the waveform (batch 1, the run's threads; a learnable "
     "filterbank's cost as it runs, beside its FLOPs)", "accuracy_vs_latency.png", plot_accuracy_vs_latency,
     "no run logged latency_pipeline_ms"),
    ("Accuracy vs reduction rate δ per front-end", "accuracy_vs_reduction_rate.png", plot_accuracy_vs_rate,
     "fewer than two reduction rates at the reference hop"),
    ("Accuracy vs input hop size (tasks with ≥ 2 hops)", "accuracy_vs_hop.png", plot_accuracy_vs_hop,
     "no task has more than one input hop size"),
]


def suite_margin(suite: str) -> tuple[float, str]:
    """The suite YAML's ``margin`` and where it came from; the default when no benchmark/suites/<suite>.yaml."""
    loaded = _suite_file(suite)
    if loaded is None:
        return stats.DEFAULT_MARGIN, f"default `stats.DEFAULT_MARGIN`: no suite file {suite}.yaml in benchmark/suites"
    return loaded.margin, (f"key `margin` of benchmark/suites/{suite}.yaml; {stats.DEFAULT_MARGIN:g} when the "
                           "file sets none")


def suite_points(suite: str) -> frozenset[str] | None:
    """Config hashes of benchmark/suites/<suite>.yaml's points; None (read every run) without that file."""
    loaded = _suite_file(suite)
    return None if loaded is None else frozenset(cfg.config_hash for cfg in loaded.configs)


def suite_aa_controls(suite: str) -> tuple[AAControl, ...]:
    """The A/A null controls benchmark/suites/<suite>.yaml declares (``aa_control``); () without that file."""
    loaded = _suite_file(suite)
    return () if loaded is None else tuple(parse_aa_controls(loaded.aa_control, str(loaded.path)))


def write_predictions(runs: Runs, path: Path) -> Path:
    """results/<suite>/predictions.parquet: PREDICTION_TABLE_COLUMNS of the runs the report decided on, sorted."""
    table = runs.predictions if runs.predictions is not None else pd.DataFrame(columns=PREDICTION_TABLE_COLUMNS)
    used = table[table["config_hash"].isin(runs.table["config_hash"])] if "config_hash" in runs.table.columns \
        else table.iloc[:0]
    path.parent.mkdir(parents=True, exist_ok=True)
    used[PREDICTION_TABLE_COLUMNS].reset_index(drop=True).to_parquet(path, index=False)
    return path


def _suite_file(suite: str):
    path = SUITES_DIR / f"{suite}.yaml"
    if not path.is_file():
        return None
    from benchmark.study.suites import load_suite

    return load_suite(path)


def with_provenance(runs: Runs, repo: Path, include_stale: bool,
                    recheck: pd.DataFrame | None = None) -> tuple[Runs, Runs]:
    """(every run with its ``provenance`` column, the runs the report decides on): only the clean-current and
    clean-equivalent ones unless ``include_stale``; ``recheck``: the suite's recheck.csv, the evidence that runs of
    an older engine digest compute what the checkout does. No run left to decide on is a clear error naming the
    flag."""
    table = runs.table.assign(provenance=provenance_column(runs.table, repo, recheck))
    superseded = runs.superseded
    if superseded is not None:
        superseded = superseded.assign(provenance=provenance_column(superseded, repo, recheck))
    every = dataclasses.replace(runs, table=table, superseded=superseded)
    if include_stale:
        return every, every
    kept = table[table["provenance"].isin(DECIDABLE)].reset_index(drop=True)
    if kept.empty:
        counts = table["provenance"].value_counts().sort_index().to_dict()
        raise ReportDataError(f"none of the {len(table)} runs was trained by the current training code "
                              f"(provenance {counts}); rerun them, or build the report with --include-stale "
                              "(include_stale=True) to decide on them anyway")
    return every, dataclasses.replace(runs, table=kept)


def build_report(suite: str, tracking_uri: str, results_dir: Path = RESULTS_DIR,
                 reports_dir: Path = REPORTS_DIR, margin: float | None = None,
                 points: Collection[str] | None = None, include_stale: bool = False,
                 repo: Path = REPO_ROOT) -> ReportPaths:
    """Read suite's finished MLflow runs; write the CSVs, figures and REPORT.md. Trains nothing.

    ``margin``: the non-inferiority margin; None reads it from the suite YAML (``suite_margin``).
    ``points``: config hashes of the suite's current points (runs of other points are set aside);
    None reads them from the suite YAML when there is one (``suite_points``), else keeps every run.
    ``include_stale``: decide on every run, not only those trained by the training code of ``repo``'s
    HEAD (``provenance``); REPORT.md then says so at the top.
    """
    margin, margin_source = suite_margin(suite) if margin is None else (float(margin), "given to build_report")
    results = Path(results_dir) / suite
    recheck = pd.read_csv(results / RECHECK_CSV) if (results / RECHECK_CSV).is_file() else None
    every, runs = with_provenance(load_runs(suite, tracking_uri, suite_points(suite) if points is None else points),
                                  Path(repo), include_stale, recheck)
    report_dir = Path(reports_dir) / suite
    report_dir.mkdir(parents=True, exist_ok=True)

    lb = leaderboard(runs)
    leaderboard_csv = write_csv(lb, results / LEADERBOARD_CSV)
    task_tables = {task: write_csv(rows, results / f"{safe_name(task)}.csv")
                   for task, rows in lb.groupby("task", sort=True)}

    runs_csv = write_csv(runs_table(every), results / RUNS_CSV)
    aa = suite_aa_controls(suite)
    paired = second_streams_apart(runs, aa)  # an A/A control's second stream serves that control alone
    claim_results = check_claims(paired, paper_claims(), margin)
    comps = [c.comparisons.assign(claim_id=c.claim.claim_id) for c in claim_results if not c.comparisons.empty]
    all_comps = (pd.concat(comps, ignore_index=True) if comps else pd.DataFrame(columns=COMPARISON_COLUMNS))
    comparisons_csv = write_csv(all_comps[COMPARISON_COLUMNS], results / COMPARISONS_CSV)
    summary = claims_summary(claim_results)
    summary_csv = write_csv(summary, results / SUMMARY_CSV)
    control_results = [*check_controls(paired), *check_aa(runs, aa)]
    ctrl = [c.comparisons for c in control_results if not c.comparisons.empty]
    controls_csv = write_csv(pd.concat(ctrl, ignore_index=True) if ctrl else pd.DataFrame(columns=CONTROL_COLUMNS),
                             results / CONTROLS_CSV)

    replicated = replication(runs, paper_claims(), margin, aa)
    replication_csv = write_csv(replicated, results / REPLICATION_CSV)
    predictions_parquet = write_predictions(runs, results / PREDICTIONS_PARQUET)

    figures: list[tuple[str, Path]] = []
    skipped: list[str] = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        for caption, name, plot, reason in PLOTS:
            path = plot(lb, report_dir / name, runs.extra_keys)
            if path is None:
                skipped.append(f"{name}: {reason}")
            else:
                figures.append((caption, path))
        with tempfile.TemporaryDirectory() as tmp:
            for task in sorted(lb["task"].unique()):
                name = f"diffres_examples_{safe_name(task)}.png"
                candidates = _example_candidates(runs, task)
                drawn = False
                for i, (_, run) in enumerate(candidates.head(EXAMPLE_CANDIDATES).iterrows()):
                    arrays = download_examples(run["run_id"], tracking_uri, Path(tmp) / f"{task}-{i}")
                    if arrays is not None:
                        figures.append((f"DiffRes on {task}: input, importance score, merged frames, "
                                        "resolution encoding", plot_diffres_examples(arrays, run, report_dir / name)))
                        drawn = True
                        break
                if not drawn:
                    skipped.append(f"{name}: no finished diffres run of {task} has a {artifacts.EXAMPLES_NPZ} "
                                   "artifact")

    files = {"comparisons": comparisons_csv, "summary": summary_csv, "controls": controls_csv, "runs": runs_csv,
             "replication": replication_csv}
    markdown = render_markdown(suite, runs, lb, claim_results, summary, control_results, health(runs), margin,
                               margin_source, figures, skipped, task_tables, files, report_dir,
                               every=every, include_stale=include_stale, replicated=replicated)
    report = report_dir / REPORT_FILE
    report.write_text(markdown, encoding="utf-8")
    skipped += [f"claim {c.claim.claim_id}: {c.reading}" for c in claim_results if c.not_run]
    skipped += [f"control {c.task}: not run: {c.text}" for c in control_results if c.not_run]
    return ReportPaths(leaderboard_csv, tuple(task_tables[t] for t in sorted(task_tables)), comparisons_csv,
                       tuple(p for _, p in figures), report, tuple(skipped), summary_csv, controls_csv, runs_csv,
                       margin, replication_csv, predictions_parquet)
