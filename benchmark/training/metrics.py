"""The task metrics: accuracy for single-label tasks, mAP for multi-label ones, and their per-class forms.

Pure functions of `scores [N, C]` (class probabilities) and targets (`[N]` labels or `[N, C]` multi-hot);
no model, no data loading. mAP is the mean of per-class average precision over the classes with at least
one positive clip; AP matches sklearn's `average_precision_score` (tied scores form one threshold).

Run health (did a run learn anything?): `chance_loss` is the task loss of predicting the training
label prior, `chance_metric` the val metric of a constant predictor, and `is_trained` compares a run
with both (thresholds `TRAINED_LOSS_RATIO`, `TRAINED_METRIC_MARGIN`); `run_health` gives all three.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
    """The task's headline number: `metric` is a TaskSpec's "accuracy" or "mAP"."""
    return accuracy(scores, targets) if metric == "accuracy" else mean_average_precision(scores, targets)


def per_class_metric(label_kind: str, scores: Tensor, targets: Tensor,
                     num_classes: int) -> tuple[list[float], list[int]]:
    """(metric per class, clips per class): accuracy and label counts for a single-label task,
    AP and positive counts for a multi-label one."""
    if label_kind == "single":
        support = torch.bincount(targets, minlength=num_classes).tolist()
        return per_class_accuracy(scores, targets, num_classes), support
    return per_class_average_precision(scores, targets), (targets > 0.5).sum(0).tolist()


# ------------------------------------------------------------------------------------------- health
# A run that learnt anything moves its training loss far below the loss of predicting the label prior
# (a model stuck at chance sits at ~1.0x, noise moves it by a few %): 0.8x leaves a wide gap on both
# sides. The val metric must also beat a constant predictor by a tenth of the way to perfect, so a lucky
# val split (or a class-imbalanced one) does not pass a run that only predicts the majority.
TRAINED_LOSS_RATIO = 0.8
TRAINED_METRIC_MARGIN = 0.1


def class_prior(targets: Tensor, num_classes: int) -> Tensor:
    """Share of clips per class [C]: labels [N] (single-label) or multi-hot [N, C] (multi-label)."""
    if targets.dim() == 1:
        return torch.bincount(targets, minlength=num_classes).double() / max(len(targets), 1)
    return (targets > 0.5).double().mean(0)


def chance_loss(loss_kind: str, train_targets: Tensor, num_classes: int) -> float:
    """Task loss of always predicting the training label prior p: its entropy -sum p log p for
    cross-entropy ("ce"; ln C for balanced classes), the mean binary entropy of the per-class priors
    for BCE ("bce", single- or multi-label)."""
    p = class_prior(train_targets, num_classes)
    if loss_kind == "ce":
        return float(-torch.special.xlogy(p, p).sum())
    binary = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))
    return float(binary.mean())


def chance_metric(metric: str, val_targets: Tensor, num_classes: int) -> float:
    """Val metric of the best constant predictor: the largest class share for accuracy; for mAP the
    mean prevalence over the classes with a positive (a constant score's AP is the class prevalence)."""
    p = class_prior(val_targets, num_classes)
    if metric == "accuracy":
        return float(p.max()) if len(val_targets) else float("nan")
    present = p[p > 0]
    return float(present.mean()) if len(present) else float("nan")


def is_trained(final_train_loss: float, chance_loss_value: float, best_val_metric: float,
               chance_metric_value: float) -> bool:
    """final train loss < TRAINED_LOSS_RATIO x chance loss, and best val metric > chance metric +
    TRAINED_METRIC_MARGIN x (1 - chance metric). NaN anywhere: False."""
    return bool(final_train_loss < TRAINED_LOSS_RATIO * chance_loss_value
                and best_val_metric > chance_metric_value + TRAINED_METRIC_MARGIN * (1 - chance_metric_value))


def run_health(loss_kind: str, metric: str, train_targets: Tensor, val_targets: Tensor, num_classes: int,
               final_train_loss: float, best_val_metric: float) -> dict[str, float]:
    """A run's `chance_loss`, `chance_metric` and `trained` (1.0 / 0.0), as MLflow metrics."""
    loss_at_chance = chance_loss(loss_kind, train_targets, num_classes)
    metric_at_chance = chance_metric(metric, val_targets, num_classes)
    verdict = is_trained(final_train_loss, loss_at_chance, best_val_metric, metric_at_chance)
    return {"chance_loss": loss_at_chance, "chance_metric": metric_at_chance, "trained": float(verdict)}
