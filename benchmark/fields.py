"""How `RunConfig` (benchmark/config.py) reads and checks its fields: values from YAML, the CLI and MLflow
params coerced to each field's type (so equal configs hash equally), and the checks that ask a registry
(tasks, front-ends, filterbanks, timm's backbones). Every error is a `ConfigError` naming the field and value."""

from __future__ import annotations

import difflib
from typing import Any


class ConfigError(ValueError):
    """A RunConfig field has a value outside what the benchmark accepts (the message names field and value)."""


def check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"RunConfig.{name}={value!r}: expected {expected}")


def coerce(name: str, type_name: str, value: Any) -> Any:
    """Turn YAML/CLI/MLflow-param values into the field's type, so equal configs hash equally."""
    optional = "None" in type_name
    if value is None or (optional and value in ("None", "none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"RunConfig.{name}=None: expected a value of type {type_name}")
    base = type_name.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(value, bool):  # True is an int in Python; never a number here
            raise TypeError
        if base == "float":
            return float(value)
        if base == "int":
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise TypeError
            return int(number)
        if base == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"RunConfig.{name}={value!r}: expected a value of type {base}") from None
    raise AssertionError(f"unhandled field type {type_name}")


def check_task(task: str, fold: int | None) -> Any:
    """The task's spec (tasks.TaskSpec), after checking `fold` against its protocol."""
    from tasks import get_task  # the task registry names valid tasks and their fold protocol

    try:
        spec = get_task(task)
    except KeyError as err:
        raise ConfigError(f"RunConfig.task={task!r}: {err.args[0] if err.args else err}") from None
    try:
        spec.check_fold(fold)
    except ValueError as err:
        raise ConfigError(f"RunConfig.fold={fold!r}: {err}") from None
    return spec


def task_files(task: str) -> str | None:
    """A user task's corpus fingerprint (declared fields + file names, sizes, mtimes): part of a run's identity,
    so runs on two versions of a corpus never mix. None for the registered tasks (their identities unchanged)."""
    from tasks.taskref import is_user_ref
    from tasks.usertask import task_identity

    return task_identity(task) if is_user_ref(task) else None


def check_frontend(frontend: str) -> None:
    from diffres import list_frontends

    names = list_frontends()
    check(frontend in names, "frontend", frontend, f"one of {names}")


def check_filterbank(filterbank: str, spec: Any) -> None:
    from diffres.filterbanks import filterbank_info, list_filterbanks

    names = list_filterbanks()
    check(filterbank in names, "filterbank", filterbank, f"one of {names}")
    if filterbank_info(filterbank).learnable:
        check(spec.sample_rate == 16000, "filterbank", filterbank,
               f"'mel' for task {spec.name!r} at {spec.sample_rate} Hz (the learnable filterbanks are "
               f"initialised for 16 kHz audio)")


def check_backbone(backbone: str) -> None:
    import timm

    import benchmark.model.backbones  # noqa: F401  (registers the repo's own backbones in timm)

    if not timm.is_model(backbone):
        close = difflib.get_close_matches(backbone, timm.list_models(), n=8, cutoff=0.5)
        raise ConfigError(f"RunConfig.backbone={backbone!r}: expected a timm model name; close matches: "
                          f"{close or 'none'}; quick choices: ['audiocnn_tiny', 'mobilenetv3_small_050', 'resnet10t', "
                          f"'efficientnet_b0', 'efficientnet_b2']; all: timm.list_models()")
