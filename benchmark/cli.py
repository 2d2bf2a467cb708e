"""The `diffres-bench` console script: its parser and `main`; each command is a function of
`benchmark.commands`, a thin layer over library calls (benchmark.training.train.run, benchmark.study,
benchmark.report, tasks.cli). Bad input ends with one clear line and a non-zero exit.
Each command imports what it needs when it runs: `--help` and `report` do not load Optuna, and a task
whose data is missing is named before any MLflow store is opened.

Exit codes: 0 success; 1 a study ended with failed or unfinished points; 2 bad input (unknown name,
malformed suite, value out of range, unreachable server, a full or unwritable checkpoint or cache
directory); 130 interrupted. A reader that closes stdout early (`| head -1`) is no error: exit 0, quietly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from benchmark import commands
from benchmark.paths import (
    CHECKPOINTS_DIR,
    DEBUG_ENV,
    REPORTS_DIR,
    RESULTS_DIR,
    STORAGE_ENV,
    TRACKING_URI_ENV,
)
from benchmark.tracking.outages import DiskError

_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, ConnectionError, DiskError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose)
    from tasks.data import data_dir_in_environment

    try:
        with data_dir_in_environment(getattr(args, "data_dir", None)):
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("diffres-bench: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        if os.environ.get(DEBUG_ENV):
            raise
        from benchmark.tracking.outages import mask_uri

        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"diffres-bench: error: {mask_uri(str(text))}", file=sys.stderr)
        return 2


def _reader_went_away() -> int:
    """`diffres-bench suites | head -1`: the reader closed the pipe; that is no error. Python would report the
    pipe again when it flushes stdout at exit, so stdout is pointed at /dev/null first (Python's docs, signal)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffres-bench", description="DiffRes benchmark: runs, suites (Optuna studies), workers, reports.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", help="train and evaluate one config (reuses a finished identical run)")
    _add_config_flags(run)
    _add_tracking_flag(run)
    run.add_argument("--experiment", default="runs", help="MLflow experiment name (default: runs)")
    run.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINTS_DIR / "runs",
                     help=f"per-epoch checkpoints (default: {CHECKPOINTS_DIR / 'runs'})")
    _add_data_dir_flag(run)
    run.add_argument("--no-progress", dest="progress", action="store_false")
    run.set_defaults(func=commands.run)

    for name, help_text in (("study", "run a suite's study with local workers (resumes)"),
                            ("reproduce", "run a suite's study, then build its report")):
        cmd = sub.add_parser(name, help=help_text)
        _add_suite_flags(cmd)
        _add_tracking_flag(cmd)
        cmd.add_argument("--n-workers", type=int, default=None,
                         help="local worker processes (default: 1 with a GPU, else one per CPU core, at most 4)")
        _add_worker_flags(cmd)
        _add_data_dir_flag(cmd)
        if name == "reproduce":
            _add_report_dirs(cmd)
        cmd.set_defaults(func=commands.study, report=name == "reproduce")

    make = sub.add_parser("create", help="create a suite's Optuna study and MLflow experiment (before workers)")
    _add_suite_flags(make)
    _add_tracking_flag(make)
    _add_data_dir_flag(make)
    make.set_defaults(func=commands.create)

    work = sub.add_parser("worker", help="join a suite's study (any machine) and train points until done")
    _add_suite_flags(work)
    _add_tracking_flag(work)
    _add_worker_flags(work)
    _add_data_dir_flag(work)
    work.add_argument("--poll-seconds", type=float, default=5.0,
                      help="wait between checks while the last points run elsewhere (default 5)")
    work.set_defaults(func=commands.worker)

    stat = sub.add_parser("status", help="points of a suite done / running / failed / left")
    _add_suite_flags(stat)
    stat.add_argument("--json", action="store_true", help="print a JSON object")
    stat.set_defaults(func=commands.status)

    report = sub.add_parser("report", help="leaderboards, figures and REPORT.md from a suite's MLflow runs")
    report.add_argument("--suite", required=True, help="suite name or YAML path")
    _add_suite_task_flag(report)
    _add_results_dir_flag(report)
    _add_tracking_flag(report)
    _add_report_dirs(report)
    report.set_defaults(func=commands.report)

    for name, kind, what, func in (
            ("compare-claims", "claims", "verdicts side by side and whether they agree, flip or do not replicate",
             commands.compare_claims),
            ("compare-runs", "runs", "run by run: test metrics, differences, how many are identical",
             commands.compare_runs)):
        both = sub.add_parser(name, help=f"two {kind}.csv files (e.g. the committed one and yours): {what}")
        both.add_argument("first", type=Path, help=f"a results/<suite>/{kind}.csv")
        both.add_argument("second", type=Path, help=f"another {kind}.csv (a rerun: other seeds or another machine)")
        both.add_argument("--out", type=Path, required=True, help="CSV to write the side-by-side table to")
        both.set_defaults(func=func)

    plan = sub.add_parser("plan", help="what a suite will cost before it starts: points, downloads, disk, GPU-hours")
    plan.add_argument("--suite", required=True, help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    _add_suite_task_flag(plan)
    plan.add_argument("--device", default=None,
                      help="device name of a row of results/throughput.csv (default: the visible GPU, if any)")
    plan.add_argument("--loader-workers", type=int, default=None,
                      help="loader worker processes per run (default: $DIFFRES_LOADER_WORKERS, else the CUDA default)")
    _add_data_dir_flag(plan)
    plan.set_defaults(func=commands.plan)

    canary = sub.add_parser("canary", help="does this machine compute the committed numbers bit for bit? (seconds)")
    canary.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as CPU suites run)")
    canary.add_argument("--write", action="store_true",
                        help="add this machine's row to results/numerics/canary.csv")
    canary.add_argument("--note", default="", help="with --write: a note for the row (where it ran)")
    canary.set_defaults(func=commands.canary)

    claims = sub.add_parser("claims", help="the paper's claims the report judges: test and arms of each")
    claims.add_argument("--write", action="store_true",
                        help="write benchmark/paper/claims.csv and docs/benchmark.md's claims table from the registry")
    claims.add_argument("--check", action="store_true", help="exit 1 if those files differ from the registry")
    claims.set_defaults(func=commands.claims)

    suites = sub.add_parser("suites", help="list the suites in benchmark/suites with their size, and the templates")
    suites.set_defaults(func=commands.suites)

    from tasks.cli import add_parser as add_tasks_parser

    add_tasks_parser(sub)
    return parser


