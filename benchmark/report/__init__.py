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

import importlib
from typing import Any

# Every public name and its module, imported on first use: `import benchmark.report.stats` (or `.claims`) then
# costs only that module, not seaborn and the whole report.
_EXPORTS = {
    "ReportPaths": "benchmark.report.build",
    "build_report": "benchmark.report.build",
    "suite_margin": "benchmark.report.build",
    "CLAIMS_FILE": "benchmark.report.claims",
    "Claim": "benchmark.report.claims",
    "ClaimCheck": "benchmark.report.claims",
    "check_of": "benchmark.report.claims",
    "paper_claims": "benchmark.report.claims",
    "CONTROL_COLUMNS": "benchmark.report.controls",
    "ControlResult": "benchmark.report.controls",
    "check_controls": "benchmark.report.controls",
    "Health": "benchmark.report.health",
    "health": "benchmark.report.health",
    "runs_table": "benchmark.report.health",
    "COMPARISON_COLUMNS": "benchmark.report.judging",
    "SUMMARY_COLUMNS": "benchmark.report.judging",
    "ClaimResult": "benchmark.report.judging",
    "check_claims": "benchmark.report.judging",
    "claims_summary": "benchmark.report.judging",
    "leaderboard": "benchmark.report.leaderboard",
    "compare": "benchmark.report.pairs",
    "GROUP_KEYS": "benchmark.report.runs",
    "NO_FOLD": "benchmark.report.runs",
    "PAIR_KEYS": "benchmark.report.runs",
    "ReportDataError": "benchmark.report.runs",
    "Runs": "benchmark.report.runs",
    "load_runs": "benchmark.report.runs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'benchmark.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

