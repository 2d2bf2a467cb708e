"""Reading and checking the columns of a task's `datasets.Dataset`: one arrow read per column, and a clear
error naming the file and the missing columns."""

from __future__ import annotations

from typing import Any


class TaskSchemaError(ValueError):
    """The task's files lack a column the task needs, or a split is empty."""


def read_column(ds: Any, column: str) -> Any:
    """One column of a `datasets.Dataset` (selection indices applied) as a pyarrow array, in one arrow
    read. `ds[column]` is a lazy `Column` in datasets >= 4 that formats row by row (~12 us a row:
    0.03 s for 1,000 clips, seconds for NSynth's 289k)."""
    if ds._indices is None:  # no selection: the memory-mapped column itself, no formatted copy
        return ds.data.column(column)
    return ds.with_format("arrow", columns=[column])[:][column]


def require_columns(ds: Any, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise TaskSchemaError(
            f"{where}: missing column(s) {', '.join(map(repr, missing))}; found {ds.column_names}"
        )
