"""The repo's own backbones: created through timm's registry, timm-like head API, every frame kept."""

from __future__ import annotations

import pytest
import timm
import torch

import benchmark.model.backbones  # noqa: F401
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


def _receptive_field(model: torch.nn.Module, t: int = 201) -> int:
    """Span of the input frames that reach the middle output frame (dilated taps leave gaps inside)."""
    x = torch.randn(1, 1, t, 16, requires_grad=True)
    model.eval()
    model.forward_features(x)[0, :, t // 2].sum().backward()
    reached = (x.grad[0, 0].abs().sum(-1) > 0).nonzero().flatten()
    return int(reached.max() - reached.min() + 1)


def test_audiocnn_tiny_keeps_its_receptive_field_in_milliseconds():
    torch.manual_seed(0)
    rf = {ms: _receptive_field(timm.create_model("audiocnn_tiny", num_classes=5, frame_ms=ms))
          for ms in (10.0, 20.0, 5.0, 2.5)}
    assert rf[20.0] == rf[10.0]  # reduced outputs keep the 10 ms architecture
    for ms in (5.0, 2.5):  # finer frames: about the same span of audio, never less than at 10 ms
        assert 0.8 * rf[10.0] * 10.0 <= rf[ms] * ms <= 1.2 * rf[10.0] * 10.0
    same = [timm.create_model("audiocnn_tiny", num_classes=5, frame_ms=ms) for ms in (10.0, 5.0)]
    assert sum(p.numel() for p in same[0].parameters()) == sum(p.numel() for p in same[1].parameters())


def test_the_model_tells_the_backbone_its_frame_length():
    from benchmark.model.classifier import build_model

    def scale(**kw) -> int:
        cfg = RunConfig(task="toy-transients", backbone="audiocnn_tiny", **kw)
        return build_model(cfg, num_classes=5, t_in=round(150 * 10 / cfg.hop_ms)).backbone.time_scale

    assert scale(frontend="spec", hop_ms=10.0) == 1
    assert scale(frontend="spec", hop_ms=5.0) == 2
    assert scale(frontend="diffres", hop_ms=5.0, reduction_rate=0.5) == 1  # T' at the 10 ms count
    assert scale(frontend="avgpool", hop_ms=10.0, reduction_rate=0.5) == 1
    with pytest.raises(ValueError, match="frame_ms"):
        timm.create_model("audiocnn_tiny", frame_ms=0.0)


@pytest.mark.parametrize("f", [8, 7, 1])
def test_frequency_max_pool_equals_torch_max_pool_in_values_and_gradients(f):
    from benchmark.model.backbones import FreqMaxPool2

    x = torch.randn(2, 3, 5, f)
    x[0, 0, 0, :2] = 0.0  # a tie
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = FreqMaxPool2()(a), torch.nn.MaxPool2d((1, 2), ceil_mode=True)(b)
    assert torch.equal(ours, ref)
    g = torch.randn_like(ref)
    ours.backward(g)
    ref.backward(g)
    assert torch.equal(a.grad, b.grad)
