"""Train and evaluate one `RunConfig`: a plain PyTorch loop, tracked in MLflow, resumable.

    res = run(cfg, tracking_uri="sqlite:///mlflow.db", experiment="quick", checkpoint_dir=Path("checkpoints"))

What one run does, top to bottom (and the order of this file):
1. If MLflow already holds a FINISHED run with this config's hash, return it (`reused=True`).
2. Load the task's features (`benchmark.data`); build the model and optimizer (`make_model`, `make_optimizer`).
3. Resume from `<checkpoint_dir>/<config_hash>/last.pt` if it loads (`benchmark.checkpoint`), else set it aside.
4. Each epoch: train (waveform mixup, SpecAugment, task loss + guide_loss_weight * front-end aux
   loss; lr per step, `lr_at_step`), evaluate on val; when val improves, evaluate test too (the test
   number is the one at the best val epoch; test never selects anything); checkpoint atomically; report
   to Optuna if a trial is given. With `patience` = k, stop once k epochs brought no new best val.
5. Log compute figures, final metrics, the run's health and artifacts; mark the MLflow run FINISHED.

Run health (MLflow metrics, so the report can set apart runs that did not learn): `epochs_run`,
`stopped_early` (1/0), `best_epoch`, `final_train_loss` (the last epoch's mean task loss, without the
aux loss), `chance_loss` (the task loss of predicting the training label prior), `chance_metric` (the
val metric of a constant predictor) and `trained` (1/0: `benchmark.metrics.is_trained`, i.e. the
final train loss < 0.8 x chance loss and the best val metric > chance + 0.1 x (1 - chance)).

Loss: cross-entropy for single-label tasks and BCE for multi-label ones (`loss="auto"`); the paper
used BCE everywhere, available as `loss="bce"`. Metrics (`benchmark.metrics`): accuracy (single-label),
mAP (multi-label, mean of per-class average precision over classes with at least one positive clip).
Determinism: on CPU a run is a function of its config and of torch's thread count (logged as the tag
`torch_threads`; a different count may change the float summation order) — seeded init, seeded
generators for the shuffle and the augmentations, deterministic algorithms — and a resumed run
restores every RNG state, so it ends with the same numbers as an uninterrupted one, early stopping
included. On CUDA, AMP (bf16 where supported, else fp16 with a GradScaler) and channels-last are used;
results are then close, not equal.
Data path: every split's clips are tensors in memory (`benchmark.data`); an epoch is a seeded
permutation cut into batches, evaluation runs in large batches (`EVAL_FRAMES_PER_BATCH`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from benchmark import artifacts, tracking
from benchmark.checkpoint import (  # noqa: F401  (also re-exports the names that lived here)
    CHECKPOINT_FORMAT,
    checkpoint_path,
    load_checkpoint,
    restore,
    save_checkpoint,
    set_aside,
    training_state,
)
from benchmark.compute import describe_device, measure
from benchmark.config import CONFIG_VERSION, RunConfig, lr_at_step
from benchmark.data import Split, TaskData, epoch_batches, load_task_data, n_batches
from benchmark.metrics import (  # noqa: F401  (also re-exports the names that lived here)
    accuracy,
    average_precision,
    mean_average_precision,
    per_class_accuracy,
    per_class_average_precision,
    per_class_metric,
    run_health,
    task_metric,
)
from benchmark.model import Classifier, build_model

log = logging.getLogger(__name__)

N_EXAMPLES = 2  # val clips in diffres_examples.npz/.png (the report draws 2; each costs ~1 s of drawing)
EVAL_FRAMES_PER_BATCH = 2**16  # input frames per evaluation batch (no gradients: far more than training)


@dataclass(frozen=True)
class RunResult:
    val_metric: float  # best validation metric
    test_metric: float  # test metric at the best validation epoch
    run_id: str  # MLflow run id
    reused: bool  # True: an identical finished run existed, nothing was trained
    config_hash: str = ""
    best_epoch: int = -1
    trained: bool | None = None  # the run-health verdict (None: a reused run from before it was logged)
    epochs_run: int | None = None  # fewer than cfg.epochs when early stopping ended the run


# ---------------------------------------------------------------------------------------------- run
def run(cfg: RunConfig, *, tracking_uri: str, experiment: str, checkpoint_dir: str | os.PathLike,
        trial: Any = None, progress: bool = True, tags: Mapping[str, object] | None = None,
        device: str | torch.device | None = None, data_dir: str | os.PathLike | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    """Train `cfg` (or find it already finished) and return its validation and test metrics.

    `trial`: an Optuna trial; each epoch's val metric is reported and a pruned trial raises
    `optuna.TrialPruned` (its MLflow run is marked KILLED, the checkpoint kept).
    `on_epoch_end(epoch, metrics)`: called after each epoch's checkpoint is written (progress hooks;
    tests raise from it to simulate a run killed mid-way).
    """
    found = tracking.find_finished_run(tracking_uri, experiment, cfg.config_hash)
    if found is not None:
        metrics = found.data.metrics
        return RunResult(val_metric=metrics.get("val_metric", float("nan")),
                         test_metric=metrics.get("test_metric", float("nan")), run_id=found.info.run_id,
                         reused=True, config_hash=cfg.config_hash,
                         best_epoch=int(metrics.get("best_epoch", -1)),
                         trained=bool(metrics["trained"]) if "trained" in metrics else None,
                         epochs_run=int(metrics["epochs_run"]) if "epochs_run" in metrics else None)
    device = pick_device(device)
    data = load_task_data(cfg, data_dir)
    with deterministic(device.type == "cpu"):
        return _train(cfg, data, device, tracking_uri=tracking_uri, experiment=experiment,
                      checkpoint_dir=Path(checkpoint_dir), trial=trial, progress=progress, tags=tags or {},
                      on_epoch_end=on_epoch_end)


def _train(cfg: RunConfig, data: TaskData, device: torch.device, *, tracking_uri: str, experiment: str,
           checkpoint_dir: Path, trial: Any, progress: bool, tags: Mapping[str, object],
           on_epoch_end: Callable[[int, dict[str, float]], None] | None) -> RunResult:
    spec = data.spec
    loss_kind = choose_loss(cfg, spec.label_kind)
    amp = Amp(device, cfg.amp)

    def fresh() -> tuple[Classifier, torch.optim.Optimizer]:
        model = make_model(cfg, spec.num_classes, data.t_in, device)
        return model, make_optimizer(model, cfg)

    model, optimizer = fresh()
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    augment_gen = torch.Generator().manual_seed(cfg.seed + 1)
    steps_per_epoch = n_batches(len(data.train), cfg.batch_size)

    start_epoch, history = 0, []
    best: dict[str, Any] = {"epoch": -1, "val": -math.inf, "test": math.nan, "per_class": [], "support": [],
                            "examples": {}}
    path = checkpoint_path(checkpoint_dir, cfg)
    state = load_checkpoint(path, cfg)
    if state is not None:
        try:
            start_epoch, history, best = restore(state, model, optimizer, amp.scaler, shuffle_gen, augment_gen)
            log.info("resuming %s from %s after epoch %d", cfg.run_name, path, start_epoch)
        except Exception as err:  # noqa: BLE001 — a checkpoint that loads but does not fit: start again
            set_aside(path, err)
            model, optimizer = fresh()
            shuffle_gen.manual_seed(cfg.seed)
            augment_gen.manual_seed(cfg.seed + 1)

    tracked = tracking.start_run(
        tracking_uri, experiment, run_name=cfg.run_name, params=cfg.to_params(),
        tags={"config_hash": cfg.config_hash, "suite": experiment, "metric_name": spec.metric,
              "git_commit": tracking.git_commit(), "device": describe_device(device),
              "torch_version": torch.__version__, "timm_version": timm.__version__,
              "config_version": CONFIG_VERSION, "resumed_from_epoch": start_epoch,
              "torch_threads": torch.get_num_threads(), **tags})
    try:
        for record in history:  # a resumed run carries the curves of the attempts before it
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))
            if trial is not None:
                trial.report(record["val_metric_epoch"], int(record["epoch"]))
        bar = tqdm(range(start_epoch, cfg.epochs), initial=start_epoch, total=cfg.epochs, desc=cfg.run_name,
                   unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            if stops_early(cfg, epoch, best["epoch"]):  # also a resumed run that had already stopped
                break
            batches = (data.train.batch(idx, waveforms=cfg.mixup_prob > 0)
                       for idx in epoch_batches(len(data.train), cfg.batch_size, shuffle_gen))
            record = {"epoch": epoch, "lr": lr_at_step(cfg, epoch, steps_per_epoch - 1, steps_per_epoch),  # last step
                      **train_one_epoch(model, batches, optimizer, amp, cfg, data, loss_kind, augment_gen, device,
                                        lr_at=lambda step, e=epoch: lr_at_step(cfg, e, step, steps_per_epoch))}
            scores, targets = predict(model, data.val, eval_batch_size(cfg, data.t_in), amp, device,
                                      spec.label_kind)
            record["val_metric_epoch"] = task_metric(spec.metric, scores, targets)
            if record["val_metric_epoch"] > best["val"]:
                best = _evaluate_best(model, data, cfg, amp, device, epoch, record["val_metric_epoch"])
            history.append(record)
            save_checkpoint(path, training_state(cfg, epoch + 1, model, optimizer, amp.scaler, shuffle_gen,
                                                 augment_gen, history, best))
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_metric_epoch']:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if trial is not None:
                _report_to_optuna(trial, record["val_metric_epoch"], epoch)
        bar.close()
        health = _finish(tracked, cfg, data, model, device, best, history, loss_kind)
    except BaseException as err:
        pruned = type(err).__name__ == "TrialPruned"
        with contextlib.suppress(Exception):
            if pruned:
                tracked.set_tags({"pruned": "true"})
            tracked.finish("KILLED" if pruned or isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    return RunResult(val_metric=float(best["val"]), test_metric=float(best["test"]), run_id=tracked.run_id,
                     reused=False, config_hash=cfg.config_hash, best_epoch=int(best["epoch"]),
                     trained=bool(health["trained"]), epochs_run=int(health["epochs_run"]))


# ------------------------------------------------------------------------------------------- set-up
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


def make_model(cfg: RunConfig, num_classes: int, t_in: int, device: torch.device) -> Classifier:
    """The run's model, initialised from `cfg.seed`, on `device` (channels-last on CUDA)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes=num_classes, t_in=t_in).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam or AdamW with the recipe's lr, betas and weight decay (the lr is then set per step)."""
    optim_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optim_cls(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def stops_early(cfg: RunConfig, epochs_done: int, best_epoch: int) -> bool:
    """True once `cfg.patience` epochs in a row brought no new best val metric (never for patience None).
    A function of the checkpointed state alone, so a resumed run stops where an uninterrupted one does."""
    return cfg.patience is not None and epochs_done - 1 - best_epoch >= cfg.patience


def eval_batch_size(cfg: RunConfig, t_in: int) -> int:
    """Clips per evaluation batch: about EVAL_FRAMES_PER_BATCH input frames, never fewer than training's."""
    return max(cfg.batch_size, EVAL_FRAMES_PER_BATCH // max(t_in, 1))


# ---------------------------------------------------------------------------------------- one epoch
def train_one_epoch(model: Classifier, batches: Iterable[Mapping[str, Tensor]], optimizer: torch.optim.Optimizer,
                    amp: Amp, cfg: RunConfig, data: TaskData, loss_kind: str, augment_gen: torch.Generator,
                    device: torch.device, *, lr_at: Callable[[int], float] | None = None) -> dict[str, float]:
    """One pass over `batches` ({"logmel" [B, T, F], "target", and "waveform" [B, S] when mixup is on}:
    `Split.batch`, or a DataLoader over a Split) -> mean losses. `lr_at(step)` sets each step's lr."""
    from tasks.augment import mixup, spec_augment

    model.train()
    totals = {"train_loss": 0.0, "train_task_loss": 0.0, "train_aux_loss": 0.0}
    n_steps = 0
    for step, batch in enumerate(batches):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        logmel, target = batch["logmel"], one_hot(batch["target"], data.spec.num_classes)  # [B,T,F], [B,C]
        if cfg.mixup_prob > 0 and float(torch.rand((), generator=augment_gen)) < cfg.mixup_prob:
            wave, target = mixup(batch["waveform"], target, cfg.mixup_alpha, augment_gen)
            with torch.no_grad():
                logmel = data.extractor(wave)
        if cfg.freq_mask > 0 or cfg.time_mask_frames > 0:
            logmel = spec_augment(logmel, cfg.freq_mask, cfg.time_mask_frames, augment_gen)
        logmel, target = logmel.to(device, non_blocking=True), target.to(device, non_blocking=True)
        loss, task, aux = train_step(model, optimizer, amp, cfg, loss_kind, logmel, target)
        totals["train_loss"] += float(loss)
        totals["train_task_loss"] += float(task)
        totals["train_aux_loss"] += float(aux)
        n_steps += 1
    return {k: v / max(n_steps, 1) for k, v in totals.items()}


def train_step(model: Classifier, optimizer: torch.optim.Optimizer, amp: Amp, cfg: RunConfig, loss_kind: str,
               logmel: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One optimiser step on a batch already on the device: logmel [B, T, F], target [B, C] (soft labels)
    -> detached (loss, task loss, aux loss); the loss is task + guide_loss_weight * front-end aux loss."""
    with amp.autocast():
        logits, out = model(logmel)
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
        with amp.autocast():
            logits, _ = model(split.logmel(idx).to(device))
        logits = logits.float().cpu()
        scores.append(logits.softmax(1) if label_kind == "single" else logits.sigmoid())
    return torch.cat(scores), split.targets


def _evaluate_best(model: Classifier, data: TaskData, cfg: RunConfig, amp: Amp, device: torch.device,
                   epoch: int, val: float) -> dict[str, Any]:
    """Test metric, per-class test scores and front-end examples of a new best-on-val model."""
    spec = data.spec
    scores, targets = predict(model, data.test, eval_batch_size(cfg, data.t_in), amp, device, spec.label_kind)
    per_class, support = per_class_metric(spec.label_kind, scores, targets, spec.num_classes)
    examples = frontend_examples(model, data.val, device) or {}
    return {"epoch": epoch, "val": val, "test": task_metric(spec.metric, scores, targets),
            "per_class": per_class, "support": support, "examples": examples}


@torch.no_grad()
def frontend_examples(model: Classifier, split: Split, device: torch.device) -> dict[str, Tensor] | None:
    """mel / score / merged mel / resolution encoding of the first val clips, for front-ends with scores."""
    model.eval()
    mel = split.logmel(torch.arange(min(N_EXAMPLES, len(split))))  # [N, T, F]
    out = model.frontend(mel.to(device))
    if out.score is None:
        return None
    merged = out.features[:, 0]  # the mean-merged log-mel: channel 0 of every scoring front-end
    res_enc = getattr(out, "resolution_enc", None)
    res_enc = torch.zeros_like(merged) if res_enc is None else res_enc  # diffres-noenc: none to show
    return {"mel": mel.float(), "score": out.score[..., 0].float().cpu(), "merged": merged.float().cpu(),
            "resolution_enc": res_enc.float().cpu()}


# -------------------------------------------------------------------------------------- end of a run
def _report_to_optuna(trial: Any, value: float, epoch: int) -> None:
    import optuna

    trial.report(value, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at epoch {epoch} with val {value:.4f}")


def _finish(tracked: tracking.TrackedRun, cfg: RunConfig, data: TaskData, model: Classifier,
            device: torch.device, best: Mapping[str, Any], history: list[dict[str, float]],
            loss_kind: str) -> dict[str, float]:
    compute = measure(model, data.t_in, cfg.n_mels, extractor=data.extractor, n_samples=data.n_samples,
                      device=device)
    final_loss = float(history[-1]["train_task_loss"]) if history else math.nan  # the task loss, no aux
    health = {"epochs_run": len(history), "stopped_early": float(len(history) < cfg.epochs),
              "best_epoch": best["epoch"], "final_train_loss": final_loss,
              **run_health(loss_kind, data.spec.metric, data.train.targets, data.val.targets, data.spec.num_classes,
                           final_loss, float(best["val"]))}
    tracked.set_tags({"latency_threads": compute.latency_threads, "latency_device": compute.latency_device})
    tracked.log_metrics({"val_metric": best["val"], "test_metric": best["test"], **health,
                         "n_train_clips": len(data.train), "n_val_clips": len(data.val),
                         "n_test_clips": len(data.test), **compute.metrics()})
    files = {artifacts.CONFIG_JSON: artifacts.config_json(cfg.to_dict(), cfg.config_hash, CONFIG_VERSION),
             artifacts.PER_CLASS_CSV: artifacts.per_class_csv(data.spec.class_names, best["per_class"],
                                                               best["support"])}
    if best["examples"]:
        ex = {k: v.numpy() for k, v in best["examples"].items()}
        files.update(artifacts.diffres_examples(*(ex[k] for k in artifacts.EXAMPLE_KEYS), hop_ms=cfg.hop_ms,
                                                title=f"{cfg.run_name} (best val epoch {best['epoch']})"))
    tracked.log_artifacts(files)
    tracked.finish("FINISHED")
    return health
