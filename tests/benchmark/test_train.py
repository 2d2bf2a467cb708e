"""The trainer end to end on the embedded task with a real MLflow store: reproducible, reused,
resumable, robust to a corrupt checkpoint; plus the metrics on known numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from benchmark.config import RunConfig
from benchmark.train import (
    accuracy,
    average_precision,
    checkpoint_path,
    load_checkpoint,
    mean_average_precision,
    per_class_accuracy,
    run,
)

# ------------------------------------------------------------------------------------------- metrics


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


def test_map_averages_classes_with_a_positive():
    scores = torch.tensor([[0.1, 0.9, 0.2], [0.4, 0.8, 0.1], [0.35, 0.1, 0.3], [0.8, 0.2, 0.4]])
    targets = torch.tensor([[0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float)
    # class 0: 0.8333 (sklearn example); class 1: perfect; class 2: no positive -> left out
    assert mean_average_precision(scores, targets) == pytest.approx((0.8333333333333333 + 1.0) / 2)


def test_accuracy_and_per_class_accuracy():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.1, 0.9, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])
    assert accuracy(scores, labels) == 0.75
    per_class = per_class_accuracy(scores, labels, 3)
    assert per_class[:2] == [1.0, pytest.approx(2 / 3)] and math.isnan(per_class[2])


# ------------------------------------------------------------------------------------------ training
# 32 training clips, 32 val / test clips, 2 epochs, mixup and SpecAugment on: a few seconds on a CPU
CFG = RunConfig.for_task("toy-transients", frontend="diffres", reduction_rate=0.5, epochs=2, batch_size=16,
                         max_train_clips=32, max_eval_clips=32, mixup_prob=0.5, lr_decay_from=1, lr_decay_every=1)


class Interrupt(RuntimeError):
    pass


def train(cfg, root: Path, experiment: str = "test", **kw):
    return run(cfg, tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment=experiment,
               checkpoint_dir=root / "ckpt", progress=False, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of CFG, shared by the tests that compare against it."""
    root = tmp_path_factory.mktemp("reference")
    return root, train(CFG, root)


def test_a_run_logs_the_schema_the_report_reads(reference):
    root, res = reference
    assert not res.reused and 0 <= res.val_metric <= 1 and 0 <= res.test_metric <= 1
    assert 0 <= res.best_epoch < CFG.epochs
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    r = client.get_run(res.run_id)
    assert r.info.status == "FINISHED" and r.info.run_name == CFG.run_name
    assert {"config_hash", "suite", "metric_name", "git_commit", "device", "torch_version",
            "timm_version"} <= set(r.data.tags)
    assert r.data.tags["config_hash"] == CFG.config_hash and r.data.tags["metric_name"] == "accuracy"
    assert r.data.params == {k: str(v) for k, v in CFG.to_params().items()}
    metrics = r.data.metrics
    assert metrics["val_metric"] == res.val_metric and metrics["test_metric"] == res.test_metric
    assert metrics["flops_frontend"] > 0 and metrics["flops_total"] == metrics["flops_frontend"] + metrics[
        "flops_backbone"]
    assert metrics["t_out"] == metrics["t_in"] // 2 and metrics["latency_ms"] > 0
    curve = client.get_metric_history(res.run_id, "val_metric_epoch")
    assert [m.step for m in curve] == list(range(CFG.epochs))
    assert max(m.value for m in curve) == res.val_metric
    assert len(client.get_metric_history(res.run_id, "train_loss")) == CFG.epochs
    artifacts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"config.json", "per_class.csv", "diffres_examples.npz", "diffres_examples.png"} <= artifacts


def test_same_config_gives_the_same_numbers_on_cpu(reference, tmp_path):
    again = train(CFG, tmp_path)
    assert (again.val_metric, again.test_metric, again.best_epoch) == (reference[1].val_metric,
                                                                      reference[1].test_metric,
                                                                      reference[1].best_epoch)
    assert again.config_hash == reference[1].config_hash


def test_a_finished_config_is_found_and_not_trained_again(reference):
    root, res = reference
    epochs_seen = []
    again = train(CFG, root, on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch))
    assert again.reused and again.run_id == res.run_id and epochs_seen == []
    assert (again.val_metric, again.test_metric) == (res.val_metric, res.test_metric)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("test").experiment_id])) == 1


def test_a_run_killed_mid_way_resumes_to_the_same_result(reference, tmp_path):
    def die_after_first_epoch(epoch, metrics):
        if epoch == 0:
            raise Interrupt("killed")

    with pytest.raises(Interrupt):
        train(CFG, tmp_path, on_epoch_end=die_after_first_epoch)
    assert torch.load(checkpoint_path(tmp_path / "ckpt", CFG), weights_only=True)["epoch"] == 1
    epochs_seen = []
    resumed = train(CFG, tmp_path, on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch))
    assert epochs_seen == [1]  # only what was left
    ref = reference[1]
    assert (resumed.val_metric, resumed.test_metric, resumed.best_epoch) == (ref.val_metric, ref.test_metric,
                                                                            ref.best_epoch)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    finished = client.get_run(resumed.run_id)
    assert finished.data.tags["resumed_from_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(resumed.run_id, "val_metric_epoch")] == [0, 1]


def test_a_corrupt_checkpoint_restarts_cleanly(reference, tmp_path):
    path = checkpoint_path(tmp_path / "ckpt", CFG)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x02 truncated garbage")
    epochs_seen = []
    res = train(CFG, tmp_path, on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch))
    assert epochs_seen == [0, 1]
    assert (res.val_metric, res.test_metric) == (reference[1].val_metric, reference[1].test_metric)
    assert path.with_name("last.pt.corrupt").exists()


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    path = checkpoint_path(tmp_path / "ckpt", CFG)
    path.parent.mkdir(parents=True)
    torch.save({"format": 1, "config_hash": CFG.replace(seed=7).config_hash, "epoch": 1}, path)
    assert load_checkpoint(path, CFG) is None and path.with_name("last.pt.corrupt").exists()
    torch.save({"format": 1, "config_hash": CFG.config_hash, "epoch": 1}, path)  # keys missing
    assert load_checkpoint(path, CFG) is None


def test_optuna_prunes_a_bad_trial(tmp_path):
    import optuna

    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=0))
    trial = study.ask()
    cfg = CFG.replace(frontend="avgpool", epochs=3)
    with pytest.raises(optuna.TrialPruned):
        train(cfg, tmp_path, trial=trial)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert r.info.status == "KILLED" and r.data.tags["pruned"] == "true"
    assert study.trials[0].intermediate_values == {0: pytest.approx(
        client.get_metric_history(r.info.run_id, "val_metric_epoch")[0].value)}
