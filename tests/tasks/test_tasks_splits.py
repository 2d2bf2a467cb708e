"""The shared split helpers on in-memory tables: the standard columns, label checks, official splits."""

from __future__ import annotations

import datasets
import pytest

from tasks import get_task
from tasks.audio import BadClipError
from tasks.splits import official_select, split_where, standard_multi, standard_single

AUDIO = [{"bytes": b"", "path": f"{i}.wav"} for i in range(3)]


def test_standard_single_renames_to_the_standard_columns():
    spec = get_task("esc50")
    ds = datasets.Dataset.from_dict({"filename": ["a", "b", "c"], "target": [0, 49, 7], "fold": [1, 1, 2],
                                     "audio": AUDIO})
    out = standard_single(ds, "filename", "target", spec, "train")
    assert out.column_names == ["clip_id", "audio", "label"]
    assert out["clip_id"] == ["a", "b", "c"] and out["label"] == [0, 49, 7]


def test_standard_single_names_the_clip_with_a_bad_label():
    spec = get_task("esc50")
    ds = datasets.Dataset.from_dict({"filename": ["a", "b", "c"], "target": [0, 50, 7], "audio": AUDIO})
    with pytest.raises(BadClipError, match=r"task 'esc50' split 'val'.*'b'.*out of range 0\.\.49"):
        standard_single(ds, "filename", "target", spec, "val")


def test_standard_multi_maps_names_to_sorted_indices():
    spec = get_task("audioset")
    vocab = {"/m/a": 0, "/m/b": 1, "/m/c": 2}
    ds = datasets.Dataset.from_dict({"video_id": ["x", "y", "z"], "labels": ["/m/c,/m/a", "/m/b", "/m/b,/m/b"],
                                     "audio": AUDIO})
    out = standard_multi(ds, "video_id", "labels", vocab, spec, "test", sep=",")
    assert out.column_names == ["clip_id", "audio", "labels"] and out["labels"] == [[0, 2], [1], [1]]
    bad = ds.select([0]).map(lambda row: {"labels": "/m/q"})
    with pytest.raises(BadClipError, match="unknown class"):
        standard_multi(bad, "video_id", "labels", vocab, spec, "test", sep=",")


def test_official_select_reads_the_mapped_source_split():
    spec = get_task("toy-transients")
    sources = {name: datasets.Dataset.from_dict({"clip_id": [name], "label": [1], "audio": AUDIO[:1]})
               for name in ("training", "validation", "testing")}
    select = official_select({"train": "training", "val": "validation", "test": "testing"},
                             lambda ds, split, spec: standard_single(ds, "clip_id", "label", spec, split))
    assert [select(sources, split, None, spec)["clip_id"] for split in ("train", "val", "test")] == [
        ["training"], ["validation"], ["testing"]]
    assert split_where(spec, "val") == "task 'toy-transients' split 'val'"
