"""From a task's source tables to the standard clip table of one split, shared by every family of tasks.

A task's `select(sources, split, fold, spec)` (see `tasks.registry.SelectFn`) picks the rows of one
split and hands them to one of these, which checks the columns and labels and returns the columns
every task has: "clip_id", "audio" and "label" (single-label) or "labels" (multi-label):

- `standard_single` / `standard_multi`: rename and check one table (labels in 0..C-1; class names or
  MIDs mapped to indices);
- `official_select(mapping, standardise)`: the select() of a task whose source already has
  train / val / test splits (hub tasks with official splits, the embedded tasks).

Fold protocols that are specific to one dataset (ESC-50's folds, AudioSet's hold-out) live with
that task in `tasks.hub`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tasks.audio import clip_error
from tasks.columns import read_column, require_columns
from tasks.registry import TaskSpec


def split_where(spec: TaskSpec, split: str) -> str:
    return f"task {spec.name!r} split {split!r}"


def standard_single(ds: Any, id_col: str, label_col: str, spec: TaskSpec, split: str) -> Any:
    """Keep (id, audio, label) as (clip_id, audio, label); every label must be in 0..C-1."""
    where = split_where(spec, split)
    require_columns(ds, (id_col, spec.parquet.audio_column, label_col), where)
    labels = read_column(ds, label_col).to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= spec.num_classes)) if len(labels) else []
    if len(bad):
        i = int(bad[0])
        raise clip_error(where, str(ds[i][id_col]), label_col,
                         f"label {labels[i]} out of range 0..{spec.num_classes - 1} ({len(bad)} such clip(s))")
    ds = ds.select_columns([id_col, spec.parquet.audio_column, label_col])
    renames = {k: v for k, v in ((id_col, "clip_id"), (spec.parquet.audio_column, "audio"), (label_col, "label"))
               if k != v}
    return ds.rename_columns(renames) if renames else ds


def standard_multi(ds: Any, id_col: str, names_col: str, vocab: Mapping[str, int], spec: TaskSpec, split: str,
                   sep: str | None = None) -> Any:
    """Map a column of class names/MIDs (a list, or a `sep`-joined string) to "labels": list[int]."""
    import datasets

    where = split_where(spec, split)
    require_columns(ds, (id_col, spec.parquet.audio_column, names_col), where)

    def to_indices(batch: dict) -> dict:
        out = []
        for clip_id, names in zip(batch[id_col], batch[names_col], strict=True):
            names = names.split(sep) if sep is not None else (names or [])
            unknown = [n for n in names if n not in vocab]
            if unknown:
                raise clip_error(where, str(clip_id), names_col, f"unknown class(es) {unknown[:3]}")
            if not names:
                raise clip_error(where, str(clip_id), names_col, "no labels")
            out.append(sorted({vocab[n] for n in names}))
        return {"labels": out}

    ds = ds.select_columns([id_col, spec.parquet.audio_column, names_col])
    features = datasets.Features({id_col: ds.features[id_col], spec.parquet.audio_column: ds.features[
        spec.parquet.audio_column], "labels": datasets.List(datasets.Value("int64"))})
    ds = ds.map(to_indices, batched=True, remove_columns=[names_col], features=features,
                desc=f"{spec.name}/{split}: labels")
    renames = {k: v for k, v in ((id_col, "clip_id"), (spec.parquet.audio_column, "audio")) if k != v}
    return ds.rename_columns(renames) if renames else ds


def official_select(mapping: Mapping[str, str], standardise):
    """select() for tasks with official train/val/test source splits: mapping split -> source name,
    then `standardise(ds, split, spec)`."""

    def select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
        return standardise(sources[mapping[split]], split, spec)

    return select
