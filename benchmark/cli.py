"""The `diffres-bench` console script: a thin layer over library calls (benchmark.train.run,
benchmark.study, benchmark.report, tasks.cli). Bad input ends with one clear line and a non-zero exit.
Each command imports what it needs when it runs: `--help` and `report` do not load Optuna, and a task
whose data is missing is named before any MLflow store is opened.

Exit codes: 0 success; 1 a study ended with failed or unfinished points; 2 bad input (unknown name,
malformed suite, value out of range, unreachable server, a full or unwritable checkpoint or cache
directory); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from benchmark.outages import DiskError
from benchmark.paths import (
    CHECKPOINTS_DIR,
    REPORTS_DIR,
    RESULTS_DIR,
    STORAGE_ENV,
    TRACKING_URI_ENV,
    default_tracking_uri,
)

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
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("diffres-bench: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        if os.environ.get("DIFFRES_BENCH_DEBUG"):
            raise
        from benchmark.tracking import mask_uri

        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"diffres-bench: error: {mask_uri(str(text))}", file=sys.stderr)
        return 2


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
    run.set_defaults(func=_cmd_run)

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
        cmd.set_defaults(func=_cmd_study, report=name == "reproduce")

    make = sub.add_parser("create", help="create a suite's Optuna study and MLflow experiment (before workers)")
    _add_suite_flags(make)
    _add_tracking_flag(make)
    _add_data_dir_flag(make)
    make.set_defaults(func=_cmd_create)

    work = sub.add_parser("worker", help="join a suite's study (any machine) and train points until done")
    _add_suite_flags(work)
    _add_tracking_flag(work)
    _add_worker_flags(work)
    _add_data_dir_flag(work)
    work.add_argument("--poll-seconds", type=float, default=5.0,
                      help="wait between checks while the last points run elsewhere (default 5)")
    work.set_defaults(func=_cmd_worker)

    stat = sub.add_parser("status", help="points of a suite done / running / failed / left")
    _add_suite_flags(stat)
    stat.add_argument("--json", action="store_true", help="print a JSON object")
    stat.set_defaults(func=_cmd_status)

    report = sub.add_parser("report", help="leaderboards, figures and REPORT.md from a suite's MLflow runs")
    report.add_argument("--suite", required=True, help="suite name or YAML path")
    _add_suite_task_flag(report)
    _add_tracking_flag(report)
    _add_report_dirs(report)
    report.set_defaults(func=_cmd_report)

    for name, kind, what, func in (
            ("compare-claims", "claims", "verdicts side by side and whether they agree, flip or do not replicate",
             _cmd_compare_claims),
            ("compare-runs", "runs", "run by run: test metrics, differences, how many are identical",
             _cmd_compare_runs)):
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
    plan.set_defaults(func=_cmd_plan)

    canary = sub.add_parser("canary", help="does this machine compute the committed numbers bit for bit? (seconds)")
    canary.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as CPU suites run)")
    canary.add_argument("--write", action="store_true",
                        help="add this machine's row to results/numerics/canary.csv")
    canary.add_argument("--note", default="", help="with --write: a note for the row (where it ran)")
    canary.set_defaults(func=_cmd_canary)

    suites = sub.add_parser("suites", help="list the suites in benchmark/suites with their size, and the templates")
    suites.set_defaults(func=_cmd_suites)

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
                             f"(default: ${STORAGE_ENV} or {RESULTS_DIR}/SUITE/optuna.journal)")


def _add_suite_task_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=None,
                        help="run the suite on this task (e.g. --suite yours --task folder:DIR): a task name, a task "
                             "YAML, folder:DIR, hear:DIR or manifest:FILE; the suite is named <suite>-<task>")


def _suite(args: argparse.Namespace) -> Any:
    """The suite of `--suite` (and `--task`): its name or path as given, or loaded on the task."""
    if args.task is None:
        return args.suite
    from benchmark.study.suites import load_suite

    return load_suite(args.suite, task=args.task)


def _add_tracking_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help=f"MLflow tracking URI (default: ${TRACKING_URI_ENV} or sqlite:///./mlflow.db)")


def _add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    from tasks.data import DATA_DIR_ENV

    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"root of local copies of hub tasks: DATA_DIR/<task>/... (default: ${DATA_DIR_ENV})")


def _add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help=f"per-epoch checkpoints (default: {CHECKPOINTS_DIR}/SUITE)")
    parser.add_argument("--heartbeat-interval", type=int, default=30,
                        help="seconds between trial heartbeats on an RDB storage (default 30)")
    parser.add_argument("--grace-period", type=int, default=None,
                        help="seconds without heartbeat before a trial is failed and retried (default 3x)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="train from uncommitted training code (runs are tagged <commit>-dirty and the report "
                             "keeps them out of its verdicts); refused by default")


def _add_report_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=f"CSVs (default: {RESULTS_DIR})")
    parser.add_argument("--reports-dir", type=Path, default=REPORTS_DIR,
                        help=f"figures and REPORT.md (default: {REPORTS_DIR})")
    parser.add_argument("--include-stale", action="store_true",
                        help="decide on runs trained by other training code too (stale, dirty, unknown commits); "
                             "by default only clean-current runs are, and REPORT.md lists the others")


# --------------------------------------------------------------------------------------- commands
def _cmd_run(args: argparse.Namespace) -> int:
    from benchmark import tracking
    from benchmark.config import RunConfig
    from benchmark.pretrained import check_pretrained
    from benchmark.study import check_task_data
    from benchmark.train import run
    from tasks import get_task

    get_task(args.task)  # an unknown task is named before the recipe lookup
    overrides = {k.removeprefix("cfg_"): v for k, v in vars(args).items() if k.startswith("cfg_")}
    cfg = RunConfig.for_task(args.task, **overrides)
    check_task_data([cfg.task], args.data_dir)  # before the MLflow store: creating it takes seconds
    check_pretrained([cfg])
    tracking_uri = args.tracking_uri or default_tracking_uri()
    tracking.check_tracking_uri(tracking_uri)
    result = run(cfg, tracking_uri=tracking_uri, experiment=args.experiment,
                 checkpoint_dir=args.checkpoint_dir, progress=args.progress, data_dir=args.data_dir)
    print(json.dumps({"run_name": cfg.run_name, "config_hash": cfg.config_hash, "run_id": result.run_id,
                      "val_metric": result.val_metric, "test_metric": result.test_metric,
                      "reused": result.reused}))
    return 0


def _require_provenance(args: argparse.Namespace) -> None:
    """Refuse to train from uncommitted code unless asked; local workers inherit the permission."""
    from benchmark.paths import ALLOW_DIRTY_ENV
    from benchmark.provenance import require_clean_tree

    commit = require_clean_tree(args.allow_dirty)
    if args.allow_dirty:
        os.environ[ALLOW_DIRTY_ENV] = "1"
    logging.getLogger("benchmark").info("training code at %s", commit)


def _cmd_study(args: argparse.Namespace) -> int:
    from benchmark.plan import plan_suite

    _require_provenance(args)
    suite = _suite(args)
    print(plan_suite(suite, data_dir=args.data_dir), flush=True)  # what it will cost, before anything starts
    study = _studies(args.verbose)
    final = study.run_study(suite, args.storage, args.tracking_uri, n_workers=args.n_workers,
                            checkpoint_dir=args.checkpoint_dir, heartbeat_interval=args.heartbeat_interval,
                            grace_period=args.grace_period, progress=args.progress, data_dir=args.data_dir)
    print(final)
    if args.report:
        _report(suite, args.tracking_uri, args.results_dir, args.reports_dir, args.include_stale)
    return _study_exit(final)


def _cmd_create(args: argparse.Namespace) -> int:
    suite = _studies(args.verbose).create(_suite(args), args.storage, args.tracking_uri, data_dir=args.data_dir)
    print(f"created {suite.name}: {len(suite.configs)} points")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    _require_provenance(args)
    final = _studies(args.verbose).worker(
        _suite(args), args.storage, args.tracking_uri, checkpoint_dir=args.checkpoint_dir,
        heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
        poll_seconds=args.poll_seconds, progress=args.progress, data_dir=args.data_dir)
    print(final)
    return _study_exit(final)


def _cmd_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    current = _studies(args.verbose).status(_suite(args), args.storage)
    print(json.dumps(asdict(current)) if args.json else current)
    return 0


def _cmd_canary(args: argparse.Namespace) -> int:
    import torch

    from benchmark import numerics

    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: expected an integer >= 1")
    torch.set_num_threads(args.threads)
    result = numerics.canary()
    print(f"canary {result.digest} (loss {result.final_loss}) on {result.cpu}, {result.cpu_capability}, "
          f"{result.threads} thread(s){', ' + result.isa_env if result.isa_env else ''}, "
          f"{result.ms_per_step:.1f} ms/step")
    print(numerics.verdict(result))
    if args.write:
        numerics.write_canary(result, machine_note=args.note)
        print(f"written to {numerics.CANARY_CSV}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    _report(_suite(args), args.tracking_uri, args.results_dir, args.reports_dir, args.include_stale)
    return 0


def _cmd_compare_claims(args: argparse.Namespace) -> int:
    from benchmark.report.leaderboard import write_csv
    from benchmark.report.replication import compare_claims_files, counts_text

    table = compare_claims_files(args.first, args.second)
    write_csv(table, args.out)
    print(f"{counts_text(table)}; written to {args.out}")
    return 0


def _cmd_compare_runs(args: argparse.Namespace) -> int:
    from benchmark.report.leaderboard import write_csv
    from benchmark.report.replication import compare_runs_files, runs_counts_text

    table = compare_runs_files(args.first, args.second)
    write_csv(table, args.out)
    print(f"{runs_counts_text(table)}; written to {args.out}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from benchmark.plan import plan_suite

    if args.loader_workers is not None and args.loader_workers < 0:
        raise ValueError(f"--loader-workers {args.loader_workers}: expected an integer >= 0")
    print(plan_suite(_suite(args), device=args.device, loader_workers=args.loader_workers, data_dir=args.data_dir))
    return 0


def _cmd_suites(args: argparse.Namespace) -> int:
    import yaml

    from benchmark.study import list_suites, load_suite
    from benchmark.study.suites import TEMPLATES_DIR, list_templates

    for name in list_suites():
        suite = load_suite(name)
        mode = f"search {suite.n_trials} trials x " if suite.search else ""
        print(f"{name:14s} {mode}{len(suite.configs)} points  {suite.description.splitlines()[0]}")
    for name in list_templates():
        description = str(yaml.safe_load((TEMPLATES_DIR / f"{name}.yaml").read_text()).get("description", ""))
        print(f"{name:14s} template (--suite {name} --task TASK)  {description.strip().splitlines()[0]}")
    return 0


def _report(suite_arg: Any, tracking_uri: str | None, results_dir: Path, reports_dir: Path,
            include_stale: bool = False) -> Any:
    """The report of a suite given by name or YAML path (its name and its margin come from the YAML)."""
    from benchmark.report import build_report
    from benchmark.study import load_suite
    from benchmark.tracking import check_tracking_uri

    suite = load_suite(suite_arg)
    tracking_uri = tracking_uri or default_tracking_uri()
    check_tracking_uri(tracking_uri)
    paths = build_report(suite.name, tracking_uri, results_dir=results_dir, reports_dir=reports_dir,
                         margin=suite.margin, points=[cfg.config_hash for cfg in suite.configs],
                         include_stale=include_stale)
    print(f"report: {paths}")
    return paths


def _studies(verbose: bool) -> Any:
    """`benchmark.study`, with Optuna's own log lines at WARNING (DEBUG with -v)."""
    import optuna

    from benchmark import study

    optuna.logging.set_verbosity(optuna.logging.DEBUG if verbose else optuna.logging.WARNING)
    return study


def _study_exit(final: Any) -> int:
    if final.finished:
        return 0
    print(f"diffres-bench: {final.total - final.done} point(s) not done ({final.failed} failed); run the same "
          f"command again to retry them, `diffres-bench status --suite {final.suite}` to check",
          file=sys.stderr)
    return 1


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "urllib3", "matplotlib", "PIL", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
