"""The pieces a training loop is made of, each usable on its own (the trainer and `bench_training` share
them): the device and determinism context, AMP, the loss choice, model and optimizer set-up, one
training step, one epoch, and prediction over a split.

Loss: cross-entropy for single-label tasks and BCE for multi-label ones (`loss="auto"`); the paper
used BCE everywhere, available as `loss="bce"`. On CUDA, AMP (bf16 where supported, else fp16 with a
GradScaler) and channels-last are used; on CPU everything runs in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.config import RunConfig
from benchmark.model.classifier import Classifier, build_model
from benchmark.training.data import Split, TaskData

EVAL_FRAMES_PER_BATCH = 2**16  # input frames per evaluation batch (no gradients: far more than training)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the duration of a run, then the caller's setting again."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


class Amp:
    """Autocast + GradScaler on CUDA (bf16 when supported: no scaler needed), nothing on CPU."""

    def __init__(self, device: torch.device, enabled: bool):
        self.enabled = enabled and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.enabled else contextlib.nullcontext()


def choose_loss(cfg: RunConfig, label_kind: str) -> str:
    """"ce" or "bce": `cfg.loss`, with "auto" meaning cross-entropy for single-label tasks."""
    kind = cfg.loss if cfg.loss != "auto" else ("ce" if label_kind == "single" else "bce")
    if kind == "ce" and label_kind != "single":
        raise ValueError(f"RunConfig.loss='ce' needs a single-label task; {cfg.task!r} is multi-label "
                         f"(use 'bce' or 'auto')")
    return kind


def make_model(cfg: RunConfig, num_classes: int, t_in: int, device: torch.device,
               stats: tuple[float, float] | None = None) -> Classifier:
    """The run's model, initialised from the streams of `cfg.seed`, on `device` (channels-last on CUDA); `stats`:
    the task's log-mel (mean, std) for the mel's normalisation (`TaskData.stats`)."""
    model = build_model(cfg, num_classes=num_classes, t_in=t_in, stats=stats).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam or AdamW with the recipe's lr, betas and weight decay (the lr is then set per step)."""
    optim_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optim_cls(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def eval_batch_size(cfg: RunConfig, t_in: int) -> int:
    """Clips per evaluation batch: about EVAL_FRAMES_PER_BATCH input frames, never fewer than training's
    (a learned filterbank's stride-1 convolution holds ~hop x more per clip: training's batch size)."""
    from benchmark.model.classifier import task_normalised

    if not task_normalised(cfg):  # a learned filterbank: the batch size it trains at
        return cfg.batch_size
    return max(cfg.batch_size, EVAL_FRAMES_PER_BATCH // max(t_in, 1))


# ---------------------------------------------------------------------------------------- one epoch
def train_one_epoch(model: Classifier, batches: Iterable[Mapping[str, Tensor]], optimizer: torch.optim.Optimizer,
                    amp: Amp, cfg: RunConfig, data: TaskData, loss_kind: str, augment_gen: torch.Generator,
                    device: torch.device, *, lr_at: Callable[[int], float] | None = None) -> dict[str, float]:
    """One pass over `batches` ({"waveform" [B, N], "target", and "features" [B, T, F] when held}: `Split.batch`
    or `benchmark.training.loader`) -> mean losses. `lr_at(step)` sets each step's lr. Mixup mixes the waveforms (the
    held features then no longer apply: the model computes the mixed batch's), the model's filterbank makes
    [B, T, F] and SpecAugment runs on it inside the forward; the random draws are in this order always."""
    from tasks.augment import mixup, spec_augment

    model.train()
    totals = {"train_loss": 0.0, "train_task_loss": 0.0, "train_aux_loss": 0.0}
    masks = cfg.freq_mask > 0 or cfg.time_mask_frames > 0
    augment = None
    if masks:
        def augment(m: Tensor) -> Tensor:
            return spec_augment(m, cfg.freq_mask, cfg.time_mask_frames, augment_gen)
    n_steps = 0
    for step, batch in enumerate(batches):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        target = one_hot(batch["target"], data.spec.num_classes)  # [B, C]
        wave, features = batch["waveform"], batch.get("features")  # [B, N], [B, T, F] or None
        if cfg.mixup_prob > 0 and float(torch.rand((), generator=augment_gen)) < cfg.mixup_prob:
            wave, target = mixup(wave, target, cfg.mixup_alpha, augment_gen)
            features = None
        wave, target = wave.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if features is not None:
            features = features.to(device, non_blocking=True)
        loss, task, aux = train_step(model, optimizer, amp, cfg, loss_kind, wave, target, augment=augment,
                                     features=features)
        totals["train_loss"] += float(loss)
        totals["train_task_loss"] += float(task)
        totals["train_aux_loss"] += float(aux)
        n_steps += 1
    return {k: v / max(n_steps, 1) for k, v in totals.items()}


def train_step(model: Classifier, optimizer: torch.optim.Optimizer, amp: Amp, cfg: RunConfig, loss_kind: str,
               waveform: Tensor, target: Tensor, *, augment: Callable[[Tensor], Tensor] | None = None,
               features: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One optimiser step on a batch already on the device: waveform [B, N] (and its filterbank output
    `features` [B, T, F] when held), SpecAugment `augment`, target [B, C] (soft labels) -> detached (loss,
    task loss, aux loss); the loss is task + guide_loss_weight * front-end aux loss."""
    with amp.autocast():
        logits, out = model(waveform, augment=augment, features=features)
        task = task_loss(loss_kind, logits, target)
        aux = out.aux_loss.float()
        loss = task + cfg.guide_loss_weight * aux
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss {float(loss)} in run {cfg.run_name} "
                                 f"(task loss {float(task)}, aux loss {float(aux)})")
    optimizer.zero_grad(set_to_none=True)
    amp.scaler.scale(loss).backward()
    amp.scaler.step(optimizer)
    amp.scaler.update()
    return loss.detach(), task.detach(), aux.detach()


def one_hot(target: Tensor, num_classes: int) -> Tensor:
    """Labels [B] -> one-hot [B, C]; a multi-hot [B, C] passes through (as float)."""
    return F.one_hot(target, num_classes).float() if target.dim() == 1 else target.float()


def task_loss(kind: str, logits: Tensor, soft_target: Tensor) -> Tensor:
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, soft_target)  # probabilities as targets (mixup)
    return F.binary_cross_entropy_with_logits(logits, soft_target)


# --------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: Classifier, split: Split, batch_size: int, amp: Amp, device: torch.device,
            label_kind: str) -> tuple[Tensor, Tensor]:
    """Class probabilities [N, C] (softmax or sigmoid) and targets of a whole split, in order."""
    model.eval()
    scores = []
    for idx in torch.arange(len(split)).split(batch_size):
        features = split.features(idx)
        with amp.autocast():
            logits, _ = model(split.waveform(idx).to(device, non_blocking=True),
                              features=None if features is None else features.to(device, non_blocking=True))
        logits = logits.float().cpu()
        scores.append(logits.softmax(1) if label_kind == "single" else logits.sigmoid())
    return torch.cat(scores), split.targets
