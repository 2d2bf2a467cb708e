"""The task metrics on known numbers: AP as sklearn computes it (ties as one threshold), mAP over the
classes with a positive, accuracy and the per-class forms the run's per_class.csv holds."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.metrics import (
    accuracy,
    average_precision,
    mean_average_precision,
    per_class_accuracy,
    per_class_metric,
    task_metric,
)


@pytest.mark.parametrize(
    ("scores", "positives", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.8333333333333333),  # sklearn's docstring example
        ([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 0], 1.0),
        ([0.9, 0.8, 0.7, 0.6], [0, 0, 1, 1], (1 / 3 + 2 / 4) / 2),
        ([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 1], 0.5),  # one tie group: precision 2/4 at recall 1
        ([0.9, 0.5, 0.5, 0.1], [0, 1, 0, 1], 0.5 * (1 / 3) + 0.5 * (2 / 4)),
        ([0.3, 0.2], [0, 0], math.nan),
    ],
)
def test_average_precision_on_known_numbers(scores, positives, expected):
    ap = average_precision(torch.tensor(scores), torch.tensor(positives))
    assert (math.isnan(ap) and math.isnan(expected)) or ap == pytest.approx(expected, abs=1e-12)


MULTI_SCORES = torch.tensor([[0.1, 0.9, 0.2], [0.4, 0.8, 0.1], [0.35, 0.1, 0.3], [0.8, 0.2, 0.4]])
MULTI_TARGETS = torch.tensor([[0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float)
SINGLE_SCORES = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.1, 0.9, 0.0]])
SINGLE_LABELS = torch.tensor([0, 1, 1, 1])


def test_map_averages_classes_with_a_positive():
    # class 0: 0.8333 (sklearn example); class 1: perfect; class 2: no positive -> left out
    assert mean_average_precision(MULTI_SCORES, MULTI_TARGETS) == pytest.approx((0.8333333333333333 + 1.0) / 2)


def test_accuracy_and_per_class_accuracy():
    assert accuracy(SINGLE_SCORES, SINGLE_LABELS) == 0.75
    per_class = per_class_accuracy(SINGLE_SCORES, SINGLE_LABELS, 3)
    assert per_class[:2] == [1.0, pytest.approx(2 / 3)] and math.isnan(per_class[2])


def test_task_metric_picks_the_tasks_metric():
    assert task_metric("accuracy", SINGLE_SCORES, SINGLE_LABELS) == accuracy(SINGLE_SCORES, SINGLE_LABELS)
    assert task_metric("mAP", MULTI_SCORES, MULTI_TARGETS) == mean_average_precision(MULTI_SCORES, MULTI_TARGETS)


def test_per_class_metric_gives_scores_and_support():
    per_class, support = per_class_metric("single", SINGLE_SCORES, SINGLE_LABELS, 3)
    assert per_class[:2] == [1.0, pytest.approx(2 / 3)] and math.isnan(per_class[2]) and support == [1, 3, 0]
    per_class, support = per_class_metric("multi", MULTI_SCORES, MULTI_TARGETS, 3)
    assert per_class[:2] == [pytest.approx(0.8333333333333333), 1.0] and math.isnan(per_class[2])
    assert support == [2, 2, 0]
