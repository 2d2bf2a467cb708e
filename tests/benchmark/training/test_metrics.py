"""The task metrics on known numbers: AP as sklearn computes it (ties as one threshold), mAP over the
classes with a positive, accuracy and the per-class forms the run's per_class.csv holds; the run-health
references (chance loss and metric) and the `trained` verdict."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.training.metrics import (
    TRAINED_LOSS_RATIO,
    TRAINED_METRIC_MARGIN,
    accuracy,
    average_precision,
    chance_loss,
    chance_metric,
    is_trained,
    mean_average_precision,
    per_class_accuracy,
    per_class_metric,
    run_health,
    task_metric,
)
from benchmark.training.steps import task_loss


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


# ------------------------------------------------------------------------------------------- health
def test_chance_loss_of_balanced_classes_is_ln_c():
    labels = torch.arange(5).repeat(4)
    assert chance_loss("ce", labels, 5) == pytest.approx(math.log(5), abs=1e-12)


@pytest.mark.parametrize("kind", ["ce", "bce"])
def test_chance_loss_is_the_task_loss_of_predicting_the_prior(kind):
    """The loss the trainer computes for logits that output the training prior, on the training labels."""
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 0, 1])
    targets = torch.nn.functional.one_hot(labels, 4).float()
    prior = targets.mean(0).clamp_min(1e-12)
    logits = (prior.log() if kind == "ce" else torch.logit(prior.clamp_max(1 - 1e-6))).expand(8, 4)
    expected = float(task_loss(kind, logits, targets))
    assert chance_loss(kind, labels, 4) == pytest.approx(expected, abs=1e-6)  # task_loss runs in float32


def test_chance_loss_of_multi_hot_targets_is_the_mean_binary_entropy():
    multi = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.float)  # priors 1/2, 0, 1
    assert chance_loss("bce", multi, 3) == pytest.approx(math.log(2) / 3, abs=1e-12)


def test_chance_metric_is_what_a_constant_predictor_scores():
    labels = torch.tensor([0, 1, 1, 1, 2])
    assert chance_metric("accuracy", labels, 4) == pytest.approx(0.6)
    constant = torch.full((5, 4), 0.25)
    constant[:, 1] = 0.5  # always the majority class
    assert accuracy(constant, labels) == pytest.approx(chance_metric("accuracy", labels, 4))
    # mAP: a constant score's AP is the class prevalence (classes without a positive are left out)
    assert chance_metric("mAP", MULTI_TARGETS, 3) == pytest.approx(0.5)
    assert mean_average_precision(torch.full((4, 3), 0.3), MULTI_TARGETS) == pytest.approx(0.5)


@pytest.mark.parametrize(("loss", "val", "expected"), [
    (0.5, 0.9, True),
    (TRAINED_LOSS_RATIO * 1.6, 0.9, False),  # the loss must fall below 0.8 x chance, not to it
    (0.5, 0.2 + TRAINED_METRIC_MARGIN * 0.8, False),  # the metric must beat chance by the margin
    (0.5, 0.2 + TRAINED_METRIC_MARGIN * 0.8 + 1e-9, True),
    (math.nan, 0.9, False),
    (0.5, math.nan, False),
])
def test_trained_needs_both_the_loss_and_the_metric_away_from_chance(loss, val, expected):
    assert is_trained(loss, 1.6, val, 0.2) is expected


def test_run_health_gives_the_three_metrics_the_report_reads():
    labels = torch.arange(5).repeat(4)
    health = run_health("ce", "accuracy", labels, labels[:10], 5, final_train_loss=0.2, best_val_metric=0.9)
    assert health == {"chance_loss": pytest.approx(math.log(5)), "chance_metric": 0.2, "trained": 1.0}
    assert run_health("ce", "accuracy", labels, labels, 5, math.log(5), 0.9)["trained"] == 0.0
