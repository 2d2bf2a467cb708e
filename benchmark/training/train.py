"""Train and evaluate one `RunConfig`: a plain PyTorch loop, tracked in MLflow, resumable.

    res = run(cfg, tracking_uri="sqlite:///mlflow.db", experiment="quick", checkpoint_dir=Path("checkpoints"))

What one run does, top to bottom (and the order of this file):
1. If MLflow already holds a FINISHED run with this config's hash, return it (`reused=True`).
2. Load the task's clips (`training.data`); build the model and optimizer (`make_model`, `make_optimizer`).
3. Resume from `<checkpoint_dir>/<config_hash>/last.pt` if it loads (`training.checkpoint`), else set it aside.
4. Each epoch: train (waveform mixup, SpecAugment, task loss + guide_loss_weight * front-end aux
   loss; lr per step, `lr_at_step`), evaluate on val; when val improves, evaluate test too (the test
   number is the one at the best val epoch; test never selects anything); checkpoint atomically; report
   to Optuna if a trial is given. With `patience` = k, stop once k epochs brought no new best val.
5. Log compute figures, final metrics, the run's health and artifacts; mark the MLflow run FINISHED.
   A tracking server that is down does not stop the epochs (`tracking.TrackedRun` keeps the calls);
   step 5 waits for it up to `DIFFRES_BENCH_TRACKING_RETRY_S`, then fails with `OutageError`, the
   checkpoint of the finished epochs kept, so a retry only logs (`benchmark.tracking.outages`).

Run health (MLflow metrics, so the report can set apart runs that did not learn): `epochs_run`,
`stopped_early` (1/0), `best_epoch`, `final_train_loss` (the last epoch's mean task loss, without the
aux loss), `chance_loss` (the task loss of predicting the training label prior), `chance_metric` (the
val metric of a constant predictor) and `trained` (1/0: `benchmark.training.metrics.is_trained`, i.e. the
final train loss < 0.8 x chance loss and the best val metric > chance + 0.1 x (1 - chance)).

The step-level pieces (AMP, the loss choice, model and optimizer set-up, one step, one epoch,
prediction) live in `benchmark.training.steps`. Metrics (`benchmark.training.metrics`): accuracy (single-label),
mAP (multi-label, mean of per-class average precision over classes with at least one positive clip).
Determinism: on CPU a run is a function of its config — `cpu_threads` included (the float summation order
depends on the thread count, so the run sets it) — and of the machine's numerics (tags `numerics_*`, with the
canary digest `numerics_canary`: `benchmark.tracking.numerics`) — seeded init, seeded
generators for the shuffle and the augmentations, deterministic algorithms — and a resumed run
restores every RNG state, so it ends with the same numbers as an uninterrupted one, early stopping
included. On CUDA, AMP (bf16 where supported, else fp16 with a GradScaler) and channels-last are used;
results are then close, not equal.
Data path: the clips come from the task's one int16 waveform cache (`tasks.wavecache`, via `benchmark.training.data`);
the mel (or a learnable filterbank) is the model's first stage, on the run's device. An epoch is a seeded
permutation cut into batches, or class-balanced draws (`benchmark.training.sampling`), read ahead of the step by
`benchmark.training.loader` (worker processes on CUDA, the main process on a CPU); evaluation runs in large
batches (`EVAL_FRAMES_PER_BATCH`). With `weight_averaging` the end-of-epoch weights of its range are
averaged (`benchmark.training.averaging`, kept in the checkpoint) and the averaged model is the run's result.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark import validation
from benchmark.config import CONFIG_VERSION, RunConfig
from benchmark.model.classifier import Classifier
from benchmark.model.pretrained import stem_adaptation
from benchmark.tracking import artifacts, numerics
from benchmark.tracking import store as tracking
from benchmark.tracking.compute import describe_device, measure
from benchmark.tracking.engine import dependency_versions, engine_digest
from benchmark.tracking.provenance import git_commit
from benchmark.training import seeds
from benchmark.training.averaging import make_averager
from benchmark.training.checkpoint import (
    TrainState,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    set_aside,
)
from benchmark.training.data import Split, TaskData, load_task_data, n_batches
from benchmark.training.loader import train_loader
from benchmark.training.metrics import (
    per_class_metric,
    run_health,
    task_metric,
)
from benchmark.training.recipes import lr_at_step
from benchmark.training.sampling import train_batch_size, train_batches
from benchmark.training.steps import (
    Amp,
    choose_loss,
    deterministic,
    eval_batch_size,
    make_model,
    make_optimizer,
    pick_device,
    predict,
    train_one_epoch,
)

log = logging.getLogger(__name__)

N_EXAMPLES = 2  # val clips in diffres_examples.npz/.png (the report draws 2; each costs ~1 s of drawing)


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
    `cfg` is checked first (`benchmark.validation.validate`: a bad value is named before anything loads).
    """
    cfg = validation.validate(cfg)
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
    with deterministic(device.type == "cpu"), cpu_threads(cfg, device):
        return _train(cfg, data, device, tracking_uri=tracking_uri, experiment=experiment,
                      checkpoint_dir=Path(checkpoint_dir), trial=trial, progress=progress, tags=tags or {},
                      on_epoch_end=on_epoch_end)


