"""RunConfig: validation at construction, identity (hash, and fields added later), flat params, recipes,
lr schedule (decay and warm-up)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmark.config import CONFIG_VERSION, RunConfig, field_names
from benchmark.fields import ConfigError
from benchmark.training.recipes import PAPER_RECIPES, QUICK_RECIPE, lr_at_epoch, lr_at_step, recipe_for
from benchmark.validation import validate
from diffres import list_frontends
from tasks import get_task, list_tasks


def make(**kw) -> RunConfig:
    return validate(RunConfig(**{"task": "toy-transients", **kw}))


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"hop_ms": 0.0}, "hop_ms", "> 0"),
        ({"hop_ms": -5}, "hop_ms", "> 0"),
        ({"hop_ms": 40.0}, "hop_ms", "<= win_ms=25.0"),
        ({"n_mels": 500}, "n_mels", "<= 201 (FFT bins of a 25.0 ms window)"),
        ({"n_mels": 500, "filterbank": "leaf"}, "n_mels", "FFT bins"),
        ({"hop_ms": 0.33}, "hop_ms", "a whole number (>= 1) of samples at 16000 Hz, got 5.28"),
        ({"hop_ms": 0.03}, "hop_ms", "samples at 16000 Hz, got 0.48"),
        ({"win_ms": 25.03}, "win_ms", "samples at 16000 Hz"),
        ({"reduction_rate": 1.0}, "reduction_rate", "(0, 1)"),
        ({"reduction_rate": -0.1}, "reduction_rate", "(0, 1)"),
        ({"reduction_rate": 0.0, "frontend": "avgpool"}, "reduction_rate", "frontend='spec'"),
        ({"reduction_rate": 0.999, "frontend": "avgpool"}, "reduction_rate", "T' >= 1 of the T=151 frames"),
        ({"frontend": "leaf"}, "frontend", "diffres"),
        ({"backbone": "efficientnet_b22"}, "backbone", "efficientnet_b2"),
        ({"task": "esc-51"}, "task", "toy-transients"),
        ({"fold": 1}, "fold", "None"),
        ({"lr": -1e-3}, "lr", ">= 0 (0: no learning, a control for the run-health check)"),
        ({"lr": float("nan")}, "lr", ">= 0"),
        ({"patience": 0}, "patience", "None (train all epochs) or an integer >= 1"),
        ({"patience": 1.5}, "patience", "int"),
        ({"warmup_epochs": -1}, "warmup_epochs", "[0, epochs=30]"),
        ({"warmup_epochs": 31}, "warmup_epochs", "epochs of linear lr warm-up"),
        ({"min_epochs": 31}, "min_epochs", "[0, epochs=30]"),
        ({"min_epochs": -1}, "min_epochs", "before early stopping"),
        ({"beta1": 1.0}, "beta1", "[0, 1)"),
        ({"lr_decay": 0.0}, "lr_decay", "(0, 1]"),
        ({"epochs": 0}, "epochs", ">= 1"),
        ({"batch_size": 0}, "batch_size", ">= 1"),
        ({"freq_mask": 33}, "freq_mask", "n_mels=32"),
        ({"mixup_prob": 1.5}, "mixup_prob", "[0, 1]"),
        ({"loss": "focal"}, "loss", "'bce'"),
        ({"optimizer": "sgd"}, "optimizer", "adam"),
        ({"max_train_clips": 0}, "max_train_clips", ">= 1"),
        ({"epochs": 2.5}, "epochs", "int"),
        ({"seed": True}, "seed", "int"),
        ({"cpu_threads": 0}, "cpu_threads", ">= 1"),
        ({"lr": "fast"}, "lr", "float"),
    ],
)
def test_bad_values_name_field_and_value(changes, field, expected):
    with pytest.raises(ConfigError) as err:
        make(**changes)
    message = str(err.value)
    assert f"RunConfig.{field}=" in message
    assert repr(changes[field]) in message
    assert expected in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unknown_frontend_lists_every_registered_one():
    with pytest.raises(ConfigError) as err:
        make(frontend="leaf")
    assert all(name in str(err.value) for name in list_frontends())


def test_spec_stores_no_reduction_so_a_grid_over_delta_gives_one_identity():
    a, b = make(frontend="spec", reduction_rate=0.5), make(frontend="spec", reduction_rate=0.0)
    assert a.reduction_rate == 0.0
    assert a == b and a.config_hash == b.config_hash


def test_hash_is_stable_and_changes_with_every_field():
    cfg = make()
    assert len(cfg.config_hash) == 12 and int(cfg.config_hash, 16) >= 0
    assert cfg.config_hash == make().config_hash
    changed = {"seed": 1, "reduction_rate": 0.75, "lr": 2e-3, "backbone": "resnet10t", "hop_ms": 5.0,
               "mixup_prob": 0.5, "max_train_clips": 10, "guide_loss_weight": 0.0, "patience": 3,
               "warmup_epochs": 2}
    hashes = {cfg.replace(**{k: v}).config_hash for k, v in changed.items()}
    assert cfg.config_hash not in hashes and len(hashes) == len(changed)


def test_equal_values_of_other_python_types_hash_equally():
    assert make(lr=1, hop_ms=10).config_hash == make(lr=1.0, hop_ms=10.0).config_hash
    assert make(lr="1e-3", epochs="6").config_hash == make(lr=1e-3, epochs=6).config_hash


LATER_FIELDS = {"data_seed": 0, "task_files": None}  # added under version 2, at their defaults


def test_canonical_json_carries_the_config_version():
    payload = json.loads(make().to_json())
    assert payload["config_version"] == CONFIG_VERSION
    assert set(payload) == {"config_version", *field_names()} - set(LATER_FIELDS)


def test_fields_added_later_say_so_and_default_to_the_old_behaviour():
    later = {f.name: f for f in dataclasses.fields(RunConfig) if "since" in f.metadata}
    assert set(later) == set(LATER_FIELDS)
    assert all(f.metadata["since"] > int(CONFIG_VERSION) for f in later.values())
    assert {name: f.default for name, f in later.items()} == LATER_FIELDS


def test_a_field_added_later_enters_the_identity_only_when_set():
    cfg = make()
    assert cfg.replace(**LATER_FIELDS).config_hash == cfg.config_hash
    for name, value in (("data_seed", 1),):
        changed = cfg.replace(**{name: value})
        assert changed.config_hash != cfg.config_hash
        assert json.loads(changed.to_json())[name] == value
        assert changed.identity() == {**cfg.identity(), name: value}
    assert set(cfg.to_params()) == set(field_names())  # MLflow params always carry every field


def test_params_of_a_run_logged_before_the_new_fields_give_its_identity_back():
    """An MLflow run from before `data_seed` existed has no such param: the config it names is unchanged."""
    cfg = RunConfig.for_task("esc50", fold=3)
    old_params = {k: str(v) for k, v in cfg.to_params().items() if k not in LATER_FIELDS}
    assert RunConfig.from_dict(old_params).config_hash == cfg.config_hash
    assert RunConfig.from_dict(cfg.to_params()).config_hash == cfg.config_hash  # rebuilt from logged params


def test_defaults_are_the_quick_recipe_and_a_draw_is_only_for_generated_tasks():
    assert {k: getattr(make(), k) for k in QUICK_RECIPE} == QUICK_RECIPE
    assert make(data_seed=2).config_hash != make().config_hash
    with pytest.raises(ConfigError, match=r"RunConfig.data_seed=1: .*esc50"):
        validate(RunConfig.for_task("esc50", fold=1, data_seed=1))
    with pytest.raises(ConfigError, match=r"RunConfig.data_seed=-1"):
        make(data_seed=-1)


def test_lr_zero_is_a_valid_no_learning_control():
    assert make(lr=0).lr == 0.0 and lr_at_step(make(lr=0, warmup_epochs=2), 0, 0, 5) == 0.0


def test_params_are_flat_and_round_trip_through_strings():
    cfg = make(max_train_clips=20, fold=None)
    params = cfg.to_params()
    assert set(params) == set(field_names())
    assert all(isinstance(v, (str, int, float, bool)) for v in params.values())
    assert params["fold"] == "None"
    as_mlflow_stores_them = {k: str(v) for k, v in params.items()}
    assert RunConfig.from_dict(as_mlflow_stores_them) == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_and_replace_reject_unknown_fields():
    with pytest.raises(ConfigError, match="unknown RunConfig field"):
        RunConfig.from_dict({"task": "toy-transients", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="unknown RunConfig field"):
        make().replace(delta=0.5)
    with pytest.raises(ConfigError, match="'task'"):
        RunConfig.from_dict({"lr": 0.1})


def test_replace_makes_a_plain_value_that_validate_checks():
    changed = make().replace(reduction_rate=2.0)  # a value: nothing checked yet
    with pytest.raises(ConfigError, match="reduction_rate"):
        validate(changed)


def test_fold_protocol_follows_the_task_registry():
    folded = [name for name in list_tasks() if get_task(name).folds]
    assert folded, "expected at least one cross-validation task (ESC-50)"
    name, folds = folded[0], get_task(folded[0]).folds
    assert RunConfig(task=name, fold=folds).fold == folds
    for bad in (None, 0, folds + 1):
        with pytest.raises(ConfigError, match="fold"):
            validate(RunConfig(task=name, fold=bad))


@pytest.mark.parametrize("hop_ms", [0.0625, 0.33, 1.0, 2.5, 2.53, 3.3, 10.0, 10.01])
def test_a_hop_the_features_reject_is_rejected_at_config_time(hop_ms):
    """RunConfig and FeatureConfig share one check: a config that validates also loads its features."""
    from tasks.features import FeatureConfig, FeatureConfigError

    try:
        FeatureConfig(sample_rate=get_task("toy-transients").sample_rate, n_mels=32, hop_ms=hop_ms)
    except FeatureConfigError as feature_err:
        with pytest.raises(ConfigError) as err:
            make(hop_ms=hop_ms)
        message = str(err.value)
        assert f"RunConfig.hop_ms={hop_ms!r}" in message and "16000 Hz" in message
        assert "toy-transients" in message
        assert str(feature_err).split(": expected ")[1] in message  # the same words as the features'
    else:
        assert make(hop_ms=hop_ms).hop_ms == hop_ms


def test_fold_errors_are_the_registrys():
    for task, fold in (("esc50", 6), ("esc50", None), ("toy-transients", 1)):
        with pytest.raises(ValueError) as registry_err:
            get_task(task).check_fold(fold)
        with pytest.raises(ConfigError) as err:
            validate(RunConfig(task=task, fold=fold))
        assert str(err.value) == f"RunConfig.fold={fold!r}: {registry_err.value}"


@pytest.mark.parametrize("task", list_tasks())
def test_every_registered_task_has_a_recipe(task):
    recipe = recipe_for(task)
    assert recipe in list(PAPER_RECIPES.values()) + [QUICK_RECIPE]
    fold = 1 if get_task(task).folds else None
    cfg = RunConfig.for_task(task, fold=fold)
    assert cfg.lr == recipe["lr"] and cfg.backbone == recipe["backbone"]


def test_the_recipe_is_task_data_not_a_name_rule():
    """A task's recipe family is a field of its registry entry: nsynth-pitch takes NSynth's recipe by it, and a
    task named like a paper task but registered as quick gets the quick recipe."""
    import dataclasses

    from tasks.registry import TASKS

    assert get_task("nsynth-pitch").recipe == "nsynth" and recipe_for("nsynth-pitch") == PAPER_RECIPES["nsynth"]
    assert {get_task(t).recipe for t in list_tasks() if t.startswith("toy")} == {"quick"}
    spec = dataclasses.replace(get_task("toy-transients"), name="esc50-lookalike")
    TASKS.add("esc50-lookalike", spec)
    try:
        assert recipe_for("esc50-lookalike") == QUICK_RECIPE
        TASKS.remove("esc50-lookalike")
        TASKS.add("esc50-lookalike", dataclasses.replace(spec, recipe="librispeech"))
        with pytest.raises(KeyError, match="recipe family 'librispeech'"):
            recipe_for("esc50-lookalike")
    finally:
        TASKS.remove("esc50-lookalike")


def test_identities_of_finished_runs_do_not_move():
    """config_hash names finished runs and checkpoints: a refactor must not change it (CONFIG_VERSION 2's)."""
    assert RunConfig(task="toy-transients").config_hash == "d3f9bbe6817a"
    assert RunConfig.for_task("esc50", fold=3).config_hash == "ec337344105e"
    assert RunConfig.for_task("audioset", frontend="avgpool").config_hash == "36c823ce40dd"


def test_paper_recipes_match_the_paper_table():
    esc = RunConfig.for_task("esc50", fold=1)
    assert (esc.lr, esc.epochs, esc.lr_decay, esc.lr_decay_every, esc.lr_decay_from) == (2.5e-4, 80, 0.95, 5, 40)
    assert (esc.freq_mask, esc.time_mask_frames, esc.mixup_prob, esc.batch_size) == (48, 96, 0.5, 48)
    assert (esc.beta1, esc.beta2, esc.weight_decay, esc.backbone) == (0.95, 0.999, 5e-7, "efficientnet_b2")
    assert RunConfig.for_task("audioset").time_mask_frames == 192
    # the time mask is a duration: a 1 ms hop masks ten times the frames
    assert esc.replace(hop_ms=1.0).time_mask_frames == 960
    with pytest.raises(KeyError, match="librispeech"):
        recipe_for("librispeech")  # not a registered task


def test_without_warm_up_every_step_of_an_epoch_has_the_epoch_lr():
    cfg = make(lr_decay_from=2, lr_decay_every=1, epochs=6, warmup_epochs=0)
    assert all(lr_at_step(cfg, e, s, 7) == lr_at_epoch(cfg, e) for e in range(cfg.epochs) for s in range(7))


def test_warm_up_is_linear_per_step_then_the_decay_schedule():
    cfg = make(lr=1e-3, warmup_epochs=2, lr_decay_from=1, lr_decay_every=1, lr_decay=0.5, epochs=6)
    steps = 4  # W = 8 warm-up steps: the factor is (s + 1) / 8 at global step s
    lrs = [lr_at_step(cfg, e, s, steps) for e in range(cfg.epochs) for s in range(steps)]
    factors = [(g + 1) / 8 for g in range(8)] + [1.0] * 16
    epochs = [g // steps for g in range(len(lrs))]
    assert lrs == [pytest.approx(lr_at_epoch(cfg, e) * f, rel=1e-12) for e, f in zip(epochs, factors, strict=True)]
    assert lrs[0] == pytest.approx(cfg.lr / 8) and lrs[7] == lr_at_epoch(cfg, 1)
    assert lr_at_step(cfg, 2, 0, steps) == lr_at_epoch(cfg, 2)


@pytest.mark.parametrize(("start", "every", "gamma"), [(10, 5, 0.5), (40, 5, 0.95), (0, 2, 0.85), (3, 1, 0.5)])
def test_lr_schedule_equals_psla_multistep_lr(start, every, gamma):
    """PSLA: MultiStepLR(range(start, 1000, every), gamma), stepped after each epoch."""
    cfg = make(lr=1e-3, lr_decay=gamma, lr_decay_every=every, lr_decay_from=start, epochs=60)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(range(start, 1000, every)), gamma=gamma)
    for epoch in range(cfg.epochs):
        assert lr_at_epoch(cfg, epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


def test_cpu_threads_are_part_of_a_run_once_they_leave_the_default():
    # 1 thread is what every committed CPU run used: those keep their identity; another count is another run
    assert make().config_hash == make(cpu_threads=1).config_hash
    assert make(cpu_threads=2).config_hash != make().config_hash


def test_a_config_is_a_plain_value_and_validate_checks_it(tmp_path):
    odd = RunConfig(task="no-such-task", n_mels=500)  # building reads nothing and checks nothing but types
    assert odd == RunConfig(task="no-such-task", n_mels=500) and odd.config_hash == RunConfig(
        task="no-such-task", n_mels=500).config_hash
    with pytest.raises(ConfigError, match="RunConfig.task='no-such-task'"):
        validate(odd)
    corpus = tmp_path / "c"
    for label in ("cat", "dog"):
        (corpus / label).mkdir(parents=True)
    plain = RunConfig(task=f"folder:{corpus}")  # no corpus walked: its fingerprint is filled by validate
    assert plain.task_files is None
    assert validate(RunConfig(task="toy-transients")) == RunConfig(task="toy-transients")
