"""Suites: a suite YAML (`benchmark/suites/<name>.yaml`) becomes a validated list of run configs, and the
data check that runs before anything is created or trained.

- A suite is data: `base` RunConfig overrides (on each task's recipe with `task_recipe: true`, or with the rest
  of the paper's system with `task_recipe: paper`), `grids` (axes -> value lists; `zip` lists axes that move
  together) and an optional `search` space with `n_trials`. The grids' union (by config hash) is the points.
- `margin`: the non-inferiority margin of "equal or better" claims in metric units (default DEFAULT_MARGIN).
- `aa_control`: the report's A/A control (settings and two seed streams of points the grids list).
- `extends: <suite>` + `seed_offset: N` (+ `data_seed: D`): that suite's keys less those this file sets, every
  `seed` moved by N, every point on draw D of its task's clips (`RunConfig.data_seed`) — the same design on
  fresh seeds and clips, the replication of a suite (`quick-replication`, compared with `quick`).
- `--task TASK` (`load_suite(suite, task=...)`): the suite's design on one task, e.g. a user's corpus (a task
  YAML, `folder:DIR`, ...): TASK in `base`, the suite named `<suite>-<task name>`. The suite may have no task
  axis. Templates written for it live in `benchmark/suites/templates/` (`yours`: the standard ablation).
- `backbone: auto` in `base`: the quick CPU backbone without a GPU, EfficientNet-B0/B2 by clip length on one
  (`recipes.auto_backbone`); the suite's name ends with it, so CPU and GPU points never share a study.
- Every error names the file, the key and the value. No Optuna here: `report` and `suites` read suites without it.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark.config import RunConfig, field_names
from benchmark.paths import SUITES_DIR
from benchmark.report.stats import DEFAULT_MARGIN
from benchmark.validation import validate

if TYPE_CHECKING:
    from tasks import TaskSpec

logger = logging.getLogger(__name__)

_TOP_KEYS = ("name", "description", "task_recipe", "base", "grids", "search", "n_trials", "margin", "extends",
             "seed_offset", "data_seed", "aa_control")
_SEARCH_KEYS = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log", "step"},
                "categorical": {"type", "choices"}}
_ZIP = "zip"


class SuiteError(ValueError):
    """A suite YAML file is malformed, or names a key, axis or value the benchmark does not accept."""


class SuiteNotFoundError(FileNotFoundError):
    """No suite of that name in benchmark/suites and no such YAML file."""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    configs: tuple[RunConfig, ...]  # the grid points, deduplicated by config hash, in file order
    search: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    n_trials: int | None = None
    margin: float = DEFAULT_MARGIN  # non-inferiority margin of the report's "equal or better" claims
    task: str | None = None  # the `--task` the suite was loaded for (workers are started with it)
    aa_control: tuple[Any, ...] = ()  # the report's A/A null controls, as written (benchmark.report.aacontrol)

    @property
    def keys(self) -> list[str]:
        return [cfg.config_hash for cfg in self.configs]

    def study_name(self, key: str | None = None) -> str:
        """The grid study is named after the suite; a search suite has one study per point."""
        return self.name if key is None else f"{self.name}.{key}"


TEMPLATES_DIR = SUITES_DIR / "templates"  # suites without a task: loaded with `--task`


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def list_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str | Path) -> Path:
    """`quick` -> benchmark/suites/quick.yaml; a path to a .yaml/.yml file is taken as is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise SuiteNotFoundError(f"suite file {path} does not exist")
        return path
    path = SUITES_DIR / f"{text}.yaml"
    if not path.is_file() and (TEMPLATES_DIR / f"{text}.yaml").is_file():
        return TEMPLATES_DIR / f"{text}.yaml"
    if not path.is_file():
        raise SuiteNotFoundError(f"unknown suite {text!r}: known suites {list_suites()} (in {SUITES_DIR}), "
                                 f"templates {list_templates()} (with --task), or give a path to a .yaml file")
    return path