def _train(cfg: RunConfig, data: TaskData, device: torch.device, *, tracking_uri: str, experiment: str,
           checkpoint_dir: Path, trial: Any, progress: bool, tags: Mapping[str, object],
           on_epoch_end: Callable[[int, dict[str, float]], None] | None) -> RunResult:
    spec, amp = data.spec, Amp(device, cfg.amp)
    loss_kind = choose_loss(cfg, spec.label_kind)
    steps_per_epoch = n_batches(len(data.train), train_batch_size(cfg))
    state = new_state(cfg, data, amp, device)
    data.hold_features(state.model.filterbank, device)  # CPU: a fixed filterbank's output, computed once
    path = checkpoint_path(checkpoint_dir, cfg)
    state = resume(path, cfg, state, lambda: new_state(cfg, data, amp, device))
    tracked = _start_tracking(cfg, state, spec.metric, device, tracking_uri, experiment, tags)
    try:
        for record in state.history:  # a resumed run carries the curves of the attempts before it
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))
            if trial is not None:
                trial.report(record["val_metric_epoch"], int(record["epoch"]))
        bar = tqdm(range(state.epoch, cfg.epochs), initial=state.epoch, total=cfg.epochs, desc=cfg.run_name,
                   unit="epoch", disable=not progress, leave=True)
        for epoch in bar:
            if stops_early(cfg, epoch, state.best.epoch):  # also a resumed run that had already stopped
                break
            batches = train_loader(data.train, list(train_batches(cfg, data.train.targets, spec.num_classes,
                                                                  state.shuffle_gen)), device)
            record = {"epoch": epoch, "lr": lr_at_step(cfg, epoch, steps_per_epoch - 1, steps_per_epoch),  # last step
                      **train_one_epoch(state.model, batches, state.optimizer, amp, cfg, data, loss_kind,
                                        state.augment_gen, device,
                                        lr_at=lambda step, e=epoch: lr_at_step(cfg, e, step, steps_per_epoch))}
            record["val_metric_epoch"] = validate(state.model, data, cfg, amp, device)
            state.end_epoch(record)
            save_checkpoint(path, state.to_checkpoint(cfg))
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_metric_epoch']:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if trial is not None:
                _report_to_optuna(trial, record["val_metric_epoch"], epoch)
        bar.close()
        result = _result(state, cfg, data, amp, device, tracked)
        health = _finish(tracked, cfg, data, state.model, device, result, state.history, loss_kind)
    except BaseException as err:
        pruned = type(err).__name__ == "TrialPruned"
        with contextlib.suppress(Exception):  # best effort: the server may be the reason we are here
            if pruned:
                tracked.set_tags({"pruned": "true"})
            tracked.abandon("KILLED" if pruned or isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    return RunResult(val_metric=float(result["val"]), test_metric=float(result["test"]), run_id=tracked.run_id,
                     reused=False, config_hash=cfg.config_hash, best_epoch=int(result["epoch"]),
                     trained=bool(health["trained"]), epochs_run=int(health["epochs_run"]))


# ------------------------------------------------------------------------------------------- set-up
@contextlib.contextmanager
def cpu_threads(cfg: RunConfig, device: torch.device):
    """torch's intra-op threads at `cfg.cpu_threads` for a CPU run (they are part of what the run is),
    then the caller's count again."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stops_early(cfg: RunConfig, epochs_done: int, best_epoch: int) -> bool:
    """True once `cfg.patience` epochs in a row brought no new best val metric (never for patience None),
    and never before `cfg.min_epochs` epochs are done. A function of the checkpointed state alone, so a
    resumed run stops where an uninterrupted one does."""
    return (cfg.patience is not None and epochs_done >= cfg.min_epochs
            and epochs_done - 1 - best_epoch >= cfg.patience)


def new_state(cfg: RunConfig, data: TaskData, amp: Amp, device: torch.device) -> TrainState:
    """A fresh run: the model and optimizer, the shuffle's and augmentations' generators, the weight average
    (None: the best-on-val model is the result) and the global stream the training step draws from (dropout,
    drop path), each from its own stream of `cfg.seed` (`benchmark.training.seeds`)."""
    model = make_model(cfg, data.spec.num_classes, data.t_in, device, stats=data.stats)
    state = TrainState(model, make_optimizer(model, cfg), amp.scaler, seeds.generator(cfg.seed, "shuffle"),
                       seeds.generator(cfg.seed, "augment"), make_averager(cfg))
    torch.manual_seed(seeds.stream_seed(cfg.seed, "train"))
    return state


def resume(path: Path, cfg: RunConfig, state: TrainState, fresh: Callable[[], TrainState]) -> TrainState:
    """`state` continued from the checkpoint at `path` when there is a usable one; a checkpoint that loads but does
    not fit is set aside and the run starts again from `fresh()`."""
    saved = load_checkpoint(path, cfg)
    if saved is None:
        return state
    try:
        state.load(saved)
    except Exception as err:  # noqa: BLE001 — a checkpoint that loads but does not fit: start again
        set_aside(path, err)
        return fresh()
    log.info("resuming %s from %s after epoch %d", cfg.run_name, path, state.epoch)
    return state


def validate(model: Classifier, data: TaskData, cfg: RunConfig, amp: Amp, device: torch.device) -> float:
    scores, targets = predict(model, data.val, eval_batch_size(cfg, data.t_in), amp, device, data.spec.label_kind)
    return task_metric(data.spec.metric, scores, targets)


def _result(state: TrainState, cfg: RunConfig, data: TaskData, amp: Amp, device: torch.device,
            tracked: tracking.TrackedRun) -> dict[str, Any]:
    """The run's result: the best-on-val model (or, with weight averaging, the averaged one, as in the paper's
    code), evaluated on val and, once, on test."""
    model, best = state.model, state.best
    if best.state is not None:  # None only when no val metric was finite: the last model then
        model.load_state_dict(best.state)
    val = best.val
    if state.averager is not None:
        tracked.log_metrics({"best_epoch_val_metric": best.val,
                             "best_epoch_test_metric": evaluate(model, data, cfg, amp, device)["test"],
                             "averaged_epochs": state.averager.count})
        model.load_state_dict(state.averager.averaged_state(model))
        val = validate(model, data, cfg, amp, device)
    return {"epoch": best.epoch, "val": val, **evaluate(model, data, cfg, amp, device)}


def _start_tracking(cfg: RunConfig, state: TrainState, metric: str, device: torch.device, tracking_uri: str,
                    experiment: str, tags: Mapping[str, object]) -> tracking.TrackedRun:
    return tracking.start_run(
        tracking_uri, experiment, run_name=cfg.run_name, params=cfg.to_params(),
        tags={"config_hash": cfg.config_hash, "suite": experiment, "metric_name": metric,
              "git_commit": git_commit(), "device": describe_device(device),
              **dependency_versions(), "engine_digest": engine_digest(),
              "config_version": CONFIG_VERSION, "resumed_from_epoch": state.epoch,
              "torch_threads": torch.get_num_threads(), **numerics.fingerprint(device),
              "numerics_canary": numerics.canary_digest(torch.get_num_threads()) if device.type == "cpu" else "",
              "pretrained_stem": stem_adaptation(cfg.pretrained, state.model.frontend.out_channels), **tags})


def evaluate(model: Classifier, data: TaskData, cfg: RunConfig, amp: Amp, device: torch.device) -> dict[str, Any]:
    """The run's result on test, evaluated once at the end: the test metric, per-class scores, each clip's
    prediction and the front-end examples. Test never selects anything, so evaluating it once, on the
    best-on-val (or averaged) model, gives the number it gave when it was evaluated at every new best."""
    spec = data.spec
    scores, targets = predict(model, data.test, eval_batch_size(cfg, data.t_in), amp, device, spec.label_kind)
    per_class, support = per_class_metric(spec.label_kind, scores, targets, spec.num_classes)
    if spec.label_kind == "single":
        preds, p_label = scores.argmax(1), scores.gather(1, targets[:, None])[:, 0]
    else:  # a multi-label metric does not split over clips: no per-clip prediction
        preds, p_label = torch.full((len(targets),), -1), torch.full((len(targets),), math.nan)
    labels = targets if targets.dim() == 1 else torch.full((len(targets),), -1)
    return {"test": task_metric(spec.metric, scores, targets), "per_class": per_class, "support": support,
            "predictions": {"clip_ids": data.test.clip_ids(), "labels": labels.tolist(), "preds": preds.tolist(),
                            "p_label": p_label.tolist()},
            "examples": frontend_examples(model, data.val, device) or {}}


@torch.no_grad()
def frontend_examples(model: Classifier, split: Split, device: torch.device) -> dict[str, Tensor] | None:
    """mel / score / merged mel / resolution encoding of the first val clips, for front-ends with scores."""
    model.eval()
    idx = torch.arange(min(N_EXAMPLES, len(split)))
    mel = model.filterbank(split.waveform(idx).to(device)).float().cpu()  # [N, T, F]: what the front-end merges
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
                                                               best["support"]),
             artifacts.PREDICTIONS_CSV: artifacts.predictions_csv(**best["predictions"])}
    if best["examples"]:
        ex = {k: v.numpy() for k, v in best["examples"].items()}
        files.update(artifacts.diffres_examples(*(ex[k] for k in artifacts.EXAMPLE_KEYS), hop_ms=cfg.hop_ms,
                                                title=f"{cfg.run_name} (best val epoch {best['epoch']})"))
    tracked.log_artifacts(files)
    tracked.finish("FINISHED")
    return health
