"""Train and evaluate one `RunConfig`: a plain PyTorch loop, tracked in MLflow, resumable.

    res = run(cfg, tracking_uri="sqlite:///mlflow.db", experiment="quick", checkpoint_dir=Path("checkpoints"))

What one run does, top to bottom:
1. If MLflow already holds a FINISHED run with this config's hash, return it (`reused=True`).
2. Load the task's train / val / test features (cached by `tasks`), build front-end + backbone.
3. Resume from `checkpoint_dir/<config_hash>/last.pt` if it loads; a corrupt one is set aside.
4. Each epoch: train (waveform mixup, SpecAugment, task loss + guide_loss_weight * front-end aux
   loss), evaluate on val; when val improves, evaluate test too (the test number is the one at the best
   val epoch; test never selects anything); checkpoint atomically; report to Optuna if a trial is given.
5. Log compute figures, final metrics and artifacts; mark the MLflow run FINISHED.

Loss: cross-entropy for single-label tasks and BCE for multi-label ones (`loss="auto"`); the paper
used BCE everywhere, available as `loss="bce"`. Metrics: accuracy (single-label), mAP (multi-label,
mean of per-class average precision over classes with at least one positive clip).
Determinism: on CPU a run is a function of its config — seeded init, seeded generators for the
shuffle and the augmentations, `num_workers=0`, deterministic algorithms — and a resumed run restores
every RNG state, so it ends with the same numbers as an uninterrupted one. On CUDA, AMP (bf16 where
supported, else fp16 with a GradScaler) and channels-last are used; results are then close, not equal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from benchmark import tracking
from benchmark.compute import describe_device, measure
from benchmark.config import CONFIG_VERSION, RunConfig, lr_at_epoch
from benchmark.model import Classifier, build_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
N_EXAMPLES = 4  # val clips drawn in diffres_examples.png


@dataclass(frozen=True)
class RunResult:
    val_metric: float  # best validation metric
    test_metric: float  # test metric at the best validation epoch
    run_id: str  # MLflow run id
    reused: bool  # True: an identical finished run existed, nothing was trained
    config_hash: str = ""
    best_epoch: int = -1


# ------------------------------------------------------------------------------------------- metrics
def average_precision(scores: Tensor, positives: Tensor) -> float:
    """AP of one class: sum over score thresholds of (recall step) x precision, as sklearn's
    `average_precision_score` (tied scores form one threshold). NaN when there is no positive."""
    scores, positives = scores.double().flatten(), positives.double().flatten()
    n_pos = positives.sum()
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positives = scores[order], positives[order]
    tp = positives.cumsum(0)
    # last index of each run of equal scores: a threshold admits the whole tie group at once
    last = torch.cat([scores[1:] != scores[:-1], torch.tensor([True])]).nonzero().flatten()
    tp_at = tp[last]
    precision = tp_at / (last + 1).double()
    recall_step = torch.diff(tp_at, prepend=torch.zeros(1, dtype=tp_at.dtype)) / n_pos
    return float((recall_step * precision).sum())


def per_class_average_precision(scores: Tensor, targets: Tensor) -> list[float]:
    """scores, targets: [N, C] -> AP per class (NaN for classes without a positive clip)."""
    return [average_precision(scores[:, c], targets[:, c] > 0.5) for c in range(scores.shape[1])]


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    aps = [ap for ap in per_class_average_precision(scores, targets) if not math.isnan(ap)]
    return float(sum(aps) / len(aps)) if aps else float("nan")


def accuracy(scores: Tensor, labels: Tensor) -> float:
    return float((scores.argmax(1) == labels).double().mean()) if len(labels) else float("nan")


def per_class_accuracy(scores: Tensor, labels: Tensor, num_classes: int) -> list[float]:
    correct = (scores.argmax(1) == labels).double()
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=num_classes).double()
    return (hits / counts).tolist()  # 0/0 -> NaN for classes absent from the split


def task_metric(metric: str, scores: Tensor, targets: Tensor) -> float:
    return accuracy(scores, targets) if metric == "accuracy" else mean_average_precision(scores, targets)


# ---------------------------------------------------------------------------------------------- data
@dataclass
class TaskData:
    spec: Any  # tasks.TaskSpec
    train: Dataset
    val: Dataset
    test: Dataset
    extractor: nn.Module  # waveform [B, N] -> normalised log-mel [B, T, F]
    t_in: int
    n_samples: int


def load_task_data(cfg: RunConfig, data_dir: str | os.PathLike | None = None) -> TaskData:
    from tasks import FeatureConfig, get_task, load_features

    spec = get_task(cfg.task)
    feature_cfg = FeatureConfig(sample_rate=spec.sample_rate, n_mels=cfg.n_mels, win_ms=cfg.win_ms,
                                hop_ms=cfg.hop_ms)
    splits = {s: load_features(cfg.task, s, feature_cfg, fold=cfg.fold, data_dir=data_dir)
              for s in ("train", "val", "test")}
    for split, fs in splits.items():
        if len(fs) == 0:
            raise ValueError(f"task {cfg.task!r} (fold={cfg.fold}) has an empty {split} split")
    first = splits["train"][0]
    limited = {
        "train": _subset(splits["train"], cfg.max_train_clips),
        "val": _subset(splits["val"], cfg.max_eval_clips),
        "test": _subset(splits["test"], cfg.max_eval_clips),
    }
    return TaskData(spec=spec, extractor=splits["train"].extractor, t_in=int(first["logmel"].shape[0]),
                    n_samples=int(first["waveform"].shape[-1]), **limited)


def _subset(dataset: Dataset, n: int | None) -> Dataset:
    """A fixed random subset of n clips (the same for every seed and front-end), or the whole split."""
    if n is None or n >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    return Subset(dataset, sorted(order[:n].tolist()))


# ------------------------------------------------------------------------------------------ training
@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the duration of a run, then the caller's setting again."""
    before, before_warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


