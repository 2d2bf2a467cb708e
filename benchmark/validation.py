"""Whether a `RunConfig` can run, checked once by whoever makes one from input (a suite, the CLI, a sampled search
point) and again by `benchmark.training.train.run`: `validate(cfg)` raises a `ConfigError` naming the field and
the value, and returns the config with a user corpus's fingerprint filled in (`RunConfig.task_files`).

A `RunConfig` itself is a plain value: building one reads no file and imports no registry, so equal fields give
equal configs and equal hashes (rebuilt from MLflow params, a config hashes to the logged hash). What depends on
the task is asked of the task registry here (its fold protocol, and a hop and window that are whole numbers of
samples at its sample rate), with the same checks `tasks` applies itself.
"""

from __future__ import annotations

import dataclasses
import math

from benchmark.config import LOSSES, NO_REDUCTION_FRONTEND, OPTIMIZERS, RunConfig
from benchmark.fields import (
    ConfigError,
    check,
    check_backbone,
    check_filterbank,
    check_frontend,
    check_task,
    task_files,
)


def validate(cfg: RunConfig) -> RunConfig:
    """`cfg` checked (a `ConfigError` naming the field and value otherwise), with `task_files` filled for a user
    corpus made without it; a config that carries its fingerprint (rebuilt from logged params) keeps it."""
    _check(cfg)
    if cfg.task_files is None:
        files = task_files(cfg.task)
        if files is not None:
            return dataclasses.replace(cfg, task_files=files)
    return cfg


