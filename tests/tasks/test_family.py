"""The resolution map's task family: its dials do what they say, measured on generated clips."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import maximum_filter1d

from tasks import get_task, list_tasks
from tasks.family import CLICK_S, MAP_LEVELS, PATTERNS, FamilyCell, FamilyDialError, family_spec, map_cells

CELLS = map_cells()


def small(cell: FamilyCell, clips: int = 18, seed: int = 0):
    spec = get_task(cell.name)
    gen = dataclasses.replace(spec.embedded, seed=seed, sizes=(("train", clips), ("val", 6), ("test", 6)))
    return dataclasses.replace(spec, embedded=gen)


def onsets(wav: np.ndarray, sr: int, gap_s: float) -> np.ndarray:
    """Click onsets in seconds: peaks of the 0.5 ms energy, each the largest within ±0.45 gap, above a tenth
    of a typical click's (the median of the peaks above a tenth of the largest); the background stays below."""
    win = int(0.0005 * sr)
    env = np.convolve(wav.astype(np.float64) ** 2, np.ones(win) / win, mode="same")
    peaks = np.flatnonzero(env == maximum_filter1d(env, 2 * int(0.45 * gap_s * sr) + 1))
    loud = env[peaks][env[peaks] > 0.1 * env.max()]
    return peaks[env[peaks] > 0.1 * np.median(loud)] / sr


def test_the_grid_is_the_cross_product_of_the_levels_and_every_cell_is_registered():
    assert all(len(levels) >= 3 for levels in MAP_LEVELS.values())
    assert len(CELLS) == len(MAP_LEVELS["gap_ms"]) * len(MAP_LEVELS["fraction"])
    for cell in CELLS:
        spec = get_task(cell.name)
        assert cell.name in list_tasks() and cell.name.startswith("map-gap")
        assert dict(spec.dials) == {"gap_ms": cell.gap_ms, "fraction": cell.fraction}
        assert spec.num_classes == len(PATTERNS) == 6 and spec.clip_seconds == cell.clip_seconds
        assert spec.recipe == "quick" and spec.is_embedded
    assert get_task("toy-rhythm").dials == ()


def test_every_class_has_the_same_gaps_in_another_order():
    assert len(set(PATTERNS)) == 6 and all(sorted(p) == ["L", "L", "S", "S"] for p in PATTERNS)


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_the_dials_do_what_they_say_on_generated_clips(cell):
    """Measured on the audio: the event spans the requested fraction of the clip, its short and long gaps are
    S and 2.5 S, and the gaps' order is the label's pattern."""
    spec = small(cell)
    split = spec.embedded.generate_split("train")
    fractions, short, long_, exact, motifs_read = [], [], [], 0, []
    for audio, label in zip(split["audio"], split["label"], strict=True):
        wav, sr = sf.read(io.BytesIO(audio["bytes"]))
        assert len(wav) == round(cell.clip_seconds * sr)
        found = onsets(wav, sr, cell.gap_s)
        fractions.append((found[-1] - found[0] + CLICK_S) / (len(wav) / sr))
        if len(found) == 5 * cell.repeats:
            exact += 1
            gaps = np.diff(found) / cell.gap_s  # in units of S
            short += list(gaps[(gaps > 0.6) & (gaps < 1.6)])
            long_ += list(gaps[(gaps > 1.9) & (gaps < 3.1)])
            inside = np.delete(gaps, np.arange(4, len(gaps), 5))  # drop the pauses between motifs
            reading = "".join("S" if g < 1.75 else "L" for g in inside)
            motifs_read += [reading[i : i + 4] == PATTERNS[label] for i in range(0, len(reading), 4)]
    # gaps and order are read on the clips where as many clicks were found as were placed (now and then a
    # missed click and a background peak make up the count: hence 90 % of the motifs)
    assert exact >= len(split["label"]) // 4 and np.mean(motifs_read) >= 0.9
    assert np.median(fractions) == pytest.approx(cell.fraction, rel=0.03)
    assert np.median(short) == pytest.approx(1.0, abs=0.05)
    assert np.median(long_) == pytest.approx(2.5, abs=0.1)
    assert 0.7 < len(short) / len(long_) < 1.4  # two short and two long gaps per motif


def test_clip_length_follows_the_fraction_exactly():
    for cell in CELLS:
        assert cell.event_seconds / cell.clip_seconds == pytest.approx(cell.fraction, rel=1e-4)
        assert 0.5 <= cell.clip_seconds <= 10.0


def test_same_seed_same_bytes_other_seed_other_bytes():
    cell = CELLS[0]
    a = small(cell, 6, seed=0).embedded.generate_split("val")
    b = small(cell, 6, seed=0).embedded.generate_split("val")
    c = small(cell, 6, seed=1).embedded.generate_split("val")
    assert a["label"] == b["label"] and [x["bytes"] for x in a["audio"]] == [x["bytes"] for x in b["audio"]]
    assert [x["bytes"] for x in a["audio"]] != [x["bytes"] for x in c["audio"]]


def test_classes_are_balanced_and_cells_have_their_own_cache_identity():
    labels = small(CELLS[0], 18).embedded.generate_split("train")["label"]
    assert np.bincount(labels, minlength=6).tolist() == [3] * 6
    identities = {get_task(c.name).embedded.identity() for c in CELLS}
    assert len(identities) == len(CELLS)


def test_an_off_grid_cell_is_a_spec_with_the_same_generator():
    spec = family_spec(10.0, 0.25, sizes={"train": 6, "val": 6, "test": 6})
    assert spec.name == "map-gap10ms-event25pct" and dict(spec.dials) == {"gap_ms": 10.0, "fraction": 0.25}
    assert len(spec.embedded.generate_split("val")["label"]) == 6


@pytest.mark.parametrize("gap_ms, fraction, dial, value", [
    (0.05, 0.1, "gap_ms", "0.05"),  # below the 0.0625 ms sample period
    (0.0, 0.1, "gap_ms", "0.0"),
    (-4.0, 0.1, "gap_ms", "-4.0"),
    (16.0, 0.0, "fraction", "0.0"),
    (16.0, 1.0, "fraction", "1.0"),
    (16.0, -0.1, "fraction", "-0.1"),
    (16.0, 0.99, "fraction", "0.99"),  # the event leaves no background at the clip's edges
    (500.0, 0.05, "gap_ms", "500.0"),  # one motif of 3.5 s in a 70 s clip
    (float("nan"), 0.1, "gap_ms", "nan"),
    ("16", 0.1, "gap_ms", "'16'"),
])
def test_a_dial_out_of_range_is_an_error_naming_the_dial_and_value(gap_ms, fraction, dial, value):
    with pytest.raises(FamilyDialError) as err:
        family_spec(gap_ms, fraction)
    assert f"{dial}={value}" in str(err.value)
