"""Initial weights through timm's own pretrained machinery: a state dict saved here and loaded through
`pretrained_cfg_overlay=dict(file=...)` (never a download), the stem adaptation, validation, and the
check that fails at once when ImageNet weights can be had neither from the cache nor from the hub."""

from __future__ import annotations

import pytest
import timm
import torch

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.model.classifier import build_model
from benchmark.model.pretrained import (
    PretrainedUnavailable,
    check_pretrained,
    is_cached,
    stem_adaptation,
    timm_kwargs,
)
from benchmark.validation import validate

BACKBONE = "mobilenetv3_small_050"  # a small timm model with a pretrained configuration


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """An 'ImageNet-like' state dict: 3 input channels, 1000 classes, saved with torch.save."""
    torch.manual_seed(123)
    source = timm.create_model(BACKBONE, pretrained=False, in_chans=3, num_classes=1000)
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(source.state_dict(), path)
    return path, source.state_dict()


def _config(path, frontend):
    return RunConfig(task="toy-transients", backbone=BACKBONE, n_mels=32, frontend=frontend,
                     reduction_rate=0.5, pretrained=str(path))


def test_a_3_channel_front_end_gets_the_stem_as_is(weights_file):
    path, state = weights_file
    model = build_model(_config(path, "diffres"), num_classes=5, t_in=101)
    assert model.frontend.out_channels == 3
    body = model.backbone.state_dict()
    assert torch.equal(body["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(body["blocks.0.0.conv_dw.weight"], state["blocks.0.0.conv_dw.weight"])
    assert body["classifier.weight"].shape == (5, state["classifier.weight"].shape[1])  # a fresh head


def test_a_1_channel_front_end_gets_the_rgb_filters_summed(weights_file):
    path, state = weights_file
    model = build_model(_config(path, "spec"), num_classes=5, t_in=101)
    stem = model.backbone.state_dict()["conv_stem.weight"]
    assert stem.shape[1] == 1
    assert torch.allclose(stem, state["conv_stem.weight"].sum(dim=1, keepdim=True))
    assert stem_adaptation("imagenet", 1).startswith("RGB filters summed")
    assert stem_adaptation("imagenet", 3) == "3-channel stem used as is"


def test_the_attention_head_sits_on_the_pretrained_body(weights_file):
    path, state = weights_file
    model = build_model(_config(path, "diffres").replace(head="attention"), num_classes=5, t_in=101)
    body = model.backbone.body.state_dict()
    assert torch.equal(body["conv_stem.weight"], state["conv_stem.weight"])
    assert model(0.1 * torch.randn(2, 100 * 160))[0].shape == (2, 5)  # waveform in: 101 frames at 10 ms


def test_pretrained_is_validated():
    with pytest.raises(ConfigError, match="timm has no pretrained configuration"):
        validate(RunConfig(task="toy-transients", backbone="audiocnn_tiny", pretrained="imagenet"))
    with pytest.raises(ConfigError, match="one source of initial weights"):
        validate(RunConfig(task="toy-transients", backbone=BACKBONE, pretrained="imagenet", pretrained_weights="w.pth"))
    with pytest.raises(PretrainedUnavailable, match="no such file"):
        timm_kwargs("/nonexistent/weights.pth")
    assert timm_kwargs("none") == {"pretrained": False} and timm_kwargs("imagenet") == {"pretrained": True}


def test_offline_without_cached_weights_fails_at_once_with_the_command_and_the_cache(tmp_path):
    cfg = RunConfig.for_task("esc50", fold=1, recipe="paper")
    assert cfg.pretrained == "imagenet" and not is_cached(cfg.backbone, tmp_path)
    with pytest.raises(PretrainedUnavailable) as err:
        check_pretrained([cfg], cache_dir=tmp_path, online=False)
    assert "`hf download timm/efficientnet_b2.ra_in1k model.safetensors`" in str(err.value)
    assert str(tmp_path) in str(err.value)
    check_pretrained([cfg], cache_dir=tmp_path, online=True)  # reachable: timm downloads on first use
    check_pretrained([cfg.replace(pretrained="none")], cache_dir=tmp_path, online=False)  # nothing needed


def test_weights_in_the_huggingface_cache_pass_the_check_offline(tmp_path):
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/FILE}."""
    repo = tmp_path / "models--timm--efficientnet_b2.ra_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"0")
    cfg = RunConfig.for_task("speechcommands", recipe="paper")
    assert is_cached(cfg.backbone, tmp_path)
    check_pretrained([cfg], cache_dir=tmp_path, online=False)
