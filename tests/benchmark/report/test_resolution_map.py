"""The resolution map's figure and CSV, from a small synthetic table of cells."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from benchmark.report.resolution_map import CELL_COLUMNS, check_cells, plot_resolution_map, write_cells_csv
from benchmark.report.stats import HOLDS, INCONCLUSIVE, NOT_RUN, REFUTED


def synthetic_cells() -> pd.DataFrame:
    """3 gaps x 3 fractions x 4 δ: DiffRes gains where the gap is short and δ large; every verdict appears."""
    rows = []
    verdicts = itertools.cycle([HOLDS, INCONCLUSIVE, REFUTED, INCONCLUSIVE, HOLDS, NOT_RUN])
    for gap, fraction, rate in itertools.product((4.0, 16.0, 64.0), (0.05, 0.15, 0.4), (0.5, 0.75, 0.9, 0.95)):
        mean = 0.2 * rate * (64.0 - gap) / 64.0 - 0.05 * fraction
        rows.append({"gap_ms": gap, "fraction": fraction, "reduction_rate": rate, "mean_diff": mean,
                     "ci_low": mean - 0.02, "ci_high": mean + 0.02, "verdict": next(verdicts)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the writer sorts


def test_the_map_draws_one_heatmap_per_rate_into_a_png(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (the ✓ / ✗ marks) would warn
        path = plot_resolution_map(synthetic_cells(), tmp_path / "map" / "resolution_map.png")
    assert path.is_file() and path.stat().st_size > 20_000
    image = imread(path)
    height, width = image.shape[:2]
    assert width > 2.5 * height  # four panels side by side
    assert image[..., :3].std() > 0.1 and len(np.unique(image[..., 0])) > 50  # drawn, not blank


def test_the_same_cells_give_the_same_png(tmp_path):
    a = plot_resolution_map(synthetic_cells(), tmp_path / "a.png").read_bytes()
    b = plot_resolution_map(synthetic_cells().iloc[::-1], tmp_path / "b.png").read_bytes()
    assert a == b


def test_the_cells_csv_has_every_cell_once_sorted(tmp_path):
    cells = synthetic_cells()
    path = write_cells_csv(cells, tmp_path / "resolution_map_cells.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == CELL_COLUMNS and len(back) == 36
    assert back[["gap_ms", "fraction", "reduction_rate"]].equals(
        back[["gap_ms", "fraction", "reduction_rate"]].sort_values(["gap_ms", "fraction", "reduction_rate"]))
    assert set(back["verdict"]) == {HOLDS, REFUTED, INCONCLUSIVE, NOT_RUN}
    assert write_cells_csv(cells.iloc[::-1], tmp_path / "again.csv").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("change, words", [
    (lambda df: df.drop(columns="ci_low"), "missing column(s) ['ci_low']"),
    (lambda df: df.assign(verdict="maybe"), "verdict 'maybe'"),
    (lambda df: pd.concat([df, df.iloc[:1]]), "two rows for the cell gap_ms="),
])
def test_a_malformed_table_names_what_is_wrong(change, words):
    with pytest.raises(ValueError) as err:
        check_cells(change(synthetic_cells()))
    assert words in str(err.value)
