"""The repo's own backbones: created through timm's registry, timm-like head API, every frame kept."""

from __future__ import annotations

import pytest
import timm
import torch

import benchmark.backbones  # noqa: F401
from benchmark.config import RunConfig


def test_audiocnn_tiny_is_a_timm_model_with_a_timm_head_api():
    torch.manual_seed(0)
    model = timm.create_model("audiocnn_tiny", pretrained=False, in_chans=3, num_classes=5)
    x = torch.randn(2, 3, 40, 32)  # [B, C, T', F]
    assert model(x).shape == (2, 5) and model.num_classes == 5
    feats = model.forward_features(x)
    assert feats.shape[0] == 2 and feats.shape[2] == 40  # one vector per frame: no pooling in time
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.get_classifier().out_features == 7
    model(x).sum().backward()


def test_audiocnn_tiny_starts_near_uniform_and_runs_on_one_frame():
    torch.manual_seed(0)
    model = timm.create_model("audiocnn_tiny", in_chans=1, num_classes=5).eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 1, 1, 7))  # T' = 1 frame, odd mel count
    assert logits.shape == (4, 5) and float(logits.abs().max()) < 0.5


def test_audiocnn_tiny_has_no_pretrained_weights_and_is_a_valid_config_backbone():
    with pytest.raises(ValueError, match="audiocnn_tiny has no pretrained weights"):
        timm.create_model("audiocnn_tiny", pretrained=True)
    assert RunConfig(task="toy-transients", backbone="audiocnn_tiny").backbone == "audiocnn_tiny"
