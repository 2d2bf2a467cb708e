"""The trainer end to end on the embedded task with a real MLflow store: reproducible, reused,
resumable, robust to a corrupt checkpoint, early stopping (also across a resume), the run-health
verdict on a run that learns and on one that cannot; plus its building blocks (optimizer, loss choice,
the per-step lr)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from benchmark.config import RunConfig
from benchmark.tracking import numerics
from benchmark.tracking.artifacts import read_predictions
from benchmark.training.checkpoint import checkpoint_path
from benchmark.training.data import epoch_batches, load_task_data
from benchmark.training.recipes import lr_at_step
from benchmark.training.steps import Amp, choose_loss, make_model, make_optimizer, train_one_epoch
from benchmark.training.train import cpu_threads, run, stops_early

# ----------------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize(("optimizer", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_make_optimizer_follows_the_recipe(optimizer, cls):
    cfg = RunConfig.for_task("esc50", fold=1, optimizer=optimizer, weight_decay=1e-3)
    opt = make_optimizer(torch.nn.Linear(3, 2), cfg)
    assert type(opt) is cls
    (group,) = opt.param_groups
    assert (group["lr"], group["betas"], group["weight_decay"]) == (cfg.lr, (cfg.beta1, cfg.beta2), 1e-3)


def test_choose_loss():
    cfg = RunConfig(task="toy-transients")
    assert choose_loss(cfg, "single") == "ce" and choose_loss(cfg, "multi") == "bce"
    assert choose_loss(cfg.replace(loss="bce"), "single") == "bce"
    with pytest.raises(ValueError, match="multi-label"):
        choose_loss(cfg.replace(loss="ce"), "multi")


def test_stops_early_after_patience_epochs_without_a_new_best():
    cfg = RunConfig(task="toy-transients", epochs=10, patience=2)
    # best at epoch 3: epochs 4 and 5 bring nothing new -> stop before epoch 6
    assert [stops_early(cfg, done, best_epoch=3) for done in range(4, 8)] == [False, False, True, True]
    assert not stops_early(cfg, 0, best_epoch=-1) and not stops_early(cfg, 1, best_epoch=-1)
    assert stops_early(cfg, 2, best_epoch=-1)  # a val metric that never counts (NaN) stops it too
    assert not any(stops_early(cfg.replace(patience=None), done, 0) for done in range(10))
    # min_epochs: a run still at chance (best epoch 0) is not stopped before 6 epochs are done
    waits = cfg.replace(min_epochs=6)
    assert [stops_early(waits, done, best_epoch=0) for done in range(3, 8)] == [False, False, False, True, True]


def test_train_one_epoch_sets_the_lr_of_every_step(tiny_config):
    cfg = tiny_config(frontend="avgpool", mixup_prob=0.0, max_train_clips=48, warmup_epochs=1)
    data = load_task_data(cfg)
    cpu = torch.device("cpu")
    model = make_model(cfg, data.spec.num_classes, data.t_in, cpu)
    optimizer = make_optimizer(model, cfg)
    seen = []

    def lr_at(step):
        seen.append(lr_at_step(cfg, 0, step, 3))
        return seen[-1]

    gen = torch.Generator().manual_seed(0)
    batches = (data.train.batch(idx) for idx in epoch_batches(len(data.train), cfg.batch_size, gen))
    train_one_epoch(model, batches, optimizer, Amp(cpu, False), cfg, data, "ce", gen, cpu, lr_at=lr_at)
    assert seen == [pytest.approx(cfg.lr / 3), pytest.approx(2 * cfg.lr / 3), cfg.lr]
    assert optimizer.param_groups[0]["lr"] == cfg.lr


# ------------------------------------------------------------------------------------------ training
# 32 training clips, 32 val / test clips, 2 epochs, mixup and SpecAugment on: a few seconds on a CPU
CFG = RunConfig.for_task("toy-transients", frontend="diffres", reduction_rate=0.5, epochs=2, batch_size=16,
                         max_train_clips=32, max_eval_clips=32, mixup_prob=0.5, lr_decay_from=1, lr_decay_every=1)


# learns toy-transients reliably in a few seconds (val accuracy ~0.65 after 8 epochs, chance 0.2-0.3)
TRAINABLE = RunConfig.for_task("toy-transients", frontend="avgpool", epochs=8, batch_size=16, max_train_clips=256,
                               max_eval_clips=64, mixup_prob=0.0)
HEALTH = {"epochs_run", "stopped_early", "best_epoch", "final_train_loss", "chance_loss", "chance_metric", "trained"}


class Interrupt(RuntimeError):
    pass


def train(cfg, root: Path, experiment: str = "test", **kw):
    return run(cfg, tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment=experiment,
               checkpoint_dir=root / "ckpt", progress=False, **kw)


def _trained_once(tmp_path_factory, name: str, cfg: RunConfig):
    root = tmp_path_factory.mktemp(name)
    return root, train(cfg, root)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of CFG, shared by the tests that compare against it."""
    return _trained_once(tmp_path_factory, "reference", CFG)


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
    # the run's own thread count, and the numerics it ran with (benchmark.tracking.numerics)
    assert r.data.tags["torch_threads"] == str(CFG.cpu_threads) == r.data.tags["numerics_threads"]
    assert r.data.tags["numerics_canary"] == numerics.canary_digest(CFG.cpu_threads)
    assert r.data.tags["numerics_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert r.data.params == {k: str(v) for k, v in CFG.to_params().items()}
    metrics = r.data.metrics
    assert metrics["val_metric"] == res.val_metric and metrics["test_metric"] == res.test_metric
    assert metrics["flops_frontend"] > 0 and metrics["flops_total"] == metrics["flops_frontend"] + metrics[
        "flops_backbone"]
    assert metrics["t_out"] == metrics["t_in"] // 2 and metrics["latency_ms"] > 0
    assert HEALTH <= set(metrics)
    assert (metrics["epochs_run"], metrics["stopped_early"], metrics["best_epoch"]) == (CFG.epochs, 0, res.best_epoch)
    assert res.epochs_run == CFG.epochs and metrics["trained"] == float(res.trained)
    assert metrics["final_train_loss"] == client.get_metric_history(res.run_id, "train_task_loss")[-1].value
    assert 0 < metrics["chance_loss"] <= math.log(5) + 1e-9 and 0.2 <= metrics["chance_metric"] < 1
    assert r.data.tags["torch_threads"] == str(torch.get_num_threads())
    curve = client.get_metric_history(res.run_id, "val_metric_epoch")
    assert [m.step for m in curve] == list(range(CFG.epochs))
    assert max(m.value for m in curve) == res.val_metric
    assert len(client.get_metric_history(res.run_id, "train_loss")) == CFG.epochs
    artifacts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"config.json", "per_class.csv", "diffres_examples.npz", "diffres_examples.png",
            "test_predictions.csv"} <= artifacts
    # one row per test clip: the per-clip predictions give the run's test accuracy back
    preds = read_predictions(Path(client.download_artifacts(res.run_id, "test_predictions.csv", str(root))))
    assert len(preds["clip_id"]) == metrics["n_test_clips"] and len(set(preds["clip_id"])) == len(preds["clip_id"])
    assert np.mean(preds["pred"] == preds["label"]) == pytest.approx(res.test_metric, abs=1e-9)
    assert ((preds["p_label"] >= 0) & (preds["p_label"] <= 1)).all()


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
    assert (again.trained, again.epochs_run, again.best_epoch) == (res.trained, res.epochs_run, res.best_epoch)
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


