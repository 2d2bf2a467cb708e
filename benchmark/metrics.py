"""The task metrics: accuracy for single-label tasks, mAP for multi-label ones, and their per-class forms.

Pure functions of `scores [N, C]` (class probabilities) and targets (`[N]` labels or `[N, C]` multi-hot);
no model, no data loading. mAP is the mean of per-class average precision over the classes with at least
one positive clip; AP matches sklearn's `average_precision_score` (tied scores form one threshold).
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
