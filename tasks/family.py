"""The resolution map's family of embedded tasks: one rhythm task per cell of two dials.

Every cell is generated like the toy tasks (`tasks.embedded`: the same background, clicks and
`EmbeddedGenerator`; parquet under `<cache>/embedded/<task>/<identity>/`; same seed -> same bytes;
balanced classes). The clip holds the same class-independent background as toy-rhythm (coloured
noise, 1-3 faint tones, one 100-400 ms distractor swell) and one informative event at a random time:

- the event is a motif of five clicks whose four gaps are two short (S) and two long (L = 2.5 S)
  ones; the class is their order, one of the six orders of SSLL (chance = 1/6). Unlike toy-rhythm
  (SSS ... LLS), every class has the same gaps in another order, so the event's span, its clicks
  and its energy say nothing about the class: only the order does. Each gap is jittered by up to
  ±10 % and the motif rescaled to exactly 7 S, so the event's span is the same in every clip;
- the motif repeats `repeats` times, 2 L apart (a pause no gap inside a motif reaches), to fill the
  event; the clip is as long as makes the event the requested fraction of it.

The two dials (`MAP_LEVELS`, the grid; any value in range makes a cell with `family_spec`):

- `gap_ms`, the short gap S: the time scale at which the label lives. 4 ms is below every frame
  (a 10 ms hop cannot separate the clicks, only their pattern of energy can), 16 ms sits between the
  full-resolution frame and the pooled frame at δ 0.5 (20 ms), 64 ms (L = 160 ms) outlasts the pooled
  frame at δ <= 0.9 (100 ms), like syllable-rate modulation.
- `fraction`, the share of the clip the informative event occupies (its span, first onset to the end
  of the last click, over the clip): 5 % (a short event in a long clip, the held-out speech's ~4 %),
  15 %, 40 %. Learned resolution can only gain where the frames it keeps (1 - δ of them) can cover
  the event at a finer step than uniform pooling.

How the two dials are made independent: the event of a cell holds `repeats` motifs, chosen so that
its clip is near `TARGET_CLIP_SECONDS` (3 s); the clip is then the event's span over the fraction,
exactly. A long gap at a small fraction cannot shrink its single motif, so its clip is longer (the
longest grid cell, 64 ms at 5 %: 9.1 s). `FamilyCell.clip_seconds` gives every cell's length.

A cell is the registered task `map-gap<S>ms-event<percent>pct` (e.g. `map-gap16ms-event15pct`), its
dial values in `TaskSpec.dials`. Out-of-range dials raise `FamilyDialError` naming the dial and the value.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from tasks.cache import digest
from tasks.embedded import LONG_GAP, SAMPLE_RATE, EmbeddedGenerator, _background, _place_clicks, embedded_spec
from tasks.registry import TaskSpec, register_task

FAMILY_VERSION = 1
FAMILY_PREFIX = "map"

# The grid: each dial's levels. A cell is one value of each; the map is their cross product.
MAP_LEVELS: dict[str, tuple[float, ...]] = {
    "gap_ms": (4.0, 16.0, 64.0),
    "fraction": (0.05, 0.15, 0.40),
}
MAP_SIZES = {"train": 600, "val": 180, "test": 1200}  # divisible by the 6 classes; test: clips are cheap to score

PATTERNS = ("SSLL", "SLSL", "SLLS", "LSSL", "LSLS", "LLSS")  # every order of two S and two L
MOTIF_GAPS = 2 + 2 * LONG_GAP  # a motif spans 7 S from its first to its last onset
BOUNDARY_GAPS = 2 * LONG_GAP  # 5 S between one motif's last click and the next motif's first
GAP_JITTER = 0.1  # each gap x U(0.9, 1.1), then the motif rescaled to 7 S
CLICK_S = 0.006  # the longest click (`tasks.embedded._click`): the event ends this long after its last onset
PLACE_TAIL_S = 0.01  # `_place_clicks` keeps the last onset this far (plus the edge) from the clip's end
TARGET_CLIP_SECONDS = 3.0
EDGE_S = 0.1  # the event starts and ends at least this far from the clip's edges
MIN_CLIP_SECONDS = 0.5  # the background's distractor swell lasts up to 0.4 s
MAX_CLIP_SECONDS = 30.0


class FamilyDialError(ValueError):
    """A dial of the resolution-map family is outside its valid range; the message names the dial and value."""


@dataclass(frozen=True)
class FamilyCell:
    """One cell of the family: the short gap S in ms and the event's fraction of the clip; the rest follows."""

    gap_ms: float
    fraction: float
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        period_ms = 1000.0 / self.sample_rate
        for dial, value in (("gap_ms", self.gap_ms), ("fraction", self.fraction)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise FamilyDialError(f"dial {dial}={value!r}: expected a finite number")
        if self.gap_ms <= period_ms:
            raise FamilyDialError(f"dial gap_ms={self.gap_ms!r}: the short gap must be longer than the sample "
                                  f"period ({period_ms:g} ms at {self.sample_rate} Hz)")
        if not 0.0 < self.fraction < 1.0:
            raise FamilyDialError(f"dial fraction={self.fraction!r}: expected the event's share of the clip in "
                                  f"(0, 1)")
        if self.clip_seconds > MAX_CLIP_SECONDS:
            raise FamilyDialError(
                f"dial gap_ms={self.gap_ms!r} with fraction={self.fraction!r}: one motif spans "
                f"{self.event_seconds:.3f} s, so the clip would last {self.clip_seconds:.1f} s, over "
                f"{MAX_CLIP_SECONDS:g} s: a shorter gap_ms or a larger fraction")
        room = self.clip_seconds - 2 * EDGE_S - (self.event_seconds - CLICK_S + PLACE_TAIL_S)
        if self.clip_seconds < MIN_CLIP_SECONDS or room <= 0:
            raise FamilyDialError(
                f"dial fraction={self.fraction!r} with gap_ms={self.gap_ms!r}: the event ({self.event_seconds:.3f} s) "
                f"does not fit in its {self.clip_seconds:.3f} s clip with {EDGE_S:g} s of background at each end "
                f"(and clips of at least {MIN_CLIP_SECONDS:g} s): a smaller fraction")

    @property
    def gap_s(self) -> float:
        return self.gap_ms / 1000.0

    @property
    def repeats(self) -> int:
        """Motifs in the event: as many as bring the clip nearest `TARGET_CLIP_SECONDS`, at least one."""
        target_event = self.fraction * TARGET_CLIP_SECONDS - CLICK_S
        return max(1, round((target_event + BOUNDARY_GAPS * self.gap_s) / ((MOTIF_GAPS + BOUNDARY_GAPS) * self.gap_s)))

    @property
    def event_seconds(self) -> float:
        """First onset to the end of the last click."""
        r = self.repeats
        return (r * MOTIF_GAPS + (r - 1) * BOUNDARY_GAPS) * self.gap_s + CLICK_S

    @property
    def clip_seconds(self) -> float:
        """The event over the fraction, in whole samples."""
        return round(self.event_seconds / self.fraction * self.sample_rate) / self.sample_rate

    @property
    def name(self) -> str:
        return f"{FAMILY_PREFIX}-gap{self.gap_ms:g}ms-event{100 * self.fraction:g}pct"

    @property
    def dials(self) -> tuple[tuple[str, float], ...]:
        return (("gap_ms", float(self.gap_ms)), ("fraction", float(self.fraction)))


def event_onsets(rng: np.random.Generator, label: int, cell: FamilyCell) -> np.ndarray:
    """-> onsets in seconds from the event's start: `repeats` motifs of the label's gap order, 2 L apart."""
    unit = np.array([LONG_GAP if g == "L" else 1.0 for g in PATTERNS[label]])
    gaps = []
    for k in range(cell.repeats):
        jittered = unit * rng.uniform(1 - GAP_JITTER, 1 + GAP_JITTER, size=len(unit))
        gaps.extend(jittered * MOTIF_GAPS / jittered.sum())
        if k < cell.repeats - 1:
            gaps.append(BOUNDARY_GAPS)
    return np.concatenate([[0.0], np.cumsum(gaps)]) * cell.gap_s


def family_clip(rng: np.random.Generator, label: int, sr: int, n: int, cell: FamilyCell) -> np.ndarray:
    clip = _background(rng, n, sr)
    _place_clicks(rng, clip, event_onsets(rng, label, cell), sr, EDGE_S)
    return clip


@dataclass(frozen=True)
class FamilyGenerator(EmbeddedGenerator):
    """An `EmbeddedGenerator` whose identity also names the cell's dials and this module's FAMILY_VERSION."""

    dials: tuple[tuple[str, float], ...] = ()

    def identity(self) -> str:
        return f"seed{self.seed}-" + digest({"embedded": super().identity(), "family": FAMILY_VERSION,
                                             "dials": dict(self.dials)}, length=12)


def family_spec(gap_ms: float, fraction: float, sizes: dict[str, int] | None = None) -> TaskSpec:
    """The task of one cell (checked: `FamilyDialError` names a dial out of range)."""
    cell = FamilyCell(gap_ms, fraction)
    gen = FamilyGenerator(cell.name, functools.partial(family_clip, cell=cell), num_classes=len(PATTERNS),
                          sizes=tuple((sizes or MAP_SIZES).items()), sample_rate=cell.sample_rate,
                          clip_seconds=cell.clip_seconds, dials=cell.dials)
    what = (f"resolution-map cell: order of 2 short ({gap_ms:g} ms) and 2 long gaps in {cell.repeats} five-click "
            f"motif(s), the event {100 * fraction:g} % of a {cell.clip_seconds:.2f} s clip")
    spec = embedded_spec(gen, PATTERNS, what)
    sizes_ = dict(gen.sizes)
    return dataclasses.replace(
        spec, dials=cell.dials,
        source=f"family generator (seed {gen.seed}, v{FAMILY_VERSION}): {what}; "
               f"{sizes_['train']}/{sizes_['val']}/{sizes_['test']} clips; chance = 1/{gen.num_classes}")


def map_cells() -> list[FamilyCell]:
    """The grid's cells: every combination of `MAP_LEVELS`, gap_ms slowest."""
    return [FamilyCell(**dict(zip(MAP_LEVELS, values, strict=True)))
            for values in itertools.product(*MAP_LEVELS.values())]


def _register(cell: FamilyCell) -> None:
    register_task(lambda: family_spec(cell.gap_ms, cell.fraction))


for _cell in map_cells():
    _register(_cell)
