"""MLflow runs -> leaderboard CSVs, seaborn figures and REPORT.md (the paper's claims re-tested).

Owns everything a user reads after a suite ran. Reads MLflow and the front-end and task registries'
metadata, never the training code, so regenerating a report takes seconds and trains nothing. Same
MLflow contents in, the same CSV and markdown bytes out: every table is sorted, every float has a
fixed format, and nothing time-dependent is written.

    build_report("quick", "sqlite:///mlflow.db")  # results/quick/*.csv, reports/quick/*.png + REPORT.md

One stage per module: ``runs`` (MLflow -> runs table, front-end and task metadata), ``predictions`` (each
run's per-clip test predictions, and a comparison's seeds × clips matrix), ``provenance`` (which code and
numerics trained each run), ``health`` (did each run train), ``leaderboard``, ``stats`` (intervals, tests, Holm,
power), ``clipstats`` (the seeds × clips t, the bootstrap, the exact sign-flip test), ``verdicts`` (deciding a family
of comparisons), ``pairs`` (paired comparisons and their arms), ``claims`` (the paper's claims, registered),
``judging`` (the claims decided on runs), ``controls`` (does the suite detect what it should), ``aacontrol``
(the A/A null control), ``replication`` (decisions on halves of the seeds, and two draws side by side),
``figures``, ``markdown``, and ``build`` (which files, where).
"""

from benchmark.report.build import ReportPaths, build_report, suite_margin
from benchmark.report.claims import CLAIMS_FILE, Claim, ClaimCheck, check_of, paper_claims
from benchmark.report.controls import CONTROL_COLUMNS, ControlResult, check_controls
from benchmark.report.health import Health, health, runs_table
from benchmark.report.judging import COMPARISON_COLUMNS, SUMMARY_COLUMNS, ClaimResult, check_claims, claims_summary
from benchmark.report.leaderboard import leaderboard
from benchmark.report.pairs import compare
from benchmark.report.runs import GROUP_KEYS, NO_FOLD, PAIR_KEYS, ReportDataError, Runs, load_runs

__all__ = [
    "CLAIMS_FILE",
    "COMPARISON_COLUMNS",
    "CONTROL_COLUMNS",
    "GROUP_KEYS",
    "NO_FOLD",
    "PAIR_KEYS",
    "SUMMARY_COLUMNS",
    "Claim",
    "ClaimCheck",
    "ClaimResult",
    "ControlResult",
    "Health",
    "ReportDataError",
    "ReportPaths",
    "Runs",
    "build_report",
    "check_claims",
    "check_controls",
    "check_of",
    "paper_claims",
    "claims_summary",
    "compare",
    "health",
    "leaderboard",
    "load_runs",
    "runs_table",
    "suite_margin",
]
