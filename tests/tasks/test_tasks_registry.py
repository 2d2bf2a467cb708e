from __future__ import annotations

import dataclasses
import re

import pytest

from tasks import TaskSpec, get_task, list_tasks, register_task

HUB_TASKS = {"audioset", "fsd50k", "esc50", "speechcommands", "nsynth-instrument", "nsynth-pitch"}
EMBEDDED_TASKS = {"toy-transients", "toy-rhythm", "toy-rhythm-short", "toy-ctrl-sweeps", "toy-ctrl-texture"}
MAP_TASKS = {f"map-gap{g}ms-event{p}pct" for g in (4, 16, 64) for p in (5, 15, 40)}  # tasks/family.py


def test_all_tasks_registered():
    assert set(list_tasks()) == HUB_TASKS | EMBEDDED_TASKS | MAP_TASKS
    assert list_tasks() == sorted(list_tasks())


def test_unknown_task_lists_known_names():
    with pytest.raises(KeyError) as err:
        get_task("esc-50")
    message = str(err.value)
    assert "esc-50" in message and all(name in message for name in list_tasks())


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_task(lambda: get_task("esc50"))


@pytest.mark.parametrize("name", list_tasks())
def test_spec_is_complete_and_frozen(name):
    spec = get_task(name)
    assert isinstance(spec, TaskSpec)
    assert len(spec.class_names) == spec.num_classes
    assert spec.splits == ("train", "val", "test")
    assert spec.sample_rate == 16000 and spec.clip_seconds > 0
    assert (spec.label_kind, spec.metric) in {("single", "accuracy"), ("multi", "mAP")}
    assert spec.source and spec.protocol
    assert spec.chance_level == pytest.approx(1 / spec.num_classes)
    if not spec.is_embedded and spec.parquet.repo is not None:
        assert spec.parquet.revision  # pinned (a hash or a named ref, documented in tasks/hub.py)
        assert all(p.startswith(f"hf://datasets/{spec.parquet.repo}@") for ps in
                   spec.parquet.hub_patterns().values() for p in ps)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_paper_task_facts():
    assert get_task("esc50").folds == 5 and get_task("esc50").num_classes == 50
    assert get_task("speechcommands").num_classes == 35
    assert get_task("nsynth-instrument").num_classes == 11
    assert get_task("nsynth-pitch").num_classes == 128
    assert get_task("audioset").num_classes == 527 and get_task("audioset").label_kind == "multi"
    assert get_task("fsd50k").num_classes == 200 and get_task("fsd50k").metric == "mAP"
    assert get_task("toy-transients").chance_level == pytest.approx(0.2)


def test_fold_checks():
    with pytest.raises(ValueError, match="5-fold task"):
        get_task("esc50").check_fold(None)
    with pytest.raises(ValueError, match="fold in 1..5"):
        get_task("esc50").check_fold(6)
    with pytest.raises(ValueError, match="no folds"):
        get_task("toy-rhythm").check_fold(1)


@pytest.mark.parametrize("name", sorted(n for n in HUB_TASKS if get_task(n).parquet.repo is not None))
def test_hub_revisions_are_commit_hashes(name):
    """A branch or ref can move under a result; a commit cannot (hashes documented in tasks/hub.py)."""
    src = get_task(name).parquet
    assert re.fullmatch(r"[0-9a-f]{40}", src.revision), src.revision
    assert src.revision in get_task(name).source
