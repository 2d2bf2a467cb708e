"""PSLA's weight averaging: the averaged weights are the mean of the saved end-of-epoch ones, a resumed
run keeps the running average, and the run reports the averaged model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.training.averaging import WeightAverager
from benchmark.training.checkpoint import checkpoint_path
from benchmark.training.train import run
from benchmark.validation import validate
from tests.benchmark.conftest import make_tiny_config

CFG = make_tiny_config(epochs=3, weight_averaging="2-3", mixup_prob=0.0, patience=None)


class Interrupt(Exception):
    pass


def test_the_range_is_validated():
    assert CFG.averaged_epochs == (2, 3) and RunConfig(task="toy-transients").averaged_epochs is None
    for bad in ("0-2", "3-2", "2-9", "two"):
        with pytest.raises(ConfigError, match="weight_averaging"):
            validate(CFG.replace(weight_averaging=bad))
    with pytest.raises(ConfigError, match="patience"):
        validate(CFG.replace(patience=2))


def test_the_average_is_the_mean_of_the_epochs_in_range_and_survives_a_state_round_trip():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    averager, seen = WeightAverager(CFG), []
    for epoch in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model[1].num_batches_tracked += 1
        averager.update(epoch, model)
        if averager.covers(epoch):
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
    assert averager.count == 2 and not averager.covers(0)
    again = WeightAverager(CFG)
    again.load_state_dict(averager.state_dict())
    mean = again.averaged_state(model)
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean"):
        assert torch.allclose(mean[name], (seen[0][name] + seen[1][name]) / 2, atol=1e-6), name
    assert mean["1.num_batches_tracked"] == 3  # integer buffers keep the last value


def _train(root: Path, **kw):
    return run(CFG, tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment="wa", checkpoint_dir=root / "ckpt",
               progress=False, **kw)


def _mean_of(states):
    return {k: torch.stack([s[k].double() for s in states]).mean(0) for k, v in states[0].items()
            if v.is_floating_point()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("wa")
    saved = []

    def keep(epoch, metrics):  # the checkpoint of each epoch, as PSLA saves one model per epoch
        saved.append(torch.load(checkpoint_path(root / "ckpt", CFG), weights_only=True))

    return root, _train(root, on_epoch_end=keep), saved


def test_the_averaged_weights_are_the_mean_of_the_saved_ones(uninterrupted):
    root, res, saved = uninterrupted
    final = saved[-1]["averaging"]
    assert final["count"] == 2
    expected = _mean_of([saved[1]["model"], saved[2]["model"]])  # epochs 2 and 3 (1-based)
    for name, mean in expected.items():
        assert torch.allclose(final["sums"][name] / final["count"], mean, atol=1e-9), name
    metrics = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(res.run_id).data.metrics
    assert metrics["averaged_epochs"] == 2 and "best_epoch_test_metric" in metrics
    assert metrics["test_metric"] == res.test_metric


def test_a_resumed_run_keeps_the_running_average(uninterrupted, tmp_path):
    _, ref, saved = uninterrupted

    def die(epoch, metrics):
        if epoch == 1:  # after the first epoch of the range
            raise Interrupt

    with pytest.raises(Interrupt):
        _train(tmp_path, on_epoch_end=die)
    assert torch.load(checkpoint_path(tmp_path / "ckpt", CFG), weights_only=True)["averaging"]["count"] == 1
    resumed = _train(tmp_path)
    final = torch.load(checkpoint_path(tmp_path / "ckpt", CFG), weights_only=True)["averaging"]
    assert final["count"] == 2
    for name, value in saved[-1]["averaging"]["sums"].items():
        assert torch.equal(final["sums"][name], value), name
    assert (resumed.val_metric, resumed.test_metric) == (ref.val_metric, ref.test_metric)