# ------------------------------------------------------------------------------------------ flags
def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field; unset flags keep the task's recipe (RunConfig.for_task)."""
    from benchmark.config import RunConfig

    parser.add_argument("--task", required=True, help="task name (see `diffres-bench tasks list`), a task YAML "
                                                      "path, or folder:DIR / hear:DIR / manifest:FILE (docs/tasks.md)")
    for f in RunConfig.__dataclass_fields__.values():
        if f.name == "task":
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", default=argparse.SUPPRESS,
                            metavar=str(f.type).replace(" ", "").upper(), help=f"RunConfig.{f.name}")


def _add_suite_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    _add_suite_task_flag(parser)
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV),
                        help=f"Optuna storage: a journal file path or a URL such as postgresql://... "
                             f"(default: ${STORAGE_ENV} or RESULTS_DIR/SUITE/optuna.journal)")
    _add_results_dir_flag(parser)


def _add_results_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"root of a suite's state and CSVs: RESULTS_DIR/SUITE/ holds its Optuna journal, "
                             f"checkpoints/ and the report's CSVs (default: {RESULTS_DIR})")


def _add_suite_task_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=None,
                        help="run the suite on this task (e.g. --suite yours --task folder:DIR): a task name, a task "
                             "YAML, folder:DIR, hear:DIR or manifest:FILE; the suite is named <suite>-<task>")


def _add_tracking_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help=f"MLflow tracking URI (default: ${TRACKING_URI_ENV} or sqlite:///./mlflow.db)")


def _add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    from tasks.data import DATA_DIR_ENV

    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"root of local copies of hub tasks: DATA_DIR/<task>/... (default: ${DATA_DIR_ENV})")


def _add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="per-epoch checkpoints (default: RESULTS_DIR/SUITE/checkpoints)")
    parser.add_argument("--heartbeat-interval", type=int, default=30,
                        help="seconds between trial heartbeats on an RDB storage (default 30)")
    parser.add_argument("--grace-period", type=int, default=None,
                        help="seconds without heartbeat before a trial is failed and retried (default 3x)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="train from uncommitted training code (runs are tagged <commit>-dirty and the report "
                             "keeps them out of its verdicts); refused by default")


def _add_report_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports-dir", type=Path, default=REPORTS_DIR,
                        help=f"figures and REPORT.md (default: {REPORTS_DIR})")
    parser.add_argument("--include-stale", action="store_true",
                        help="decide on runs trained by other training code too (stale, dirty, unknown commits); by "
                             "default only clean-current and clean-equivalent runs are, and REPORT.md lists the others")

def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "urllib3", "matplotlib", "PIL", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
