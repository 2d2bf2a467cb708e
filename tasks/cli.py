"""`diffres-bench tasks list | info TASK | prepare TASK | inspect SOURCE`: thin calls of the tasks library.
TASK is a registered name, a task YAML path or a shorthand (`folder:DIR`, `hear:DIR`, `manifest:FILE`).

benchmark/cli.py registers this group with `tasks.cli.add_parser(subparsers)`; each handler takes
the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys

from tasks.features import FeatureConfig, load_features
from tasks.registry import list_tasks
from tasks.resolve import get_task


def describe(name: str) -> str:
    spec = get_task(name)
    lines = [
        f"name:         {spec.name}",
        f"classes:      {spec.num_classes} ({spec.label_kind}-label, metric {spec.metric}, "
        f"chance {spec.chance_level:.4f})",
        f"audio:        {spec.sample_rate} Hz, {spec.clip_seconds:g} s clips",
        f"folds:        {spec.folds if spec.folds else 'none (official splits)'}",
        f"source:       {spec.source}",
        f"protocol:     {spec.protocol}",
    ]
    if spec.parquet.repo is not None:
        lines.append(f"hub:          {spec.parquet.repo} @ {spec.parquet.revision}")
        lines.append(f"download:     {spec.parquet.download_command(f'<data-dir>/{spec.name}')}")
    files = ", ".join(p for pats in spec.parquet.data_files.values() for p in pats)
    if spec.local is None:
        lines.append(f"local layout: <data-dir>/{spec.name}/{{{files}}}")
    if spec.parquet.note:
        lines.append(f"note:         {spec.parquet.note}")
    names = ", ".join(spec.class_names[:8]) + (", ..." if spec.num_classes > 8 else "")
    lines.append(f"class names:  {names}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    for name in list_tasks():
        spec = get_task(name)
        kind = "embedded" if spec.is_embedded else (spec.parquet.repo or "local copy")
        print(f"{name:18s} {spec.num_classes:4d} classes  {spec.metric:8s}  {spec.clip_seconds:>4g} s  {kind}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(describe(args.name))
    return 0


def prepare(name: str, hop_ms: list[float], n_mels: int = 64, win_ms: float = 25.0, sample_rate: int = 16000,
            folds: list[int] | None = None, data_dir: str | None = None, progress: bool = True) -> list[str]:
    """Download/generate every split (and fold), decode it once into the waveform cache, and compute the train
    split's log-mel statistics at each hop (the log-mel itself is computed on the run's device)."""
    spec = get_task(name)
    fold_list: list[int | None] = list(folds or range(1, spec.folds + 1)) if spec.folds else [None]
    done = []
    for hop in hop_ms:
        cfg = FeatureConfig(sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop)
        for fold in fold_list:
            for split in spec.splits:
                fs = load_features(name, split, cfg, fold=fold, data_dir=data_dir, progress=progress)
                done.append(f"{spec.name} fold={fold} {split}: {len(fs)} clips, logmel "
                            f"[{cfg.num_frames(spec.clip_seconds)}, {n_mels}] at hop {hop:g} ms")
    return done


def cmd_inspect(args: argparse.Namespace) -> int:
    from tasks.inspect import inspect_source

    result = inspect_source(args.source, data_dir=args.data_dir)
    print(result.text)
    return 2 if result.problems else 0  # bad input, as every command exits


def cmd_prepare(args: argparse.Namespace) -> int:
    for line in prepare(args.name, args.hop_ms, n_mels=args.n_mels, win_ms=args.win_ms,
                        sample_rate=args.sample_rate, folds=args.fold, data_dir=args.data_dir):
        print(line)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("tasks", help="list, describe and prepare tasks")
    sub = parser.add_subparsers(dest="tasks_command", required=True)
    p = sub.add_parser("list", help="list the registered tasks")
    p.set_defaults(func=cmd_list)
    task_help = "task name (see `tasks list`), task YAML path, or folder:DIR / hear:DIR / manifest:FILE"
    p = sub.add_parser("info", help="describe one task: source, revision, protocol, local layout")
    p.add_argument("name", help=task_help)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("prepare", help="download/generate a task: its waveform cache, log-mel statistics per hop")
    p.add_argument("name", help=task_help)
    p.add_argument("--hop-ms", type=float, nargs="+", default=[10.0], help="hop size(s) in ms (default 10)")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--win-ms", type=float, default=25.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--fold", type=int, nargs="+", default=None, help="k-fold tasks: folds to prepare (default all)")
    p.add_argument("--data-dir", default=None,
                   help="root of local copies: <data-dir>/<task>/... (default: $DIFFRES_DATA_DIR)")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("inspect", help="your corpus before it trains: classes, clips per split/fold, clip lengths, "
                                       "sample rates, label balance, problems (exit 2 when there are problems)")
    p.add_argument("source", help="a task YAML path (a hub dataset's too), or folder:DIR / hear:DIR / manifest:FILE")
    p.add_argument("--data-dir", default=None,
                   help="a hub dataset's local copies: <data-dir>/<task>/... (default: $DIFFRES_DATA_DIR)")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m tasks.cli ...`); errors print one line and exit non-zero."""
    parser = argparse.ArgumentParser(prog="diffres-bench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    from tasks.cache import data_dir_in_environment

    try:
        with data_dir_in_environment(getattr(args, "data_dir", None)):
            return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