def _check(cfg: RunConfig) -> None:
    check(bool(cfg.task.strip()), "task", cfg.task, "a task name (see `diffres-bench tasks list`)")
    spec = check_task(cfg.task, cfg.fold)
    check_frontend(cfg.frontend)
    check_filterbank(cfg.filterbank, spec)
    check_backbone(cfg.backbone)
    features = cfg.feature_config(spec)  # hop, window and mel bands: the one check, the one the features run
    if cfg.frontend != NO_REDUCTION_FRONTEND:
        check(0.0 < cfg.reduction_rate < 1.0, "reduction_rate", cfg.reduction_rate,
               f"a fraction of frames removed in (0, 1) for frontend={cfg.frontend!r} "
               f"(δ = 0, no reduction, is frontend='{NO_REDUCTION_FRONTEND}')")
        frames = features.num_frames(spec.clip_seconds)  # T' >= 1, checked here once for every run
        from diffres.functional import output_frames

        try:
            output_frames(frames, cfg.reduction_rate)
        except ValueError as err:
            raise ConfigError(f"RunConfig.reduction_rate={cfg.reduction_rate!r}: expected a rate that leaves "
                              f"T' >= 1 of the T={frames} frames of a {spec.clip_seconds:g} s clip of task "
                              f"{spec.name!r} at hop_ms={cfg.hop_ms:g} ({err})") from None
    check(cfg.n_mels >= 1, "n_mels", cfg.n_mels, "an integer >= 1")
    check(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    check(cfg.data_seed >= 0, "data_seed", cfg.data_seed, "an integer >= 0 (a draw of a generated task's clips)")
    check(cfg.data_seed == 0 or spec.is_embedded, "data_seed", cfg.data_seed,
          f"0 for task {spec.name!r}: it has one fixed set of clips (only the generated tasks draw new clips)")
    check(cfg.cpu_threads >= 1, "cpu_threads", cfg.cpu_threads, "an integer >= 1")
    check(cfg.optimizer in OPTIMIZERS, "optimizer", cfg.optimizer, f"one of {list(OPTIMIZERS)}")
    check(math.isfinite(cfg.lr) and cfg.lr >= 0, "lr", cfg.lr,
           "a learning rate >= 0 (0: no learning, a control for the run-health check)")
    for name in ("beta1", "beta2"):
        check(0.0 <= getattr(cfg, name) < 1.0, name, getattr(cfg, name), "a number in [0, 1)")
    check(cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "a number >= 0")
    check(0.0 < cfg.lr_decay <= 1.0, "lr_decay", cfg.lr_decay, "a factor in (0, 1]")
    check(cfg.lr_decay_every >= 1, "lr_decay_every", cfg.lr_decay_every, "an integer >= 1 (epochs)")
    check(cfg.lr_decay_from >= 0, "lr_decay_from", cfg.lr_decay_from, "an integer >= 0 (epoch)")
    check(cfg.epochs >= 1, "epochs", cfg.epochs, "an integer >= 1")
    check(cfg.patience is None or cfg.patience >= 1, "patience", cfg.patience,
           "None (train all epochs) or an integer >= 1 (epochs without a new best val metric)")
    check(0 <= cfg.min_epochs <= cfg.epochs, "min_epochs", cfg.min_epochs,
           f"an integer in [0, epochs={cfg.epochs}] (epochs before early stopping may end a run)")
    check(0 <= cfg.warmup_epochs <= cfg.epochs, "warmup_epochs", cfg.warmup_epochs,
           f"an integer in [0, epochs={cfg.epochs}] (epochs of linear lr warm-up)")
    check(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "an integer >= 1")
    check(0 <= cfg.freq_mask <= cfg.n_mels, "freq_mask", cfg.freq_mask,
           f"an integer in [0, n_mels={cfg.n_mels}] (mel bins)")
    check(cfg.time_mask_ms >= 0, "time_mask_ms", cfg.time_mask_ms, "a duration >= 0 (ms)")
    check(cfg.mixup_alpha > 0, "mixup_alpha", cfg.mixup_alpha, "a Beta parameter > 0")
    check(0.0 <= cfg.mixup_prob <= 1.0, "mixup_prob", cfg.mixup_prob, "a probability in [0, 1]")
    check(cfg.guide_loss_weight >= 0, "guide_loss_weight", cfg.guide_loss_weight, "a number >= 0")
    check(cfg.loss in LOSSES, "loss", cfg.loss, f"one of {list(LOSSES)}")
    check(cfg.loss != "ce" or spec.label_kind == "single", "loss", cfg.loss,
           f"'auto' or 'bce' for the multi-label task {spec.name!r} (cross-entropy needs one label a clip)")
    for name in ("max_train_clips", "max_eval_clips"):
        value = getattr(cfg, name)
        check(value is None or value >= 1, name, value, "None or an integer >= 1")
    _check_system(cfg)

def _check_system(cfg: RunConfig) -> None:
    """The fields of the paper's system (pretrained init, head, sampling, weight averaging)."""
    from benchmark.model.heads import list_heads
    from benchmark.model.pretrained import pretrained_problem

    check(bool(cfg.pretrained.strip()), "pretrained", cfg.pretrained,
           "'none', 'imagenet' or the path of a weights file for timm")
    problem = pretrained_problem(cfg.backbone, cfg.pretrained)
    check(problem is None, "pretrained", cfg.pretrained, f"{problem}")
    check(cfg.pretrained == "none" or cfg.pretrained_weights is None, "pretrained", cfg.pretrained,
           f"'none' when pretrained_weights={cfg.pretrained_weights!r} is set (one source of initial weights; "
           f"a file goes through timm as pretrained=<path>)")
    check(cfg.head in list_heads(), "head", cfg.head, f"one of {list_heads()}")
    epochs = cfg.averaged_epochs
    check(epochs is None or 1 <= epochs[0] <= epochs[1] <= cfg.epochs, "weight_averaging",
           cfg.weight_averaging, f"'none' or 'A-B' with 1 <= A <= B <= epochs={cfg.epochs} (1-based epochs "
           f"whose end-of-epoch weights are averaged, PSLA's wa_start / wa_end)")
    check(epochs is None or cfg.patience is None, "weight_averaging", cfg.weight_averaging,
           f"'none' with patience={cfg.patience} (early stopping could end the run before epoch "
           f"{epochs[0] if epochs else ''}: averaging reads a fixed epoch range)")

