"""MLflow runs -> leaderboard CSVs, seaborn figures and REPORT.md (the paper's claims re-tested).

Owns everything a user reads after a suite ran. Reads MLflow and the front-end registry's metadata,
never the training code, so regenerating a report takes seconds and trains nothing. Same MLflow
contents in, the same CSV and markdown bytes out: every table is sorted, every float has a fixed
format, and nothing time-dependent is written.

    build_report("quick", "sqlite:///mlflow.db")  # results/quick/*.csv, reports/quick/*.png + REPORT.md

One stage per module: ``runs`` (MLflow -> runs table, front-end metadata), ``leaderboard``,
``claims``, ``figures``, ``markdown``, and ``build`` (which files, where).
"""

from benchmark.report.build import ReportPaths, build_report
from benchmark.report.claims import (
    CLAIMS_FILE,
    COMPARISON_COLUMNS,
    Claim,
    ClaimCheck,
    ClaimResult,
    check_claims,
    claim_checks,
    compare,
    load_claims,
)
from benchmark.report.leaderboard import leaderboard
from benchmark.report.runs import GROUP_KEYS, NO_FOLD, PAIR_KEYS, ReportDataError, Runs, load_runs

__all__ = [
    "CLAIMS_FILE",
    "COMPARISON_COLUMNS",
    "GROUP_KEYS",
    "NO_FOLD",
    "PAIR_KEYS",
    "Claim",
    "ClaimCheck",
    "ClaimResult",
    "ReportDataError",
    "ReportPaths",
    "Runs",
    "build_report",
    "check_claims",
    "claim_checks",
    "compare",
    "leaderboard",
    "load_claims",
    "load_runs",
]