def test_a_finished_run_from_before_the_health_metrics_is_reused_without_them(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    old = client.create_run(client.create_experiment("test"), tags={"config_hash": CFG.config_hash})
    client.log_metric(old.info.run_id, "val_metric", 0.5)
    client.log_metric(old.info.run_id, "test_metric", 0.25)
    client.set_terminated(old.info.run_id, "FINISHED")
    res = train(CFG, tmp_path)
    assert res.reused and (res.val_metric, res.test_metric) == (0.5, 0.25)
    assert (res.trained, res.epochs_run, res.best_epoch) == (None, None, -1)


def test_a_run_that_cannot_learn_is_marked_untrained(tmp_path):
    """lr = 0, the control of the health check: the loss stays at chance, so trained = 0."""
    res = train(CFG.replace(lr=0.0, frontend="avgpool", mixup_prob=0.0), tmp_path)
    metrics = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(res.run_id).data.metrics
    assert res.trained is False and metrics["trained"] == 0.0
    assert metrics["final_train_loss"] > 0.9 * metrics["chance_loss"]


def test_a_run_that_learns_is_marked_trained(tmp_path):
    res = train(TRAINABLE, tmp_path)
    metrics = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(res.run_id).data.metrics
    assert res.trained is True and metrics["trained"] == 1.0 and res.epochs_run == TRAINABLE.epochs
    assert metrics["final_train_loss"] < 0.8 * metrics["chance_loss"]
    assert res.val_metric > metrics["chance_metric"] + 0.1 * (1 - metrics["chance_metric"])


ES_CFG = TRAINABLE.replace(patience=1)  # toy-transients sits at chance for a few epochs: it stops early


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory):
    return _trained_once(tmp_path_factory, "early", ES_CFG)