def load_suite(name_or_path: str | Path | Suite, task: str | None = None, *, validated: bool = True) -> Suite:
    """Read and validate a suite (on `task` when given, see the module docstring); every error names the file,
    the key and the value. `validated=False` leaves each point's `validate` out (a listing that only counts)."""
    if isinstance(name_or_path, Suite):
        return name_or_path if task is None or task == name_or_path.task else load_suite(name_or_path.path, task)
    path = suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: malformed YAML: {err}") from None
    if not isinstance(data, dict) or any(key not in _TOP_KEYS for key in data):
        shown = f"unknown key {next(k for k in data if k not in _TOP_KEYS)!r}" if isinstance(data, dict) else \
            f"got {type(data).__name__}"
        raise SuiteError(f"{path}: {shown}; expected a mapping with keys {list(_TOP_KEYS)}")
    data = _extended(data, path)
    if task is not None:
        data = _on_task(data, task, path)
    data = _auto_backbone(data, path)

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise SuiteError(f"{path}: name={name!r}: expected letters, digits, '-' or '_' (it names "
                         f"directories and the Optuna study)")
    fields_ = field_names()
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise SuiteError(f"{path}: base: expected a mapping of RunConfig fields, got {base!r}")
    for key in (k for k in base if k not in fields_):
        raise SuiteError(f"{path}: base: unknown RunConfig field {key!r}; known fields: {fields_}")

    task_recipe = data.get("task_recipe", False)
    if not isinstance(task_recipe, bool) and task_recipe != "paper":
        raise SuiteError(f"{path}: task_recipe={task_recipe!r}: expected true (every point from its task's recipe, "
                         f"RunConfig.for_task), paper (with the rest of the paper's system) or false")

    grids = data.get("grids")
    if not isinstance(grids, list) or not grids:
        raise SuiteError(f"{path}: grids: expected a non-empty list of grids (axis -> list of values), "
                         f"got {grids!r}")
    from tasks.taskref import canonical_ref, is_user_ref

    configs: dict[str, RunConfig] = {}
    for index, grid in enumerate(grids):
        where = f"{path}: grids[{index}]"
        for point in _expand_grid(grid, where, fields_):
            merged = {**base, **point}
            if isinstance(merged.get("task"), str) and is_user_ref(merged["task"]):
                merged["task"] = canonical_ref(merged["task"], path.parent)  # a task YAML beside the suite
            if "task" not in merged:
                raise SuiteError(f"{where}: no task: give `task` in base or as an axis, or run the suite with "
                                 f"--task TASK (a task name, a task YAML, folder:DIR, hear:DIR, manifest:FILE)")
            try:
                cfg = (_build_recipe(recipe="paper" if task_recipe == "paper" else "table", **merged)
                       if task_recipe else RunConfig.from_dict(merged))
                cfg = validate(cfg) if validated else cfg
            except (ValueError, KeyError, TypeError) as err:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise SuiteError(f"{where} point ({shown}): {error_message(err)}") from None
            configs.setdefault(cfg.config_hash, cfg)

    search, n_trials = data.get("search") or {}, data.get("n_trials")
    _validate_search(search, n_trials, path, fields_, axes=_axes(grids))
    return Suite(name=name, path=path, description=str(data.get("description", "")).strip(),
                 configs=tuple(configs.values()), search=search, n_trials=n_trials,
                 margin=_margin(data.get("margin", DEFAULT_MARGIN), path), task=task,
                 aa_control=tuple(data.get("aa_control") or ()))


def _on_task(data: dict[str, Any], task: str, path: Path) -> dict[str, Any]:
    """`--task`: the suite on one task, named after it (a task axis would make that ambiguous)."""
    from tasks import get_task

    for index, grid in enumerate(data.get("grids") or []):
        if isinstance(grid, dict) and "task" in grid:
            raise SuiteError(f"{path}: grids[{index}] has a task axis {grid['task']!r}; --task {task} runs a suite "
                             f"whose grids name no task (e.g. `yours`)")
    try:
        spec = get_task(task)
    except (KeyError, ValueError) as err:
        raise SuiteError(f"--task {task}: {error_message(err)}") from None
    name = f"{data.get('name', path.stem)}-{re.sub(r'[^A-Za-z0-9_-]', '-', spec.name)}"
    grids = data.get("grids")
    if spec.folds and isinstance(grids, list) and not any(isinstance(g, dict) and "fold" in g for g in grids) \
            and "fold" not in (data.get("base") or {}):  # a k-fold task: every point on every fold
        grids = [{**g, "fold": list(range(1, spec.folds + 1))} if isinstance(g, dict) else g for g in grids]
    return {**data, "name": name, "base": {**(data.get("base") or {}), "task": task}, "grids": grids}


