"""Training recipes as data, and the learning-rate schedule their fields describe.

`PAPER_RECIPES`: the PSLA-style recipes of the authors' code (the `pydiffres` package and its training
scripts forked from PSLA), one per task family, compared row by row in docs/fidelity.md; `QUICK_RECIPE`: the
CPU recipe of the embedded offline tasks and a user's corpus, which is `RunConfig`'s defaults.
`PAPER_SYSTEM`: the rest of the paper's system per family (pretrained init, attention head, BCE,
balanced sampling, weight averaging), added by `recipe_for(task, "paper")`.
`recipe_for(task)` picks one; `RunConfig.for_task(task, **overrides)` builds a config from it.
A recipe is a dict of `RunConfig` fields, so it changes no run identity by itself: a config's hash
is computed from its fields alone.

Schedule: `lr` is multiplied by `lr_decay` once `lr_decay_from` epochs are done and again every
`lr_decay_every` epochs (PSLA's MultiStepLR(range(from, 1000, every)) stepped after each epoch).
Warm-up (`warmup_epochs` = w > 0): over the first w epochs, i.e. W = w x steps-per-epoch optimiser steps,
the epoch's lr is scaled by (s + 1) / W at global step s, a linear ramp from lr / W to lr. Per step, not
per epoch, since runs have few epochs; it starts at lr / W, not 0, because an Adam step at lr 0 still
moves the moment estimates and is otherwise wasted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.config import RunConfig

# The authors' code (PSLA fork): Adam(0.95, 0.999), wd 5e-7, mixup λ ~ Beta(10, 10) on waveforms,
# guide loss weight 1, 128 mel bins, EfficientNet-B2. Masks: 48 bins; time masks in 10 ms frames x 10.
# Every epoch of the table is trained (no early stopping, no warm-up unless PAPER_SYSTEM adds one).
_PAPER_COMMON = dict(backbone="efficientnet_b2", n_mels=128, optimizer="adam", beta1=0.95, beta2=0.999,
                     weight_decay=5e-7, freq_mask=48, mixup_alpha=10.0, guide_loss_weight=1.0, patience=None,
                     warmup_epochs=0, min_epochs=0)
PAPER_RECIPES: dict[str, dict[str, Any]] = {
    "audioset": dict(_PAPER_COMMON, lr=1e-4, epochs=30, lr_decay=0.5, lr_decay_every=5, lr_decay_from=10,
                     time_mask_ms=1920.0, mixup_prob=0.5, batch_size=24),
    "fsd50k": dict(_PAPER_COMMON, lr=5e-4, epochs=40, lr_decay=0.5, lr_decay_every=5, lr_decay_from=10,
                   time_mask_ms=1920.0, mixup_prob=0.5, batch_size=8),
    "esc50": dict(_PAPER_COMMON, lr=2.5e-4, epochs=80, lr_decay=0.95, lr_decay_every=5, lr_decay_from=40,
                  time_mask_ms=960.0, mixup_prob=0.5, batch_size=48),
    "speechcommands": dict(_PAPER_COMMON, lr=2.5e-4, epochs=60, lr_decay=0.85, lr_decay_every=5,
                           lr_decay_from=25, time_mask_ms=480.0, mixup_prob=0.6, batch_size=128),
    "nsynth": dict(_PAPER_COMMON, lr=1e-4, epochs=20, lr_decay=0.85, lr_decay_every=5, lr_decay_from=10,
                   time_mask_ms=760.0, mixup_prob=0.5, batch_size=128),
}
# The rest of the paper's system, beyond the recipe table (the authors' PSLA fork):
# ImageNet-pretrained EfficientNet-B2, PSLA's 4-head attention pooling, BCE for every task, class-balanced
# sampling and weight averaging for AudioSet / FSD50K / NSynth, AudioSet's 1,000-step warm-up (~1 epoch of
# its balanced train set at batch 24). Kept apart from PAPER_RECIPES so that `RunConfig.for_task(task)`
# keeps the identities its finished runs have; `recipe_for(task, "paper")` adds it (suites:
# `task_recipe: paper`). docs/fidelity.md says row by row what is the same and what deviates.
_PSLA = dict(pretrained="imagenet", head="attention", loss="bce")
PAPER_SYSTEM: dict[str, dict[str, Any]] = {
    "audioset": dict(_PSLA, balanced_sampling=True, weight_averaging="16-30", warmup_epochs=1),
    "fsd50k": dict(_PSLA, balanced_sampling=True, weight_averaging="21-40"),
    "esc50": dict(_PSLA),
    "speechcommands": dict(_PSLA),
    "nsynth": dict(_PSLA, balanced_sampling=True, weight_averaging="11-20"),
}
RECIPES = ("table", "paper")  # recipe_for(task, recipe): the recipe table alone, or with PAPER_SYSTEM
# Embedded toy tasks and a user's corpus on a CPU, and RunConfig's defaults (so a config built without a recipe
# trains too). A small audio CNN from scratch (benchmark/model/backbones.py), lr 3e-3 after a one-epoch warm-up,
# halved every 4 epochs from epoch 8, early stopping on val (patience 4, at most 30 epochs). The toy labels live
# in a click cluster of 20-200 ms: no time masks (a mask over the cluster changes the label) and no mixup (a mix
# of two click counts has no count).
QUICK_RECIPE: dict[str, Any] = dict(
    backbone="audiocnn_tiny", n_mels=32, optimizer="adam", lr=3e-3, beta1=0.95, beta2=0.999, weight_decay=5e-7,
    epochs=30, patience=4, warmup_epochs=1, min_epochs=0, lr_decay=0.5, lr_decay_every=4, lr_decay_from=8,
    batch_size=32, freq_mask=4, time_mask_ms=0.0, mixup_alpha=10.0, mixup_prob=0.0, guide_loss_weight=1.0)


def recipe_for(task: str, recipe: str = "table") -> dict[str, Any]:
    """Recipe fields for `task`, by its registry entry's recipe family (`TaskSpec.recipe`): the paper's table for
    a paper task, `QUICK_RECIPE` for the embedded tasks and a user's corpus (a task YAML or `folder:DIR`).
    `recipe="paper"` adds `PAPER_SYSTEM` to a paper task's recipe (the quick family has no paper system)."""
    if recipe not in RECIPES:
        raise KeyError(f"recipe={recipe!r}: expected one of {list(RECIPES)}")
    from tasks import get_task

    family = get_task(task).recipe
    if family == "quick":
        return dict(QUICK_RECIPE)
    if family not in PAPER_RECIPES:
        raise KeyError(f"no recipe for task {task!r}: its recipe family {family!r} is not one of "
                       f"{sorted(PAPER_RECIPES)} or 'quick'; pass the recipe fields to RunConfig yourself")
    return dict(PAPER_RECIPES[family], **(PAPER_SYSTEM[family] if recipe == "paper" else {}))


