"""The filterbank axis in a run: the config field (old identities kept), the model that reads waveforms,
a learned filterbank trained with the model end to end, and its cost in the compute figures."""

from __future__ import annotations

import pytest
import torch
from mlflow import MlflowClient

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.tracking.compute import measure
from benchmark.training.data import load_task_data
from benchmark.training.steps import Amp, make_model, make_optimizer, train_one_epoch
from benchmark.training.train import run
from benchmark.validation import validate

FB_RECIPE = dict(epochs=1, batch_size=8, max_train_clips=16, max_eval_clips=8, n_mels=40, freq_mask=4,
                 time_mask_ms=100.0, mixup_prob=0.5)


def test_filterbank_field_names_the_run_and_validates():
    cfg = RunConfig(task="toy-transients")
    assert cfg.filterbank == "mel" and cfg.identity()["filterbank"] == "mel"
    assert cfg.replace(filterbank="mel").config_hash == cfg.config_hash
    leaf = cfg.replace(filterbank="leaf")
    assert leaf.config_hash != cfg.config_hash and leaf.identity()["filterbank"] == "leaf"
    assert leaf.run_name.startswith("toy-transients/leaf+diffres/") and "mel" not in cfg.run_name
    assert RunConfig.from_dict(leaf.to_params()) == leaf  # MLflow params read back
    with pytest.raises(ConfigError, match=r"RunConfig.filterbank='leff': expected one of \['efficientleaf', 'leaf'"):
        validate(cfg.replace(filterbank="leff"))


def test_a_mel_model_has_a_parameter_free_filterbank_and_its_state_dict_is_unchanged(tiny_config):
    cfg = tiny_config(frontend="avgpool", reduction_rate=0.5)
    model = make_model(cfg, num_classes=5, t_in=151, device=torch.device("cpu"), stats=(-2.0, 1.5))
    assert not list(model.filterbank.parameters()) and not any(k.startswith("filterbank") for k in model.state_dict())
    leaf = make_model(cfg.replace(filterbank="leaf", n_mels=40), num_classes=5, t_in=151, device=torch.device("cpu"))
    assert sum(p.numel() for p in leaf.filterbank.parameters()) == 280  # LEAF's 40 bands
    # the backbone and front-end start from the same seed as the mel run's
    mel40 = make_model(cfg.replace(n_mels=40), num_classes=5, t_in=151, device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(mel40.backbone.parameters(), leaf.backbone.parameters()))


def test_a_learned_filterbank_trains_with_the_model(tiny_config):
    cfg = tiny_config(filterbank="efficientleaf", frontend="diffres", reduction_rate=0.5, **FB_RECIPE)
    data = load_task_data(cfg)
    assert data.val._waveform is not None  # every split keeps its waveforms: the model computes features
    model = make_model(cfg, data.spec.num_classes, data.t_in, torch.device("cpu"))
    with torch.no_grad():
        fb_map = model.filterbank(data.train.waveform(torch.arange(2)))
    assert fb_map.shape == (2, data.t_in, 40)  # on the cached log-mel's frame grid
    before = {k: v.clone() for k, v in model.filterbank.state_dict().items()}
    optimizer = make_optimizer(model, cfg)
    batches = [data.train.batch(torch.arange(i, i + 8)) for i in (0, 8)]
    losses = train_one_epoch(model, batches, optimizer, Amp(torch.device("cpu"), False), cfg, data, "ce",
                             torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.isfinite(torch.tensor(losses["train_loss"]))
    changed = [k for k, v in model.filterbank.state_dict().items() if not torch.equal(v, before[k])]
    assert {"centres", "sigmas", "pool_widths", "log1p_a", "tbn.weight"} <= set(changed)
    report = measure(model, data.t_in, cfg.n_mels, extractor=data.extractor, n_samples=data.n_samples)
    assert report.params_filterbank == 240 and report.flops_filterbank > 0
    assert report.flops_pipeline == report.flops_filterbank + report.flops_frontend + report.flops_backbone
    assert report.latency_pipeline_ms > 0 and report.latency_ms > 0


def test_run_end_to_end_with_a_learned_filterbank(tmp_path, tiny_config):
    cfg = tiny_config(filterbank="sincnet", frontend="spec", **FB_RECIPE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = run(cfg, tracking_uri=uri, experiment="fb", checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert not res.reused and 0 <= res.test_metric <= 1
    r = MlflowClient(uri).get_run(res.run_id)
    assert r.data.params["filterbank"] == "sincnet" and r.info.run_name == cfg.run_name
    m = r.data.metrics
    assert m["params_filterbank"] == 160 and m["flops_filterbank"] > 100 * m["flops_features"] > 0
    assert m["flops_pipeline"] == m["flops_filterbank"] + m["flops_total"]
    again = run(cfg, tracking_uri=uri, experiment="fb", checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert again.reused and again.test_metric == res.test_metric


def test_mel_runs_count_the_stft_in_the_pipeline(tmp_path, tiny_config):
    cfg = tiny_config(frontend="avgpool", reduction_rate=0.5, **FB_RECIPE)
    data = load_task_data(cfg)
    model = make_model(cfg, data.spec.num_classes, data.t_in, torch.device("cpu"))
    report = measure(model, data.t_in, cfg.n_mels, extractor=data.extractor, n_samples=data.n_samples)
    assert report.params_filterbank == 0 and report.flops_filterbank == report.flops_features > 0
    assert report.flops_pipeline == report.flops_features + report.flops_total
    assert report.latency_pipeline_ms > 0
