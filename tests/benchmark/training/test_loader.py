"""The prefetching loader (issue 21): the seed's order whatever the worker count, and a run that resumes
bit for bit with workers reading ahead; plus a feature config refused before any store is touched."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.paths import LOADER_WORKERS_ENV as WORKERS_ENV
from benchmark.training.data import epoch_batches, load_task_data
from benchmark.training.loader import loader_workers, train_loader
from benchmark.training.train import run
from benchmark.validation import validate


class Interrupt(Exception):
    pass


def test_the_loaders_order_is_the_seeds_with_any_worker_count(tiny_config):
    data = load_task_data(tiny_config(max_train_clips=20))
    order = epoch_batches(len(data.train), 4, torch.Generator().manual_seed(7))
    direct = list(train_loader(data.train, order, torch.device("cpu"), workers=0))
    read_ahead = list(train_loader(data.train, order, torch.device("cpu"), workers=2))
    assert len(direct) == len(read_ahead) == len(order)
    for a, b, idx in zip(direct, read_ahead, order, strict=True):
        assert torch.equal(a["waveform"], b["waveform"]) and torch.equal(a["target"], b["target"])
        assert torch.equal(a["waveform"], data.train.waveform(idx))


def test_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert loader_workers(torch.device("cpu")) == 0
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert loader_workers(torch.device("cpu")) == 3
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ValueError, match=f"{WORKERS_ENV}='many'"):
        loader_workers(torch.device("cpu"))


def test_a_run_with_the_prefetching_loader_resumes_bit_for_bit(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(frontend="avgpool", reduction_rate=0.5, epochs=3, lr_decay_from=1)

    def train(root, **kw):
        return run(cfg, tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment="t", checkpoint_dir=root / "ckpt",
                   progress=False, **kw)

    monkeypatch.setenv(WORKERS_ENV, "0")
    reference = train(tmp_path / "ref")
    monkeypatch.setenv(WORKERS_ENV, "2")

    def die(epoch, metrics):
        if epoch == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tmp_path / "cut", on_epoch_end=die)
    resumed = train(tmp_path / "cut")
    assert (resumed.val_metric, resumed.test_metric, resumed.best_epoch) == (
        reference.val_metric, reference.test_metric, reference.best_epoch)
    from mlflow import MlflowClient

    loss = [MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_metric_history(r.run_id, "train_loss")
            for root, r in ((tmp_path / "ref", reference), (tmp_path / "cut", resumed))]
    assert [m.value for m in loss[0]] == [m.value for m in loss[1]]  # every epoch, bit for bit


def test_a_feature_config_that_cannot_work_is_refused_when_the_config_is_built():
    with pytest.raises(ConfigError, match=r"RunConfig.n_mels=500: expected <= 201 \(FFT bins of a 25.0 ms window\)"):
        validate(RunConfig(task="toy-transients", n_mels=500))
    with pytest.raises(ConfigError, match=r"RunConfig.hop_ms=0.03"):
        validate(RunConfig(task="toy-transients", hop_ms=0.03))
    # a learnable filterbank has no FFT, but its run still builds the task's log-mel features (their statistics):
    # refused when the config is built, not when the run starts
    with pytest.raises(ConfigError, match=r"RunConfig.n_mels=500"):
        validate(RunConfig(task="toy-transients", n_mels=500, filterbank="leaf"))
