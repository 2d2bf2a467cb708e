"""The resolution-map suite covers the family's grid: every cell x δ, DiffRes against both poolings, and the
spectrogram as each cell's reference."""

from __future__ import annotations

import itertools

from benchmark.study import load_suite
from tasks.family import map_cells

RATES = {0.5, 0.75, 0.9, 0.95}


def test_every_cell_has_every_arm_at_every_rate_and_its_reference():
    configs = load_suite("resolution-map").configs
    cells = {cell.name for cell in map_cells()}
    assert {c.task for c in configs} == cells  # the suite follows MAP_LEVELS: no cell missing, none extra
    seeds = {c.seed for c in configs}
    arms = {(c.task, c.frontend, c.reduction_rate, c.seed) for c in configs}
    want = set(itertools.product(cells, ("diffres", "avgpool", "maxpool"), RATES, seeds))
    want |= set(itertools.product(cells, ("spec",), (0.0,), seeds))
    assert arms == want
    assert {c.hop_ms for c in configs} == {10.0}