def auto_backbone(clip_seconds: float, gpu: bool | None = None) -> str:
    """`backbone: auto` of a suite: the quick recipe's CPU backbone without a GPU; on one, EfficientNet-B0 for clips
    up to 2 s (speech-command-like) and the paper's EfficientNet-B2 for longer clips. `gpu`: whether the runs
    will have one (default: whether this process sees one)."""
    import torch

    if not (torch.cuda.is_available() if gpu is None else gpu):
        return QUICK_RECIPE["backbone"]
    return "efficientnet_b0" if clip_seconds <= 2.0 else "efficientnet_b2"


def lr_at_epoch(cfg: RunConfig, epoch: int) -> float:
    """Learning rate used during `epoch` (0-based), PSLA's MultiStepLR stepped once per epoch."""
    if epoch < cfg.lr_decay_from:
        return cfg.lr
    n_decays = (epoch - cfg.lr_decay_from) // cfg.lr_decay_every + 1
    return cfg.lr * cfg.lr_decay**n_decays


def lr_at_step(cfg: RunConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step `step` (0-based, within `epoch`): `lr_at_epoch` times the linear
    warm-up factor (s + 1) / W over the first W = warmup_epochs * steps_per_epoch steps."""
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    global_step = epoch * steps_per_epoch + step
    factor = (global_step + 1) / warmup_steps if global_step < warmup_steps else 1.0
    return lr_at_epoch(cfg, epoch) * factor
