"""Suites: the shipped YAML files, grid expansion, every validation error, the data check, and the
package's public names (reading a suite does not load Optuna)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from study_helpers import TINY, write_suite

from benchmark import study
from benchmark.study import SuiteError, SuiteNotFoundError, check_task_data, load_suite


@pytest.mark.parametrize("name", study.list_suites())
def test_shipped_suites_load(name: str) -> None:
    suite = load_suite(name)
    assert suite.name == name and suite.configs
    assert len(set(suite.keys)) == len(suite.keys)


def test_toy_full_suite_covers_every_frontend_rate_hop_and_seed() -> None:
    from diffres import list_frontends

    configs = load_suite("toy-full").configs
    assert {c.task for c in configs} == {"toy-transients", "toy-rhythm", "toy-ctrl-sweeps", "toy-ctrl-texture"}
    assert {c.frontend for c in configs} == set(list_frontends())
    assert len({c.reduction_rate for c in configs if c.frontend != "spec"}) >= 3
    assert len({c.hop_ms for c in configs}) >= 2
    assert {c.reduction_rate for c in configs if c.frontend == "spec"} == {0.0}


@pytest.mark.parametrize("name", ["quick", "toy-full"])
def test_toy_suites_are_sized_to_decide(name) -> None:
    """At least 5 seeds everywhere, early stopping on every run, both controls, every family a claim reads."""
    from collections import Counter

    from diffres import frontend_info
    from tasks import get_task

    configs = load_suite(name).configs
    seeds = Counter(c.replace(seed=0).config_hash for c in configs)
    assert min(seeds.values()) >= 5 and {c.seed for c in configs} >= {0, 1, 2, 3, 4}
    assert all(c.patience is not None and c.epochs > 4 * c.patience for c in configs)
    assert {get_task(c.task).control for c in configs} == {None, "positive", "negative"}
    assert {frontend_info(c.frontend).family for c in configs} >= {"reference", "uniform reduction",
                                                                   "learned resolution"}
    assert any(c.hop_ms < 10 and c.frontend == "diffres" and c.reduction_rate == 1 - c.hop_ms / 10 for c in configs)


def test_filterbanks_suite_is_claim_4_on_the_rhythm_tasks_with_both_controls() -> None:
    from diffres import frontend_info
    from diffres.filterbanks import filterbank_info
    from tasks import get_task

    configs = load_suite("filterbanks").configs
    assert {c.task for c in configs} == {"toy-rhythm", "toy-rhythm-short", "toy-ctrl-sweeps", "toy-ctrl-texture"}
    every = {"mel", "leaf", "efficientleaf", "sincnet", "tdfbanks"}
    # every run at the quick recipe (no undecidable small block)
    assert {c.max_train_clips for c in configs} == {800} and {c.max_eval_clips for c in configs} == {None}
    long_clips = [c for c in configs if c.task == "toy-rhythm"]
    assert {c.seed for c in long_clips} == {0, 1, 2, 3, 4}
    assert {c.filterbank for c in long_clips if filterbank_info(c.filterbank).learnable} == {"efficientleaf"}
    assert {(c.frontend, c.filterbank) for c in long_clips} == {("spec", "mel"), ("spec", "efficientleaf"),
                                                                ("diffres", "mel")}
    short = [c for c in configs if c.task == "toy-rhythm-short"]
    assert {(c.frontend, c.filterbank) for c in short} == {("spec", f) for f in every} | {("diffres", "mel")}
    assert all({c.seed for c in short if c.filterbank == f} >= {0, 1, 2, 3, 4} for f in every)
    # ten more seeds for the runs that cost seconds: DiffRes against EfficientLEAF decided on 15 pairs
    assert {c.seed for c in short if c.filterbank == "efficientleaf"} == set(range(15))
    assert {c.seed for c in short if c.frontend == "diffres"} == set(range(15))
    assert {c.seed for c in short if c.filterbank == "tdfbanks"} == set(range(9))
    assert len(short) == 6 * 5 + 3 * 10 + 4
    # both controls, on a learnable filterbank: DiffRes against uniform reductions at δ 0.9 (positive) and
    # against a uniform reduction and the reference at δ 0.5 (negative), 5 seeds each
    controls = [c for c in configs if get_task(c.task).control]
    assert {c.filterbank for c in controls} == {"efficientleaf"}
    assert {get_task(c.task).control for c in controls} == {"positive", "negative"}
    assert {c.reduction_rate for c in controls if get_task(c.task).control == "positive"} == {0.9}
    assert {c.reduction_rate for c in controls if get_task(c.task).control == "negative"} <= {0.0, 0.5}
    families = {(get_task(c.task).control, frontend_info(c.frontend).family) for c in controls}
    assert families == {("positive", "learned resolution"), ("positive", "uniform reduction"),
                        ("negative", "learned resolution"), ("negative", "uniform reduction"),
                        ("negative", "reference")}
    assert all({c.seed for c in controls if c.frontend == f and c.task == t} == {0, 1, 2, 3, 4}
               for f, t in {(c.frontend, c.task) for c in controls})
    assert all(c.patience is not None for c in configs)


def test_paper_suite_uses_the_paper_recipe() -> None:
    configs = load_suite("paper").configs
    assert {c.task for c in configs} == {"audioset", "fsd50k", "esc50", "speechcommands", "nsynth-instrument"}
    assert {c.backbone for c in configs} == {"efficientnet_b2", "efficientnet_b0"}
    # claim 4's setting (LEAF's protocol): EfficientNet-B0, 40 bands, every filterbank with the spec reducer
    b0 = [c for c in configs if c.backbone == "efficientnet_b0"]
    assert {c.n_mels for c in b0} == {40} and {c.filterbank for c in b0 if c.frontend == "spec"} == {
        "mel", "leaf", "efficientleaf", "sincnet", "tdfbanks"}
    assert {c.filterbank for c in b0 if c.frontend == "diffres"} == {"mel"}
    assert {c.seed for c in configs} == {21195, 1234, 98736}
    assert {c.fold for c in configs if c.task == "esc50"} == {1, 2, 3, 4, 5}
    esc = next(c for c in configs if c.task == "esc50")
    assert (esc.lr, esc.batch_size, esc.epochs) == (2.5e-4, 48, 80)


def test_sub_grids_expand_zip_and_deduplicate(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, TINY))
    got = sorted((c.frontend, c.hop_ms, c.reduction_rate) for c in suite.configs)
    assert got == [("avgpool", 5.0, 0.5), ("avgpool", 10.0, 0.5), ("diffres", 5.0, 0.5),
                   ("diffres", 10.0, 0.5), ("spec", 10.0, 0.0)]


@pytest.mark.parametrize(("text", "needle"), [
    ("grids: [\n  - task: [toy", "malformed YAML"),
    ("- 1\n- 2", "expected a mapping"),
    ("grid: []", "unknown key 'grid'"),
    ("grids: []", "grids: expected a non-empty list"),
    ("base: {task: toy-transients, colour: red}\ngrids: [{seed: [0]}]", "unknown RunConfig field 'colour'"),
    ("base: {task: toy-transients}\ngrids: [{speed: [1, 2]}]", "grids[0]: unknown axis 'speed'"),
    ("base: {task: toy-transients}\ngrids: [{seed: 3}]", "seed=3: expected a non-empty list"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [diffres], reduction_rate: [1.5]}]",
     "reduction_rate=1.5"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [diffres], hop_ms: [0]}]", "hop_ms=0"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [nope]}]", "frontend='nope'"),
    ("base: {task: toy-transients}\ngrids: [{backbone: [not_a_net]}]", "backbone='not_a_net'"),
    ("grids: [{task: [no-such-task]}]", "task='no-such-task'"),
    ("grids: [{seed: [0]}]", "no task"),
    ("base: {task: toy-transients}\ngrids: [{zip: [{hop_ms: 5, colour: 1}]}]", "zip: unknown axis 'colour'"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nsearch: {lr: {type: float, low: 1, high: 0}}\n"
     "n_trials: 2", "search.lr: low=1, high=0"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nsearch: {lr: {type: float, low: 0.1, high: 1}}",
     "n_trials=None"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nn_trials: 3", "without a search space"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0], lr: [0.1]}]\n"
     "search: {lr: {type: float, low: 0.1, high: 1}}\nn_trials: 2", "also a grid axis"),
])
def test_bad_suites_name_file_key_and_value(tmp_path: Path, text: str, needle: str) -> None:
    path = write_suite(tmp_path, text, name="bad")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_unknown_suite_lists_known_ones() -> None:
    with pytest.raises(SuiteNotFoundError, match="known suites.*quick"):
        load_suite("no-such-suite")


def test_data_check_names_the_task_the_flag_and_uses_the_data_dir(tmp_path: Path, monkeypatch) -> None:
    from tasks.data import TaskDataUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DIFFRES_DATA_DIR", raising=False)
    assert [spec.name for spec in check_task_data(["toy-transients", "toy-transients"])] == ["toy-transients"]
    with pytest.raises(TaskDataUnavailable, match=r"esc50.*--data-dir.*DIFFRES_DATA_DIR"):
        check_task_data(["toy-transients", "esc50"])
    (tmp_path / "esc50").mkdir()  # a local copy without its files: the data dir is the one looked in
    with pytest.raises(TaskDataUnavailable, match=r"no files matching esc50/data/train-\*\.parquet"):
        check_task_data(["esc50"], tmp_path)


def test_every_public_name_resolves_and_reading_suites_does_not_import_optuna() -> None:
    for name in study.__all__:
        assert getattr(study, name) is not None
    assert callable(study.status) and callable(study.run_study)
    assert not hasattr(study, "mask_url") and not hasattr(study, "RESULTS_DIR")  # other layers' names: no aliases
    with pytest.raises(AttributeError, match="no_such_name"):
        study.no_such_name  # noqa: B018
    code = ("import sys; from benchmark import study; study.list_suites(); study.load_suite('quick'); "
            "assert 'optuna' not in sys.modules, 'optuna imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_margin_is_an_optional_top_level_key(tmp_path: Path) -> None:
    from benchmark.report.stats import DEFAULT_MARGIN

    assert load_suite(write_suite(tmp_path, TINY)).margin == DEFAULT_MARGIN
    assert load_suite(write_suite(tmp_path, TINY + "margin: 0.02\n", name="m")).margin == 0.02
    assert load_suite(write_suite(tmp_path, TINY + "margin: 0\n", name="z")).margin == 0.0


@pytest.mark.parametrize("value", ["-0.01", "1.5", "big", "true", ".nan", "null", "[0.01]"])
def test_a_bad_margin_names_the_file_the_key_and_the_value(tmp_path: Path, value: str) -> None:
    path = write_suite(tmp_path, TINY + f"margin: {value}\n", name="bad-margin")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert str(path) in message and "margin=" in message and "expected a number in [0, 1)" in message
    shown = {"-0.01": "-0.01", "1.5": "1.5", "big": "'big'", "true": "True", ".nan": "nan", "null": "None",
             "[0.01]": "[0.01]"}[value]
    assert f"margin={shown}:" in message


def test_a_replication_suite_is_its_parent_on_other_seeds_and_other_clips():
    quick, again = load_suite("quick"), load_suite("quick-replication")
    assert again.name == "quick-replication" and again.margin == quick.margin
    assert {c.data_seed for c in again.configs} == {1} and {c.data_seed for c in quick.configs} == {0}
    moved = {c.replace(seed=c.seed - 1000, data_seed=0).config_hash for c in again.configs}
    assert moved == set(quick.keys)
    assert [s for aa in again.aa_control for s in aa["streams"][0]] == \
        [s + 1000 for aa in quick.aa_control for s in aa["streams"][0]]
    assert not set(again.keys) & set(quick.keys)  # no run of the parent is reused: a fresh draw


@pytest.mark.parametrize(("extra", "message"), [
    ("extends: quick\nseed_offset: -1\n", "seed_offset=-1: expected an integer >= 0"),
    ("seed_offset: 5\n", "need `extends: <suite>`"),
    ("data_seed: 1\n", "need `extends: <suite>`"),
    ("extends: quick\ndata_seed: -2\n", "data_seed=-2: expected an integer >= 0"),
    ("extends: nope\n", "unknown suite 'nope'"),
])
def test_bad_replication_keys_are_named(tmp_path, extra, message):
    path = tmp_path / "rep.yaml"
    path.write_text("name: rep\n" + extra)
    with pytest.raises((SuiteError, SuiteNotFoundError), match=message):
        load_suite(path)


@pytest.mark.parametrize(("seconds", "gpu", "expected"), [(1.0, False, "audiocnn_tiny"), (10.0, False, "audiocnn_tiny"),
                                                         (1.0, True, "efficientnet_b0"), (2.0, True, "efficientnet_b0"),
                                                         (5.0, True, "efficientnet_b2")])
def test_auto_backbone_sizes_by_clip_length_on_a_gpu(seconds, gpu, expected) -> None:
    from benchmark.training.recipes import auto_backbone

    assert auto_backbone(seconds, gpu=gpu) == expected


def test_the_yours_template_composes_with_the_gpu_backbone_it_would_pick() -> None:
    """The GPU branch of `backbone: auto` without a GPU: the template's points on a task, with the backbone a GPU
    host picks for its clips, are valid RunConfigs whose model is built and runs one forward pass."""
    import dataclasses

    import torch

    from benchmark.model.classifier import build_model
    from benchmark.training.recipes import auto_backbone
    from tasks import get_task

    suite = load_suite("yours", task="toy-rhythm")
    spec = get_task("toy-rhythm")
    gpu_backbone = auto_backbone(spec.clip_seconds, gpu=True)
    assert gpu_backbone == "efficientnet_b0" and suite.name == "yours-toy-rhythm-audiocnn_tiny"
    for frontend in ("diffres", "avgpool"):
        cfg = next(c for c in suite.configs if c.frontend == frontend and c.reduction_rate == 0.75)
        cfg = dataclasses.replace(cfg, backbone=gpu_backbone)
        t_in = cfg.feature_config(spec).num_frames(spec.clip_seconds)
        model = build_model(cfg, num_classes=spec.num_classes, t_in=t_in).eval()
        wave = torch.randn(2, int(spec.clip_seconds * spec.sample_rate)) * 0.1
        with torch.no_grad():
            out = model(wave)
        logits = out[0] if isinstance(out, tuple) else out
        assert logits.shape == (2, spec.num_classes) and torch.isfinite(logits).all()
