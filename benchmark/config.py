"""One run of the benchmark as a frozen, hashable, plain value.

Building a `RunConfig` only coerces each field to its type (a `ConfigError` naming the field otherwise),
writes a user corpus's reference in its absolute form and stores δ = 0 for `spec`: it reads no corpus and
imports no registry, so equal fields make equal configs with equal hashes. Whether a config can run is
`benchmark.validation.validate(cfg)`, called by whoever makes one from input and by the training run.

`RunConfig` is the unit that Optuna samples, MLflow logs as params (`to_params`) and the report groups
by; `config_hash` is a run's identity (a finished run with the same hash is never trained again).
`RunConfig.for_task(task, **overrides)` starts from the task's training recipe (`benchmark.training.recipes`, chosen
by the task's registry entry, `TaskSpec.recipe`; the schedule its fields describe is there too).
The paper's system beyond its recipe table (`pretrained`, `head`, `balanced_sampling`, `weight_averaging`,
`batch_size_scales_with_rate`; modules `benchmark.model.pretrained`, `heads`, `sampling`, `averaging`) is a block
of fields added under version 1; `for_task(task, recipe="paper")` sets them as the paper's code did.

Conventions:
- `reduction_rate` (δ) is the fraction of frames removed: T' = floor(T * (1 - δ)).
  δ = 0 means "no reduction" and is only valid for the `spec` front-end; `spec` ignores δ, so a
  `spec` config always stores δ = 0 (a grid that crosses `spec` with several δ yields one identity).
- `time_mask_ms` is a duration, converted to frames at the run's hop, so a 1 ms-hop run masks the
  same stretch of audio as a 10 ms-hop run (the paper's masks are frames at 10 ms: 192 -> 1920 ms).
- `lr` decays by `lr_decay` from epoch `lr_decay_from`, every `lr_decay_every` epochs (`lr_at_epoch`);
  `warmup_epochs` > 0 ramps it up linearly per optimiser step over the first epochs (`lr_at_step`).
  `lr = 0` means no learning at all: a control for the run-health check (such a run must come out
  `trained = 0`, see `benchmark.training.train`).
- `patience`: None trains all `epochs`; k stops once k epochs in a row brought no new best val metric,
  but not before `min_epochs` epochs (a model that sits at chance for a while before it takes off,
  as DiffRes does while its score network finds the events, is not at a plateau).
  Either way the reported test metric is the one of the best-on-val epoch.

Identity (`identity`, `to_json`, `config_hash`): the canonical JSON of the fields plus `CONFIG_VERSION`.
A field added while `CONFIG_VERSION` is N declares `field(default=..., metadata={"since": N + 1})` and is
left out of the JSON while it holds its default: configs that do not use it keep the hash they had
before it existed (finished runs are still found, checkpoints still resume) and a config that sets it
gets a new identity. So a new field's default must reproduce the old behaviour exactly. Bumping
`CONFIG_VERSION` (a change of meaning: every identity changes anyway) makes the fields with `since` up
to the new version ordinary members of the JSON. MLflow params (`to_params`) always carry every field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from benchmark.fields import ConfigError, coerce
from benchmark.training.recipes import QUICK_RECIPE as Q
from benchmark.training.recipes import recipe_for

# Bump when the meaning of a field or the training code changes results for the same field values:
# every run identity (config_hash) changes with it, so old finished runs are not reused by mistake.
# Fields added later carry `metadata={"since": N}` (N > CONFIG_VERSION) and leave the identity while
# they hold their default (see the module docstring). Version 2: one random stream per consumer
# (benchmark.training.seeds), the quick recipe as the defaults, the fields of version 1's `since: 2` ordinary.
CONFIG_VERSION = "2"

LOSSES = ("auto", "ce", "bce")  # auto: cross-entropy for single-label tasks, BCE for multi-label
OPTIMIZERS = ("adam", "adamw")
NO_REDUCTION_FRONTEND = "spec"
DEFAULT_FILTERBANK = "mel"  # the cached log-mel; the other filterbanks are learned with the model


@dataclass(frozen=True)
class RunConfig:
    # what is compared
    task: str
    fold: int | None = None
    backbone: str = Q["backbone"]
    frontend: str = "diffres"
    hop_ms: float = 10.0
    reduction_rate: float = 0.5
    n_mels: int = Q["n_mels"]
    win_ms: float = 25.0
    seed: int = 0  # the run's random streams (benchmark.training.seeds): initial weights, shuffle, augmentations
    # the training recipe: the defaults are the quick recipe (Q: benchmark.training.recipes.QUICK_RECIPE), which
    # trains the embedded tasks to a plateau on a CPU
    optimizer: str = Q["optimizer"]
    lr: float = Q["lr"]
    beta1: float = Q["beta1"]
    beta2: float = Q["beta2"]
    weight_decay: float = Q["weight_decay"]
    lr_decay: float = Q["lr_decay"]
    lr_decay_every: int = Q["lr_decay_every"]
    lr_decay_from: int = Q["lr_decay_from"]
    epochs: int = Q["epochs"]
    batch_size: int = Q["batch_size"]
    freq_mask: int = Q["freq_mask"]
    time_mask_ms: float = Q["time_mask_ms"]
    mixup_alpha: float = Q["mixup_alpha"]
    mixup_prob: float = Q["mixup_prob"]
    guide_loss_weight: float = Q["guide_loss_weight"]
    loss: str = "auto"
    amp: bool = True  # autocast on CUDA only; CPU always runs in float32
    pretrained_weights: str | None = None  # local state_dict file for the backbone; no hub downloads
    max_train_clips: int | None = None  # tiny runs: a fixed subset of the training split
    max_eval_clips: int | None = None  # tiny runs: a fixed subset of val and test
    patience: int | None = Q["patience"]  # None: train all epochs
    warmup_epochs: int = Q["warmup_epochs"]  # linear lr warm-up, per step
    min_epochs: int = Q["min_epochs"]  # early stopping waits for this many epochs
    # the paper's system beyond its recipe table (docs/benchmark.md, "The paper's system")
    pretrained: str = "none"  # none | imagenet | a weights file, via timm
    head: str = "linear"  # benchmark.model.heads: linear | attention
    balanced_sampling: bool = False  # inverse label frequency sampler
    weight_averaging: str = "none"  # none | "A-B": mean of epochs A..B
    batch_size_scales_with_rate: bool = False  # batch / (1 - δ)
    # --- filterbank: waveform -> [B, T, F] before the front-end (`diffres.filterbanks`);
    # "mel" is the cached log-mel (the behaviour before the field existed), any other is learned per batch
    filterbank: str = "mel"
    # --- numerics: torch's intra-op threads on a CPU. The order of float sums depends on it, so it is part
    # of what a run is, never a consequence of how many workers share the machine (1 is what every CPU run
    # used before the field existed: a study gave each of its workers cpu_count // n_workers = 1 thread on
    # the 2-core machines that trained the committed results). Ignored on a GPU.
    cpu_threads: int = 1
    # --- the draw of clips: an embedded task's generator seed (0: the task's own clips; another value, a new draw
    # of train, val and test clips from the same generator, `TaskSpec.draw`). Only generated tasks have draws.
    data_seed: int = field(default=0, metadata={"since": 3})
    # --- a user corpus's fingerprint (declared fields, file names, sizes, mtimes: `tasks.usertask.task_identity`),
    # so runs on two versions of a corpus never share an identity. Filled once when a config of a user task is made
    # without it; a config rebuilt from its logged params keeps the logged value (and its hash), and training it
    # on a corpus that has changed since is refused (`benchmark.training.data`). None for registered tasks.
    task_files: str | None = field(default=None, metadata={"since": 3})

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, coerce(f.name, f.type, getattr(self, f.name)))
        from tasks.taskref import canonical_ref, is_user_ref

        if is_user_ref(self.task):  # a task YAML or `folder:DIR`: the absolute reference, valid from any folder
            object.__setattr__(self, "task", canonical_ref(self.task))
        if self.frontend == NO_REDUCTION_FRONTEND:
            object.__setattr__(self, "reduction_rate", 0.0)

    def feature_config(self, spec: Any = None) -> Any:
        """The `tasks.FeatureConfig` this run's features are computed with (its checks are the run's: a RunConfig
        that validates is one whose features can be built; the log-mel statistics of every run come from it)."""
        from tasks import get_task
        from tasks.features import FeatureConfig, FeatureConfigError

        spec = spec or get_task(self.task)
        try:
            return FeatureConfig(sample_rate=spec.sample_rate, n_mels=self.n_mels, win_ms=self.win_ms,
                                 hop_ms=self.hop_ms)
        except FeatureConfigError as err:
            raise ConfigError(f"{str(err).replace('FeatureConfig.', 'RunConfig.', 1)} (task {spec.name!r} at "
                              f"{spec.sample_rate} Hz)") from None

    # ------------------------------------------------------------------------------------ identity
    def replace(self, **changes: Any) -> RunConfig:
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {unknown}; known fields: {field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_params(self) -> dict[str, str | int | float | bool]:
        """Flat MLflow params: every field, None written as the string "None" (what MLflow stores)."""
        return {k: ("None" if v is None else v) for k, v in self.to_dict().items()}

    def identity(self) -> dict[str, Any]:
        """The fields that name this run: all of them, less those added after `CONFIG_VERSION` (field
        metadata `since`) that hold their default."""
        version = int(CONFIG_VERSION)
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("since", version) <= version or getattr(self, f.name) != f.default}

    def to_json(self) -> str:
        return json.dumps({"config_version": CONFIG_VERSION, **self.identity()}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=True)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def run_name(self) -> str:
        frontend = self.frontend if self.filterbank == DEFAULT_FILTERBANK else f"{self.filterbank}+{self.frontend}"
        return f"{self.task}/{frontend}/h{self.hop_ms}/d{self.reduction_rate}/s{self.seed}"

    @property
    def averaged_epochs(self) -> tuple[int, int] | None:
        """`weight_averaging` "A-B" as (A, B), 1-based inclusive; None for "none"."""
        if self.weight_averaging == "none":
            return None
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", self.weight_averaging)
        if match is None:
            raise ConfigError(f"RunConfig.weight_averaging={self.weight_averaging!r}: expected 'none' or 'A-B' "
                              f"(1-based epochs, e.g. '16-30')")
        return int(match[1]), int(match[2])

    @property
    def time_mask_frames(self) -> int:
        return int(round(self.time_mask_ms / self.hop_ms))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict (YAML, JSON, or MLflow params read back as strings); unknown keys raise."""
        data = {k: v for k, v in data.items() if k != "config_version"}
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {unknown}; known fields: {field_names()}")
        if "task" not in data:
            raise ConfigError("RunConfig needs a 'task' field")
        return cls(**data)

    @classmethod
    def for_task(cls, task: str, *, recipe: str = "table", **overrides: Any) -> RunConfig:
        """A config with the recipe of `recipe_for(task, recipe)`, then `overrides` on top. `recipe="table"`:
        the paper's recipe table (the default; its configs keep their identities); "paper": the table plus
        the rest of the paper's system (`PAPER_SYSTEM`: pretrained init, attention head, sampling, ...)."""
        return cls.from_dict({"task": task, **recipe_for(task, recipe), **overrides})


def field_names() -> list[str]:
    return [f.name for f in fields(RunConfig)]