def _auto_backbone(data: dict[str, Any], path: Path) -> dict[str, Any]:
    base = data.get("base")
    if not isinstance(base, dict) or base.get("backbone") != "auto":
        return data
    from benchmark.training.recipes import auto_backbone
    from tasks import get_task

    if "task" not in base:
        raise SuiteError(f"{path}: base: backbone='auto' is sized from the task's clip length: give `task` in base "
                         f"or run the suite with --task TASK")
    backbone = auto_backbone(get_task(base["task"]).clip_seconds)
    return {**data, "name": f"{data.get('name', path.stem)}-{backbone}", "base": {**base, "backbone": backbone}}


def _extended(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """`extends` + `seed_offset` (+ `data_seed`): the parent suite under this file, seeds moved, clips drawn."""
    offset, draw = data.get("seed_offset", 0), data.get("data_seed")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise SuiteError(f"{path}: seed_offset={offset!r}: expected an integer >= 0")
    if draw is not None and (not isinstance(draw, int) or isinstance(draw, bool) or draw < 0):
        raise SuiteError(f"{path}: data_seed={draw!r}: expected an integer >= 0 (a draw of the tasks' clips)")
    if "extends" not in data:
        if offset or draw is not None:
            raise SuiteError(f"{path}: seed_offset / data_seed need `extends: <suite>` (the suite to replicate)")
        return data
    parent_path = suite_path(str(data["extends"]))
    if parent_path.resolve() == path.resolve():
        raise SuiteError(f"{path}: extends={data['extends']!r}: a suite cannot extend itself")
    parent = yaml.safe_load(parent_path.read_text()) or {}
    if "extends" in parent:
        raise SuiteError(f"{path}: extends={data['extends']!r}: that suite extends another; extend the first one")
    merged = {**parent, **{k: v for k, v in data.items() if k not in ("extends", "seed_offset", "data_seed")}}

    def moved(values: Any) -> Any:
        return [v + offset if isinstance(v, int) and not isinstance(v, bool) else v for v in values] \
            if isinstance(values, list) else values

    merged["grids"] = [{k: moved(v) if k == "seed" else v for k, v in grid.items()}
                       if isinstance(grid, dict) else grid for grid in merged.get("grids") or []]
    merged["aa_control"] = [{**aa, "streams": [moved(st) for st in aa.get("streams") or []]} if isinstance(aa, dict)
                            else aa for aa in merged.get("aa_control") or []]
    if isinstance(merged.get("base"), dict) and "seed" in merged["base"]:
        merged["base"] = {**merged["base"], "seed": merged["base"]["seed"] + offset}
    return {**merged, "base": {**(merged.get("base") or {}), "data_seed": draw}} if draw is not None else merged


def _margin(value: Any, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise SuiteError(f"{path}: margin={value!r}: expected a number in [0, 1), the non-inferiority margin in "
                         f"metric units (0.01 = 1 accuracy point or 0.01 mAP; default {DEFAULT_MARGIN})")
    return float(value)


def _build_recipe(task: str, recipe: str, **overrides: Any) -> RunConfig:
    from tasks import get_task

    get_task(task)  # an unknown task is named before the recipe lookup
    return RunConfig.for_task(task, recipe=recipe, **overrides)


def _expand_grid(grid: Any, where: str, fields_: list[str]) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise SuiteError(f"{where}: expected a mapping of axis -> list of values, got {grid!r}")
    axes: dict[str, list[Any]] = {}
    for axis, values in grid.items():
        if axis == _ZIP:
            continue
        if axis not in fields_:
            raise SuiteError(f"{where}: unknown axis {axis!r}; axes are RunConfig fields: {fields_}")
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{where}: {axis}={values!r}: expected a non-empty list of values")
        axes[axis] = values
    zipped = grid.get(_ZIP, [{}])
    if not isinstance(zipped, list) or not zipped or not all(isinstance(z, dict) for z in zipped):
        raise SuiteError(f"{where}: zip={zipped!r}: expected a non-empty list of mappings "
                         f"(axes that move together, e.g. {{hop_ms: 5, reduction_rate: 0.5}})")
    for entry in zipped:
        for axis in entry:
            if axis not in fields_:
                raise SuiteError(f"{where}: zip: unknown axis {axis!r}; axes are RunConfig fields: {fields_}")
            if axis in axes:
                raise SuiteError(f"{where}: zip: axis {axis!r} is also a grid axis of this grid")
    return [{**dict(zip(axes, values, strict=True)), **entry}
            for values in itertools.product(*axes.values()) for entry in zipped]


def _axes(grids: list[dict[str, Any]]) -> set[str]:
    axes = {axis for grid in grids for axis in grid if axis != _ZIP}
    return axes | {axis for grid in grids for entry in grid.get(_ZIP, []) for axis in entry}


def _validate_search(search: Any, n_trials: Any, path: Path, fields_: list[str], axes: set[str]) -> None:
    if not isinstance(search, dict):
        raise SuiteError(f"{path}: search: expected a mapping param -> {{type, low, high, log}}, got {search!r}")
    for param, spec in search.items():
        where = f"{path}: search.{param}"
        if param not in fields_:
            raise SuiteError(f"{where}: unknown RunConfig field {param!r}; known fields: {fields_}")
        if param in axes:
            raise SuiteError(f"{where}: {param!r} is also a grid axis; a parameter is either searched or gridded")
        if not isinstance(spec, dict) or spec.get("type") not in _SEARCH_KEYS:
            raise SuiteError(f"{where}={spec!r}: expected a mapping with type one of {list(_SEARCH_KEYS)}")
        unknown = set(spec) - _SEARCH_KEYS[spec["type"]]
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {sorted(unknown)} for type {spec['type']!r}; "
                             f"expected {sorted(_SEARCH_KEYS[spec['type']])}")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise SuiteError(f"{where}.choices={spec.get('choices')!r}: expected a non-empty list")
            continue
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
            raise SuiteError(f"{where}: low={low!r}, high={high!r}: expected numbers with low < high")
        if spec.get("log", False) and low <= 0:
            raise SuiteError(f"{where}: low={low!r}: a log-scaled range needs low > 0")
        if not isinstance(spec.get("log", False), bool):
            raise SuiteError(f"{where}.log={spec['log']!r}: expected true or false")
    if search and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1):
        raise SuiteError(f"{path}: n_trials={n_trials!r}: expected an integer >= 1 with a search space")
    if not search and n_trials is not None:
        raise SuiteError(f"{path}: n_trials={n_trials!r} without a search space; grids run each point once")