def _loss_fn(cfg: RunConfig, label_kind: str) -> str:
    kind = cfg.loss if cfg.loss != "auto" else ("ce" if label_kind == "single" else "bce")
    if kind == "ce" and label_kind != "single":
        raise ValueError(f"RunConfig.loss='ce' needs a single-label task; {cfg.task!r} is multi-label "
                         f"(use 'bce' or 'auto')")
    return kind


def _one_hot(target: Tensor, num_classes: int) -> Tensor:
    return F.one_hot(target, num_classes).float() if target.dim() == 1 else target.float()


def _task_loss(kind: str, logits: Tensor, soft_target: Tensor) -> Tensor:
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, soft_target)  # probabilities as targets (mixup)
    return F.binary_cross_entropy_with_logits(logits, soft_target)


class _Amp:
    """Autocast + GradScaler on CUDA (bf16 when supported: no scaler needed), nothing on CPU."""

    def __init__(self, device: torch.device, enabled: bool):
        self.enabled = enabled and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.enabled else contextlib.nullcontext()


def train_one_epoch(model: Classifier, loader: DataLoader, optimizer: torch.optim.Optimizer, amp: _Amp,
                    cfg: RunConfig, data: TaskData, loss_kind: str, augment_gen: torch.Generator,
                    device: torch.device) -> dict[str, float]:
    from tasks.augment import mixup, spec_augment

    model.train()
    totals = {"train_loss": 0.0, "train_task_loss": 0.0, "train_aux_loss": 0.0}
    n_batches = 0
    for batch in loader:
        logmel, target = batch["logmel"], _one_hot(batch["target"], data.spec.num_classes)  # [B,T,F], [B,C]
        if cfg.mixup_prob > 0 and float(torch.rand((), generator=augment_gen)) < cfg.mixup_prob:
            wave, target = mixup(batch["waveform"], target, cfg.mixup_alpha, augment_gen)
            with torch.no_grad():
                logmel = data.extractor(wave)
        if cfg.freq_mask > 0 or cfg.time_mask_frames > 0:
            logmel = spec_augment(logmel, cfg.freq_mask, cfg.time_mask_frames, augment_gen)
        logmel, target = logmel.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with amp.autocast():
            logits, out = model(logmel)
            task_loss = _task_loss(loss_kind, logits, target)
            aux_loss = out.aux_loss.float()
            loss = task_loss + cfg.guide_loss_weight * aux_loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {float(loss)} in run {cfg.run_name} "
                                     f"(task loss {float(task_loss)}, aux loss {float(aux_loss)})")
        optimizer.zero_grad(set_to_none=True)
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
        totals["train_loss"] += float(loss.detach())
        totals["train_task_loss"] += float(task_loss.detach())
        totals["train_aux_loss"] += float(aux_loss.detach())
        n_batches += 1
    return {k: v / max(n_batches, 1) for k, v in totals.items()}


@torch.no_grad()
def predict(model: Classifier, dataset: Dataset, batch_size: int, amp: _Amp, device: torch.device,
            label_kind: str) -> tuple[Tensor, Tensor]:
    """Class probabilities [N, C] (softmax or sigmoid) and targets of a whole split, in order."""
    model.eval()
    scores, targets = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        with amp.autocast():
            logits, _ = model(batch["logmel"].to(device))
        logits = logits.float().cpu()
        scores.append(logits.softmax(1) if label_kind == "single" else logits.sigmoid())
        targets.append(batch["target"])
    return torch.cat(scores), torch.cat(targets)


