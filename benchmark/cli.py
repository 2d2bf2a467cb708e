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
    DATA_DIR_ENV,
    DEBUG_ENV,
    REPORTS_DIR,
    RESULTS_DIR,
    STORAGE_ENV,
    TRACKING_URI_ENV,
    default_tracking_uri,
)
from benchmark.tracking.outages import DiskError

_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, ConnectionError, DiskError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(tasks=False)  # the `tasks` group imports torch: only built when it is the command
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "tasks_deferred", False):
        parser = build_parser()
        args = parser.parse_args(argv)
    elif unknown:
        parser.parse_args(argv)  # the error argparse gives for them, naming the command's usage
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose)
    if hasattr(args, "tracking_uri") and args.tracking_uri is None and hasattr(args, "results_dir"):
        args.tracking_uri = default_tracking_uri(args.results_dir)  # --results-dir moves the MLflow store too
    from tasks.cache import data_dir_in_environment

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


def build_parser(tasks: bool = True) -> argparse.ArgumentParser:
    """The console script's parser. `tasks=False`: the `tasks` group is a stand-in that takes any arguments
    (`main` builds the full parser when it is the command), so that `--help` and every other command's
    flag errors answer without importing torch (the tasks package imports it)."""
    parser = argparse.ArgumentParser(
        prog="diffres-bench", description="DiffRes benchmark: runs, suites (Optuna studies), workers, reports.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="train and evaluate one config (reuses a finished identical run)",
        description="Train and evaluate one config. A flag you leave unset takes the task's recipe\n"
                    "(benchmark.training.recipes), else the default shown.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  diffres-bench run --task toy-transients --frontend avgpool --reduction-rate 0.5 --epochs 2\n"
               "  diffres-bench run --task folder:DIR --backbone audiocnn_tiny --seed 1\n"
               "  diffres-bench run --task esc50 --fold 1 --data-dir DATA  (a local copy of a hub task)")
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

    tidy = sub.add_parser("clean", help="delete the checkpoints of a suite's finished points (resumes keep theirs)")
    _add_suite_flags(tidy)
    tidy.add_argument("--checkpoint-dir", type=Path, default=None,
                      help="per-epoch checkpoints (default: RESULTS_DIR/SUITE/checkpoints)")
    tidy.set_defaults(func=commands.clean)

    report = sub.add_parser("report", help="leaderboards, figures and REPORT.md from a suite's MLflow runs (or, with "
                                           "--runs, from single `run`s)")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--suite", help="suite name or YAML path")
    source.add_argument("--runs", nargs="?", const="runs", default=None, metavar="EXPERIMENT",
                        help="the single runs of `diffres-bench run` (their MLflow experiment, default: runs): the "
                             "same leaderboard, claims and figures, every finished run of it")
    _add_suite_task_flag(report)
    _add_results_dir_flag(report)
    _add_tracking_flag(report)
    _add_report_dirs(report)
    report.set_defaults(func=commands.report)

    for name, kind, what, func in (
            ("compare-claims", "claims", "verdicts side by side in four classes: decided-agree, undecided in "
                                         "both, decided in one only, flip (two controls.csv files work too)",
             commands.compare_claims),
            ("compare-runs", "runs", "run by run: test metrics, differences, how many are identical",
             commands.compare_runs)):
        both = sub.add_parser(name, help=f"two {kind}.csv files (e.g. the committed one and yours): {what}")
        both.add_argument("first", type=Path, help=f"a results/<suite>/{kind}.csv")
        both.add_argument("second", type=Path, help=f"another {kind}.csv (a rerun: other seeds or another machine)")
        both.add_argument("--out", type=Path, required=True, help="CSV to write the side-by-side table to")
        both.set_defaults(func=func)

    draws = sub.add_parser("compare-draws", help="the A/A control across draws: each suite's A/A setting (stream A) "
                                                 "on a suite's draw against its replication's, seeds x clips")
    draws.add_argument("first", help="a suite (e.g. quick)")
    draws.add_argument("second", help="its replication on new clips and seeds (e.g. quick-replication)")
    _add_results_dir_flag(draws)
    draws.add_argument("--out", type=Path, required=True, help="CSV to write the comparison to")
    draws.set_defaults(func=commands.compare_draws)

    plan = sub.add_parser("plan", help="what a suite will cost before it starts: points, downloads, disk, GPU-hours, "
                                         "CPU wall time here")
    plan.add_argument("--suite", required=True, help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    _add_suite_task_flag(plan)
    plan.add_argument("--device", default=None,
                      help="device name of a row of results/throughput.csv (default: the visible GPU, if any)")
    plan.add_argument("--loader-workers", type=int, default=None,
                      help="loader worker processes per run (default: $DIFFRES_LOADER_WORKERS, else the CUDA default)")
    plan.add_argument("--n-workers", type=int, default=None,
                      help="local workers of the CPU estimate (default: the study's, one per core, at most 4)")
    plan.add_argument("--cpu-estimate", action=argparse.BooleanOptionalAction, default=None,
                      help="the CPU wall-time estimate, which times each model shape here for a few seconds "
                           "(default: on when no GPU is visible)")
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

    if not tasks:
        stand_in = sub.add_parser("tasks", help="list, describe and prepare tasks", add_help=False)
        stand_in.set_defaults(tasks_deferred=True)  # its arguments are left to parse_known_args
        return parser
    from tasks.cli import add_parser as add_tasks_parser

    add_tasks_parser(sub)
    return parser


# ------------------------------------------------------------------------------------------ flags
# What each RunConfig flag means, its unit and its choices, for `run --help` (the checks that enforce them are
# RunConfig's; registries that need torch to list are named, not listed, so `--help` answers at once).
_FIELD_HELP = {
    "fold": "k-fold tasks: the test fold (see `diffres-bench tasks info TASK`)",
    "backbone": "timm model name, or audiocnn_tiny (the CPU backbone)",
    "frontend": "one of avgmaxpool, avgpool, changehop, convavgpool, diffres, diffres-noenc, diffres-separable, "
                "maxpool, pool3ch, spec (no reduction), specpool",
    "hop_ms": "STFT hop, ms", "reduction_rate": "δ: fraction of frames removed, in (0, 1) (spec: ignored)",
    "n_mels": "mel bands", "win_ms": "STFT window, ms", "seed": "random seed, >= 0",
    "optimizer": "one of adam, adamw", "lr": "learning rate", "beta1": "Adam β1, in [0, 1)",
    "beta2": "Adam β2, in [0, 1)", "weight_decay": "L2 weight decay", "lr_decay": "lr factor per decay step, (0, 1]",
    "lr_decay_every": "epochs between lr decay steps", "lr_decay_from": "epoch of the first lr decay",
    "epochs": "epochs (at most, with --patience)", "batch_size": "clips per batch",
    "freq_mask": "SpecAugment frequency mask, mel bins", "time_mask_ms": "SpecAugment time mask, ms",
    "mixup_alpha": "mixup Beta(α, α) parameter", "mixup_prob": "probability of mixup per batch, in [0, 1]",
    "guide_loss_weight": "weight of DiffRes's guide loss", "loss": "one of auto, ce, bce (auto: by the task's labels)",
    "amp": "true|false: autocast on CUDA (a CPU always runs float32)",
    "pretrained_weights": "local state_dict file for the backbone (no hub downloads)",
    "max_train_clips": "a fixed subset of the training split, clips (tiny runs)",
    "max_eval_clips": "a fixed subset of val and test, clips (tiny runs)",
    "patience": "epochs without a new best val metric before stopping (None: all epochs)",
    "warmup_epochs": "linear lr warm-up, epochs", "min_epochs": "epochs before early stopping may end a run",
    "pretrained": "none | imagenet | a weights file (via timm)", "head": "one of linear, attention",
    "balanced_sampling": "true|false: inverse label frequency sampler",
    "weight_averaging": "none | A-B: mean of the weights of epochs A..B",
    "batch_size_scales_with_rate": "true|false: batch size / (1 - δ)",
    "filterbank": "one of mel (the cached log-mel), efficientleaf, leaf, sincnet, tdfbanks (learned)",
    "cpu_threads": "torch threads on a CPU (part of a run's identity; ignored on a GPU)",
    "data_seed": "draw of a generated task's clips (0: the task's own; another: new train/val/test clips)",
    "task_files": "a user corpus's fingerprint (filled in when the task is a corpus; leave unset)",
}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field; unset flags keep the task's recipe (RunConfig.for_task)."""
    from dataclasses import MISSING

    from benchmark.config import RunConfig

    parser.add_argument("--task", required=True, help="task name (see `diffres-bench tasks list`), a task YAML "
                                                      "path, or folder:DIR / hear:DIR / manifest:FILE (docs/tasks.md)")
    for f in RunConfig.__dataclass_fields__.values():
        if f.name == "task":
            continue
        default = f.default if f.default is not MISSING else None
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", default=argparse.SUPPRESS,
                            metavar=str(f.type).replace(" ", "").upper(),
                            help=f"{_FIELD_HELP.get(f.name, f.name)} (default: {default})".replace("%", "%%"))


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
                        help=f"MLflow tracking URI (default: ${TRACKING_URI_ENV}, else mlflow.db in --results-dir when "
                             f"one is given, else sqlite:///./mlflow.db)")


def _add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
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