# ---------------------------------------------------------------------------------------------- data
def check_task_data(tasks: Iterable[str], data_dir: str | os.PathLike | None = None) -> list[TaskSpec]:
    """Fail before anything is created or trained when a task's data cannot be had: a hub task offline
    without a local copy raises `TaskDataUnavailable` with what to download. Returns the tasks' specs."""
    from tasks import get_task
    from tasks.data import resolve_files

    specs = [get_task(name) for name in sorted(set(tasks))]
    for spec in specs:
        resolve_files(spec, data_dir)  # embedded tasks: generated here once; hub tasks: local copy or reachable hub
    return specs


def check_data(suite: Suite, data_dir: str | os.PathLike | None = None) -> None:
    """`check_task_data` for every task of the suite, and the pretrained weights of every point
    (`benchmark.model.pretrained.check_pretrained`), instead of failing every point in turn; warn when a suite
    of hub tasks is about to train on a CPU."""
    from benchmark.model.pretrained import check_pretrained

    specs = check_task_data((cfg.task for cfg in suite.configs), data_dir)
    check_pretrained(suite.configs)
    import torch

    hub = [spec.name for spec in specs if not spec.is_local]
    if hub and not torch.cuda.is_available():
        logger.warning("suite %s trains %d points on hub tasks (%s) and no GPU is visible: it is sized for a "
                       "GPU and will be very slow on this CPU", suite.name, len(suite.configs), ", ".join(hub))


def error_message(err: BaseException) -> str:
    """The text of an error; a KeyError's message without the quotes `str(KeyError)` adds."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