@torch.no_grad()
def frontend_examples(model: Classifier, dataset: Dataset, device: torch.device) -> dict[str, Tensor] | None:
    """mel / score / merged mel / resolution encoding of the first val clips, for front-ends with scores."""
    model.eval()
    n = min(N_EXAMPLES, len(dataset))
    mel = torch.stack([dataset[i]["logmel"] for i in range(n)])  # [N, T, F]
    out = model.frontend(mel.to(device))
    if out.score is None:
        return None
    merged = out.features[:, 0]  # the mean-merged log-mel: channel 0 of every scoring front-end
    res_enc = getattr(out, "resolution_enc", None)
    res_enc = torch.zeros_like(merged) if res_enc is None else res_enc  # diffres-noenc: none to show
    return {"mel": mel.float(), "score": out.score[..., 0].float().cpu(), "merged": merged.float().cpu(),
            "resolution_enc": res_enc.float().cpu()}


# --------------------------------------------------------------------------------------- checkpoints
def checkpoint_path(checkpoint_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    return Path(checkpoint_dir) / cfg.config_hash / "last.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file and rename: a crash mid-write never leaves a half checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The checkpoint of `cfg` if it exists and loads (tensors and plain types only), else None.

    A file that does not load, or belongs to another config, is renamed `*.corrupt` and logged.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a format-{CHECKPOINT_FORMAT} checkpoint")
        if state.get("config_hash") != cfg.config_hash:
            raise ValueError(f"checkpoint of config {state.get('config_hash')}, not {cfg.config_hash}")
        missing = {"epoch", "model", "optimizer", "rng", "history", "best"} - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks {sorted(missing)}")
        return state
    except Exception as err:  # noqa: BLE001 — any unreadable file means: start again cleanly
        _set_aside(path, err)
        return None


def _set_aside(path: Path, err: BaseException) -> None:
    bad = path.with_name(path.name + ".corrupt")
    log.warning("checkpoint %s is unusable (%s: %s); moved to %s, training restarts from epoch 0",
                path, type(err).__name__, err, bad.name)
    with contextlib.suppress(OSError):
        os.replace(path, bad)


def _rng_state(loader_gen: torch.Generator, augment_gen: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "loader": loader_gen.get_state(), "augment": augment_gen.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _restore_rng(state: Mapping[str, Any], loader_gen: torch.Generator, augment_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loader_gen.set_state(state["loader"])
    augment_gen.set_state(state["augment"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- run
def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
                         best_epoch=int(metrics.get("best_epoch", -1)))
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
    loss_kind = _loss_fn(cfg, spec.label_kind)
    amp = _Amp(device, cfg.amp)

    def fresh() -> tuple[Classifier, torch.optim.Optimizer]:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, num_classes=spec.num_classes, t_in=data.t_in).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optim_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = optim_cls(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                              weight_decay=cfg.weight_decay)
        return model, optimizer

    model, optimizer = fresh()
    loader_gen = torch.Generator().manual_seed(cfg.seed)
    augment_gen = torch.Generator().manual_seed(cfg.seed + 1)
    # a last batch of one clip breaks BatchNorm in training mode; drop it only in that case
    drop_last = len(data.train) % cfg.batch_size == 1 and len(data.train) > 1
    loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, generator=loader_gen,
                        num_workers=0, drop_last=drop_last, pin_memory=device.type == "cuda")

    start_epoch, history = 0, []
    best: dict[str, Any] = {"epoch": -1, "val": -math.inf, "test": math.nan, "per_class": [], "support": [],
                            "examples": {}}
    path = checkpoint_path(checkpoint_dir, cfg)
    state = load_checkpoint(path, cfg)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                amp.scaler.load_state_dict(state["scaler"])
            _restore_rng(state["rng"], loader_gen, augment_gen)
            start_epoch, history, best = int(state["epoch"]), list(state["history"]), dict(state["best"])
            log.info("resuming %s from %s after epoch %d", cfg.run_name, path, start_epoch)
        except Exception as err:  # noqa: BLE001 — a checkpoint that loads but does not fit: start again
            _set_aside(path, err)
            model, optimizer = fresh()
            loader_gen.manual_seed(cfg.seed)
            augment_gen.manual_seed(cfg.seed + 1)
            start_epoch, history = 0, []

    tracked = tracking.start_run(
        tracking_uri, experiment, run_name=cfg.run_name, params=cfg.to_params(),
        tags={"config_hash": cfg.config_hash, "suite": experiment, "metric_name": spec.metric,
              "git_commit": tracking.git_commit(), "device": describe_device(device),
              "torch_version": torch.__version__, "timm_version": timm.__version__,
              "config_version": CONFIG_VERSION, "resumed_from_epoch": start_epoch, **tags})
    try:
        for record in history:  # a resumed run carries the curves of the attempts before it
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))
            if trial is not None:
                trial.report(record["val_metric_epoch"], int(record["epoch"]))
        bar = tqdm(range(start_epoch, cfg.epochs), initial=start_epoch, total=cfg.epochs, desc=cfg.run_name,
                   unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at_epoch(cfg, epoch)
            record = {"epoch": epoch, "lr": lr_at_epoch(cfg, epoch),
                      **train_one_epoch(model, loader, optimizer, amp, cfg, data, loss_kind, augment_gen, device)}
            scores, targets = predict(model, data.val, cfg.batch_size, amp, device, spec.label_kind)
            record["val_metric_epoch"] = task_metric(spec.metric, scores, targets)
            if record["val_metric_epoch"] > best["val"]:
                best = _evaluate_best(model, data, cfg, amp, device, epoch, record["val_metric_epoch"])
            history.append(record)
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "config_hash": cfg.config_hash, "config": cfg.to_params(),
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": amp.scaler.state_dict() if amp.scaler.is_enabled() else {},
                "rng": _rng_state(loader_gen, augment_gen), "history": history, "best": best})
            tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_metric_epoch']:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
            if trial is not None:
                _report_to_optuna(trial, record["val_metric_epoch"], epoch, tracked)
        bar.close()
        _finish(tracked, cfg, data, model, device, best)
    except BaseException as err:
        pruned = type(err).__name__ == "TrialPruned"
        with contextlib.suppress(Exception):
            if pruned:
                tracked.set_tags({"pruned": "true"})
            tracked.finish("KILLED" if pruned or isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    return RunResult(val_metric=float(best["val"]), test_metric=float(best["test"]), run_id=tracked.run_id,
                     reused=False, config_hash=cfg.config_hash, best_epoch=int(best["epoch"]))


def _evaluate_best(model: Classifier, data: TaskData, cfg: RunConfig, amp: _Amp, device: torch.device,
                   epoch: int, val: float) -> dict[str, Any]:
    """Test metric, per-class test scores and front-end examples of a new best-on-val model."""
    spec = data.spec
    scores, targets = predict(model, data.test, cfg.batch_size, amp, device, spec.label_kind)
    if spec.label_kind == "single":
        per_class = per_class_accuracy(scores, targets, spec.num_classes)
        support = torch.bincount(targets, minlength=spec.num_classes).tolist()
    else:
        per_class = per_class_average_precision(scores, targets)
        support = (targets > 0.5).sum(0).tolist()
    examples = frontend_examples(model, data.val, device) or {}
    return {"epoch": epoch, "val": val, "test": task_metric(spec.metric, scores, targets),
            "per_class": per_class, "support": support, "examples": examples}


def _report_to_optuna(trial: Any, value: float, epoch: int, tracked: tracking.TrackedRun) -> None:
    import optuna

    trial.report(value, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at epoch {epoch} with val {value:.4f}")


def _finish(tracked: tracking.TrackedRun, cfg: RunConfig, data: TaskData, model: Classifier,
            device: torch.device, best: Mapping[str, Any]) -> None:
    compute = measure(model, data.t_in, cfg.n_mels, extractor=data.extractor, n_samples=data.n_samples,
                      device=device)
    tracked.set_tags({"latency_threads": compute.latency_threads, "latency_device": compute.latency_device})
    tracked.log_metrics({"val_metric": best["val"], "test_metric": best["test"], "best_epoch": best["epoch"],
                         "n_train_clips": len(data.train), "n_val_clips": len(data.val),
                         "n_test_clips": len(data.test), **compute.metrics()})
    files = {"config.json": tracking.config_json(cfg.to_dict(), cfg.config_hash, CONFIG_VERSION),
             "per_class.csv": tracking.per_class_csv(data.spec.class_names, best["per_class"], best["support"])}
    if best["examples"]:
        ex = {k: v.numpy() for k, v in best["examples"].items()}
        files.update(tracking.diffres_examples(ex["mel"], ex["score"], ex["merged"], ex["resolution_enc"],
                                               title=f"{cfg.run_name} (best val epoch {best['epoch']})"))
    tracked.log_artifacts(files)
    tracked.finish("FINISHED")