def test_early_stopping_stops_after_patience_epochs_without_a_new_best(early_stopped):
    root, res = early_stopped
    assert res.epochs_run == res.best_epoch + 1 + ES_CFG.patience < ES_CFG.epochs
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    curve = [m.value for m in client.get_metric_history(res.run_id, "val_metric_epoch")]
    assert len(curve) == res.epochs_run and max(curve) == res.val_metric == curve[res.best_epoch]
    assert all(v <= res.val_metric for v in curve[res.best_epoch + 1:])
    metrics = client.get_run(res.run_id).data.metrics
    assert (metrics["stopped_early"], metrics["epochs_run"]) == (1.0, res.epochs_run)


@pytest.mark.parametrize("kill_after", ["first", "last"])
def test_an_early_stopped_run_killed_mid_way_stops_at_the_same_epoch(early_stopped, tmp_path, kill_after):
    """Killed after its first epoch, or after the one that stops it (checkpoint written, run not finished):
    the resumed run ends where the uninterrupted one did, with the same numbers."""
    ref = early_stopped[1]
    kill_at = 0 if kill_after == "first" else ref.epochs_run - 1

    def die(epoch, metrics):
        if epoch == kill_at:
            raise Interrupt("killed")

    with pytest.raises(Interrupt):
        train(ES_CFG, tmp_path, on_epoch_end=die)
    epochs_seen = []
    resumed = train(ES_CFG, tmp_path, on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch))
    assert epochs_seen == list(range(kill_at + 1, ref.epochs_run))
    assert (resumed.val_metric, resumed.test_metric, resumed.best_epoch, resumed.epochs_run, resumed.trained) == (
        ref.val_metric, ref.test_metric, ref.best_epoch, ref.epochs_run, ref.trained)


def test_a_corrupt_checkpoint_restarts_cleanly(reference, tmp_path):
    path = checkpoint_path(tmp_path / "ckpt", CFG)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x02 truncated garbage")
    epochs_seen = []
    res = train(CFG, tmp_path, on_epoch_end=lambda epoch, metrics: epochs_seen.append(epoch))
    assert epochs_seen == [0, 1]
    assert (res.val_metric, res.test_metric) == (reference[1].val_metric, reference[1].test_metric)
    assert path.with_name("last.pt.corrupt").exists()


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


def test_a_cpu_run_sets_its_own_thread_count_and_gives_the_callers_back():
    before = torch.get_num_threads()
    with cpu_threads(CFG.replace(cpu_threads=2), torch.device("cpu")):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with cpu_threads(CFG.replace(cpu_threads=2), torch.device("meta")):  # not a CPU run: not touched
        assert torch.get_num_threads() == before
