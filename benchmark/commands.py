"""What each `diffres-bench` command does (`benchmark.cli` parses the arguments and calls one of these with
them). Each imports what it needs when it runs, so `--help` and `report` do not load Optuna."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from benchmark.paths import default_tracking_uri, store_exists


def _suite(args: argparse.Namespace) -> Any:
    """The suite of `--suite` (and `--task`): its name or path as given, or loaded on the task."""
    if args.task is None:
        return args.suite
    from benchmark.study.suites import load_suite

    return load_suite(args.suite, task=args.task)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import RunConfig
    from benchmark.model.pretrained import check_pretrained
    from benchmark.study import check_task_data
    from benchmark.tracking import store as tracking
    from benchmark.training.train import run
    from benchmark.validation import validate
    from tasks import get_task

    get_task(args.task)  # an unknown task is named before the recipe lookup
    overrides = {k.removeprefix("cfg_"): v for k, v in vars(args).items() if k.startswith("cfg_")}
    cfg = validate(RunConfig.for_task(args.task, **overrides))
    check_task_data([cfg.task], args.data_dir)  # before the MLflow store: creating it takes seconds
    check_pretrained([cfg])
    tracking_uri = args.tracking_uri or default_tracking_uri()
    if not store_exists(tracking_uri):
        # A new store is created only once the clips decode: a bad clip fails here, naming its file, and leaves
        # nothing behind. (With a store, `run` first looks for a finished identical run, which needs no clips.)
        from benchmark.training.data import load_task_data

        load_task_data(cfg, args.data_dir)
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
    from benchmark.tracking.provenance import require_clean_tree

    commit = require_clean_tree(args.allow_dirty)
    if args.allow_dirty:
        os.environ[ALLOW_DIRTY_ENV] = "1"
    logging.getLogger("benchmark").info("training code at %s", commit)


def study(args: argparse.Namespace) -> int:
    from benchmark.plan import plan_suite

    _require_provenance(args)
    suite = _suite(args)
    print(plan_suite(suite, data_dir=args.data_dir), flush=True)  # what it will cost, before anything starts
    study = _studies(args.verbose)
    final = study.run_study(suite, args.storage, args.tracking_uri, n_workers=args.n_workers,
                            checkpoint_dir=args.checkpoint_dir, heartbeat_interval=args.heartbeat_interval,
                            grace_period=args.grace_period, progress=args.progress, data_dir=args.data_dir,
                            results_dir=args.results_dir)
    print(final)
    if args.report:
        _report(suite, args.tracking_uri, args.results_dir, args.reports_dir, args.include_stale)
    return _study_exit(final)


def create(args: argparse.Namespace) -> int:
    suite = _studies(args.verbose).create(_suite(args), args.storage, args.tracking_uri, data_dir=args.data_dir,
                                          results_dir=args.results_dir)
    print(f"created {suite.name}: {len(suite.configs)} points")
    return 0


def worker(args: argparse.Namespace) -> int:
    _require_provenance(args)
    final = _studies(args.verbose).worker(
        _suite(args), args.storage, args.tracking_uri, checkpoint_dir=args.checkpoint_dir,
        heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
        poll_seconds=args.poll_seconds, progress=args.progress, data_dir=args.data_dir,
        results_dir=args.results_dir)
    print(final)
    return _study_exit(final)


def status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    current = _studies(args.verbose).status(_suite(args), args.storage, results_dir=args.results_dir)
    print(json.dumps(asdict(current)) if args.json else current)
    return 0


def clean(args: argparse.Namespace) -> int:
    removed, size = _studies(args.verbose).clean_checkpoints(_suite(args), args.storage, results_dir=args.results_dir,
                                                             checkpoint_dir=args.checkpoint_dir)
    print(f"removed the checkpoints of {len(removed)} finished point(s), {size / 2**20:.1f} MiB; the checkpoints of "
          f"points not finished are kept")
    return 0


def canary(args: argparse.Namespace) -> int:
    import torch

    from benchmark.tracking import numerics

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


def report(args: argparse.Namespace) -> int:
    if args.runs is not None:
        _report_runs(args.runs, args.tracking_uri, args.results_dir, args.reports_dir, args.include_stale)
        return 0
    _report(_suite(args), args.tracking_uri, args.results_dir, args.reports_dir, args.include_stale)
    return 0


def _report_runs(experiment: str, tracking_uri: str | None, results_dir: Path, reports_dir: Path,
                 include_stale: bool) -> Any:
    """The report of single runs (an MLflow experiment without a suite file): every finished run of it."""
    from benchmark.report import build_report

    tracking_uri = tracking_uri or default_tracking_uri()
    if not store_exists(tracking_uri):
        raise FileNotFoundError(f"no MLflow store at {tracking_uri.removeprefix('sqlite:///')}: no runs to report "
                                f"(train one with `diffres-bench run`, or pass --tracking-uri)")
    paths = build_report(experiment, tracking_uri, results_dir=results_dir, reports_dir=reports_dir, points=None,
                         include_stale=include_stale)
    print(report_line(paths))
    return paths


def compare_claims(args: argparse.Namespace) -> int:
    from benchmark.report.leaderboard import write_csv
    from benchmark.report.replication import compare_claims_files, counts_text

    table = compare_claims_files(args.first, args.second)
    write_csv(table, args.out)
    print(f"{counts_text(table)}; written to {args.out}")
    return 0


def compare_draws(args: argparse.Namespace) -> int:
    from benchmark.report.acrossdraws import across_draws, across_text
    from benchmark.report.build import suite_aa_controls
    from benchmark.report.leaderboard import write_csv
    from benchmark.study import load_suite

    first, second = load_suite(args.first), load_suite(args.second)
    table = across_draws(args.results_dir / first.name, args.results_dir / second.name,
                         list(suite_aa_controls(first.name)), list(suite_aa_controls(second.name)))
    write_csv(table, args.out)
    print(f"{across_text(table)}; written to {args.out}")
    return 1 if (table["outcome"] != "passed").any() else 0


def compare_runs(args: argparse.Namespace) -> int:
    from benchmark.report.leaderboard import write_csv
    from benchmark.report.replication import compare_runs_files, runs_counts_text

    table = compare_runs_files(args.first, args.second)
    write_csv(table, args.out)
    print(f"{runs_counts_text(table)}; written to {args.out}")
    return 0


def plan(args: argparse.Namespace) -> int:
    from benchmark.plan import plan_suite

    if args.loader_workers is not None and args.loader_workers < 0:
        raise ValueError(f"--loader-workers {args.loader_workers}: expected an integer >= 0")
    if args.n_workers is not None and args.n_workers < 1:
        raise ValueError(f"--n-workers {args.n_workers}: expected an integer >= 1")
    from benchmark.study.suites import load_suite

    suite = load_suite(_suite(args))
    print(plan_suite(suite, device=args.device, loader_workers=args.loader_workers, data_dir=args.data_dir),
          flush=True)
    if args.cpu_estimate is None:
        import torch

        args.cpu_estimate = not torch.cuda.is_available()
    if args.cpu_estimate:
        from benchmark.plan_cpu import estimate

        print(estimate(suite, workers=args.n_workers))
    return 0


def claims(args: argparse.Namespace) -> int:
    from benchmark.report import claims as registered

    if args.check:
        stale = registered.stale_files()
        print("\n".join(f"out of date (run diffres-bench claims --write): {p}" for p in stale)
              or "claims files are current")
        return 1 if stale else 0
    if args.write:
        print("wrote " + ", ".join(str(p) for p in registered.write_files()))
        return 0
    print(registered.docs_table(markers=False))
    return 0


def suites(args: argparse.Namespace) -> int:
    import yaml

    from benchmark.study import list_suites, load_suite
    from benchmark.study.suites import TEMPLATES_DIR, list_templates

    for name in list_suites():
        suite = load_suite(name, validated=False)  # a listing counts points; `plan` and `study` check them
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
    from benchmark.tracking.store import check_tracking_uri

    suite = load_suite(suite_arg)
    tracking_uri = tracking_uri or default_tracking_uri()
    if not store_exists(tracking_uri):  # a report reads: it never creates an empty store
        raise FileNotFoundError(f"no MLflow store at {tracking_uri.removeprefix('sqlite:///')}: nothing to report "
                                f"for suite {suite.name!r} (run `diffres-bench study --suite {suite.name}` first, "
                                f"or pass --tracking-uri / set MLFLOW_TRACKING_URI to the store its runs are in)")
    check_tracking_uri(tracking_uri)
    paths = build_report(suite.name, tracking_uri, results_dir=results_dir, reports_dir=reports_dir,
                         margin=suite.margin, points=[cfg.config_hash for cfg in suite.configs],
                         include_stale=include_stale)
    print(report_line(paths))
    return paths


def report_line(paths: Any) -> str:
    """The last line of `report` and `reproduce`, for a person: where REPORT.md and the CSVs are."""
    skipped = f"; {len(paths.skipped)} figure(s) or claim(s) skipped (REPORT.md says why)" if paths.skipped else ""
    return (f"report: {paths.report} ({len(paths.figures)} figure(s)); tables in {paths.leaderboard.parent}/ "
            f"(leaderboard.csv, claims.csv, runs.csv){skipped}")


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


