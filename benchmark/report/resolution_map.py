"""The resolution map's picture and table: one heatmap per δ over the family's two dials (tasks/family.py),
each cell coloured by a paired difference (DiffRes − the best uniform reduction, or − the spectrogram) and
marked by its verdict, and the CSV of every cell.

Input: a table of cells, one row per (dial a, dial b, δ) with `CELL_COLUMNS`: the mean paired difference,
its interval and its verdict (`benchmark.report.stats`: holds / refuted / inconclusive, or not run). Which
rule decided a cell (the seeds x clips t of `benchmark.report.clipstats`) is the caller's; this module only
draws and writes.

A decided cell (holds or refuted) gets a thick outline and its sign (✓ holds, ✗ refuted); an inconclusive
cell is hatched; a cell with no runs is left grey. The colour scale is shared by every δ and symmetric
about 0, so equal colours mean equal differences across the panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from benchmark.report.leaderboard import write_csv
from benchmark.report.stats import HOLDS, INCONCLUSIVE, NOT_RUN, REFUTED

DIALS = ("gap_ms", "fraction")  # tasks.family.MAP_LEVELS: rows, then columns of each heatmap
VALUE_COLUMNS = ["mean_diff", "ci_low", "ci_high", "verdict"]
CELL_COLUMNS = [*DIALS, "reduction_rate", *VALUE_COLUMNS]
VERDICT_MARKS = {HOLDS: "✓", REFUTED: "✗", INCONCLUSIVE: "", NOT_RUN: ""}
DIAL_LABELS = {"gap_ms": "short gap S (ms)", "fraction": "event's share of the clip"}


def check_cells(cells: pd.DataFrame, dials: Sequence[str] = DIALS) -> pd.DataFrame:
    """The table with its columns checked: a missing column, a duplicate cell or an unknown verdict is a
    ValueError that names it. Returns the table sorted by dials and δ."""
    columns = [*dials, "reduction_rate", *VALUE_COLUMNS]
    missing = [c for c in columns if c not in cells.columns]
    if missing:
        raise ValueError(f"resolution-map cells: missing column(s) {missing}; expected {columns}")
    bad = sorted(set(cells["verdict"]) - set(VERDICT_MARKS))
    if bad:
        raise ValueError(f"resolution-map cells: verdict {bad[0]!r}: expected one of {list(VERDICT_MARKS)}")
    keys = [*dials, "reduction_rate"]
    dup = cells[cells.duplicated(keys, keep=False)]
    if not dup.empty:
        first = ", ".join(f"{k}={dup.iloc[0][k]!r}" for k in keys)
        raise ValueError(f"resolution-map cells: two rows for the cell {first}; expected one per cell")
    return cells.sort_values(keys, kind="stable").reset_index(drop=True)


def write_cells_csv(cells: pd.DataFrame, path: Path, dials: Sequence[str] = DIALS) -> Path:
    """Every cell, one row each, sorted by dials and δ (byte-identical for the same table)."""
    return write_csv(check_cells(cells, dials), Path(path))


def plot_resolution_map(cells: pd.DataFrame, path: Path, *, dials: Sequence[str] = DIALS,
                        what: str = "DiffRes − best uniform reduction") -> Path:
    """One heatmap per δ (left to right), rows dial a, columns dial b; writes a PNG and returns its path."""
    cells = check_cells(cells, dials)
    rows_dial, cols_dial = dials
    row_levels = sorted(cells[rows_dial].unique())
    col_levels = sorted(cells[cols_dial].unique())
    rates = sorted(cells["reduction_rate"].unique())
    limit = float(np.nanmax(np.abs(cells["mean_diff"].to_numpy(float)), initial=0.0)) or 0.01

    fig = Figure(figsize=(3.2 * len(rates) + 1.2, 0.9 * len(row_levels) + 1.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(rates), sharey=True, squeeze=False)[0])
    image = None
    for ax, rate in zip(axes, rates, strict=True):
        panel = cells[cells["reduction_rate"] == rate].set_index([rows_dial, cols_dial])
        grid = np.full((len(row_levels), len(col_levels)), np.nan)
        for (i, a), (j, b) in ((ia, jb) for ia in enumerate(row_levels) for jb in enumerate(col_levels)):
            if (a, b) in panel.index and panel.loc[(a, b), "verdict"] != NOT_RUN:
                grid[i, j] = panel.loc[(a, b), "mean_diff"]
        ax.set_facecolor((0.85, 0.85, 0.85))  # cells with no runs
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-limit, vmax=limit, origin="lower",
                          aspect="auto")
        for (a, b), row in panel.iterrows():
            i, j = row_levels.index(a), col_levels.index(b)
            _mark(ax, i, j, row, dark=abs(row["mean_diff"]) > 0.6 * limit)
        ax.set_xticks(range(len(col_levels)), [_level(cols_dial, v) for v in col_levels])
        ax.set_yticks(range(len(row_levels)), [_level(rows_dial, v) for v in row_levels])
        ax.set_xlabel(DIAL_LABELS.get(cols_dial, cols_dial))
        ax.set_title(f"δ = {rate:g}")
    axes[0].set_ylabel(DIAL_LABELS.get(rows_dial, rows_dial))
    fig.colorbar(image, ax=list(axes), label=f"{what} (mean paired difference)", shrink=0.9)
    fig.suptitle(f"Resolution map: {what}. ✓ holds, ✗ refuted (outlined); hatched: inconclusive; grey: not run",
                 fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


def _mark(ax, i: int, j: int, row: pd.Series, dark: bool) -> None:
    """Outline and sign of a decided cell, hatching of an inconclusive one; the text white on dark colours."""
    verdict = row["verdict"]
    if verdict == NOT_RUN:
        ax.text(j, i, "not run", ha="center", va="center", fontsize=7, color=(0.4, 0.4, 0.4))
        return
    if verdict in (HOLDS, REFUTED):
        ax.add_patch(Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="black", linewidth=2.2))
    else:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1.0, 1.0, fill=False, hatch="///", edgecolor=(0.5, 0.5, 0.5),
                               linewidth=0))
    text = f"{VERDICT_MARKS[verdict]} {row['mean_diff']:+.3f}\n[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
    ax.text(j, i, text.strip(), ha="center", va="center", fontsize=7, color="white" if dark else "black")


def _level(dial: str, value: float) -> str:
    return f"{100 * value:g} %" if dial == "fraction" else f"{value:g}"
