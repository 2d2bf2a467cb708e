"""A manifest: a CSV or JSONL file with one row per clip (`audiofolder`'s `metadata.csv` convention).

Columns: `file_name` (a path relative to the root: the manifest's folder unless `root` is declared), the
label column (`label_column`, default `label`: one class name, or several joined by `label_separator`,
which makes the task multi-label), optional `split` (train / validation / test) or `fold` (1..k or
0..k-1: a k-fold task). Without either, a seeded stratified split. Class index = position in `classes`
when declared, else in the sorted set of names found.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.sources.corpus import Clip, Corpus, TaskFileError, file_error, inside, register_source, split_name

FILE_COLUMN = "file_name"


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a .csv or .jsonl manifest."""
    if not path.is_file():
        raise file_error(path, "manifest", str(path), "an existing .csv or .jsonl file")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return [(i + 2, row) for i, row in enumerate(csv.DictReader(f))]
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise file_error(f"{path} line {i + 1}", "(row)", line[:60], f"a JSON object ({err})") from None
                if not isinstance(row, dict):
                    raise file_error(f"{path} line {i + 1}", "(row)", line[:60], "a JSON object")
                rows.append((i + 1, row))
        return rows
    raise file_error(path, "manifest", path.suffix, "a .csv or .jsonl file")


@register_source("manifest", required="manifest")
def read_manifest(decl: Mapping[str, Any]) -> Corpus:
    path = Path(decl["manifest"])
    root = Path(decl.get("root") or path.parent)
    label_col = str(decl.get("label_column", "label"))
    sep = decl.get("label_separator")
    rows = read_rows(path)
    if not rows:
        raise TaskFileError(f"{path}: no rows (a manifest needs one row per clip)")
    columns = set(rows[0][1])
    for needed in (FILE_COLUMN, label_col):
        if needed not in columns:
            raise file_error(path, needed, None, f"a column named {needed!r} (found columns {sorted(columns)})")
    fold_col = "fold" if "fold" in columns else None
    split_col = "split" if "split" in columns and fold_col is None else None
    clips, seen = [], set()
    for line, row in rows:
        where = f"{path} line {line}"
        rel = str(row.get(FILE_COLUMN) or "")
        target = inside(root, rel, where, FILE_COLUMN)
        rel = target.relative_to(root.resolve()).as_posix()
        if rel in seen:
            raise file_error(where, FILE_COLUMN, rel, "a file listed once (it is listed twice)")
        seen.add(rel)
        raw = row.get(label_col)
        names = _labels(raw, sep, where, label_col)
        split = split_name(row[split_col], where, "split") if split_col else None
        fold = _fold(row[fold_col], where) if fold_col else None
        clips.append(Clip(path=target, rel=rel, labels=names, split=split, fold=fold))
    folds = None
    if fold_col:
        found = sorted({c.fold for c in clips})
        shift = 1 if found[0] == 0 else 0  # 0-based folds (fold00 ...) become 1..k
        if [f + shift for f in found] != list(range(1, len(found) + 1)) or len(found) < 3:
            raise file_error(path, "fold", found, "3 or more folds numbered 1..k (or 0..k-1), none missing")
        clips = [Clip(c.path, c.rel, c.labels, None, c.fold + shift) for c in clips]
        folds = len(found)
    classes = _classes(decl, clips, path, label_col)
    rule = "the manifest's `fold` column" if fold_col else "the manifest's `split` column" if split_col else ""
    return Corpus(root=root, clips=clips, classes=classes, multi=sep is not None, folds=folds,
                  meta_files=[path], rule=rule)


def _labels(raw: Any, sep: Any, where: str, column: str) -> tuple[str, ...]:
    if isinstance(raw, list):  # JSONL may hold a list of names
        names = [str(x).strip() for x in raw]
    else:
        text = "" if raw is None else str(raw).strip()
        names = [n.strip() for n in text.split(sep)] if sep is not None else [text]
    names = [n for n in names if n]
    if not names:
        raise file_error(where, column, raw, "at least one class name")
    if sep is None and len(names) > 1:
        raise file_error(where, column, raw, "one class name (declare label_separator for multi-label rows)")
    return tuple(dict.fromkeys(names))


def _fold(raw: Any, where: str) -> int:
    try:
        value = float(raw)
        if not value.is_integer() or value < 0:
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise file_error(where, "fold", raw, "a fold number (an integer >= 0)") from None


def _classes(decl: Mapping[str, Any], clips: list[Clip], path: Path, column: str) -> tuple[str, ...]:
    declared = decl.get("classes")
    if declared is None:
        return tuple(sorted({n for c in clips for n in c.labels}))
    vocab = tuple(str(n) for n in declared)
    for clip in clips:
        unknown = [n for n in clip.labels if n not in vocab]
        if unknown:
            raise file_error(f"{path} ({clip.rel})", column, unknown[0],
                             f"a class of the declared classes {list(vocab)[:8]}")
    return vocab
