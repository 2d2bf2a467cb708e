"""The classifier heads: registry, PSLA's attention pooling (shapes, gradients, multi-label outputs), and
the heads inside a built model."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.model.classifier import build_model
from benchmark.model.heads import EPS, PAPER_HEADS, AttentionPool, PooledBackbone, get_head, list_heads
from benchmark.validation import validate


def test_the_registry_names_its_heads():
    assert list_heads() == ["attention", "linear"]
    with pytest.raises(KeyError, match="known heads"):
        get_head("mlp")
    with pytest.raises(ConfigError, match="RunConfig.head='mlp'"):
        validate(RunConfig(task="toy-transients", head="mlp"))


def test_attention_pool_shapes_and_probabilities():
    torch.manual_seed(0)
    pool = AttentionPool(in_features=16, num_classes=7)
    assert pool.n_heads == PAPER_HEADS == 4 and pool.head_weight.tolist() == [0.25] * 4
    fmap = torch.randn(3, 16, 9, 2)  # [B, D, T, F]
    logits = pool(fmap)
    assert logits.shape == (3, 7)
    p = pool.probabilities(fmap)
    assert torch.allclose(logits.sigmoid(), p.clamp(EPS, 1 - EPS), atol=1e-6)
    # multi-label: independent class probabilities, not a distribution over classes
    assert bool(((p > 0) & (p < 1)).all()) and not torch.allclose(p.sum(1), torch.ones(3))


def test_attention_pool_is_an_attention_weighted_mean_over_time():
    """With one head, the output is sum_t c_t a_t / sum_t a_t: a frame with a high attention dominates."""
    pool = AttentionPool(in_features=1, num_classes=1, n_heads=1)
    with torch.no_grad():
        pool.att.weight.fill_(20.0)
        pool.att.bias.fill_(-10.0)  # attention ~1 where the feature is 1, ~0 where it is 0
        pool.cla.weight.fill_(4.0)  # class prob sigmoid(4) at the attended frame, 0.5 elsewhere
        pool.cla.bias.fill_(0.0)
        p = pool.probabilities(torch.tensor([0.0, 0.0, 1.0, 0.0]).view(1, 1, 4, 1))
    assert abs(float(p) - float(torch.sigmoid(torch.tensor(4.0)))) < 1e-3


def test_attention_pool_passes_gradients_to_every_parameter_and_the_features():
    torch.manual_seed(0)
    pool = AttentionPool(in_features=8, num_classes=3)
    fmap = torch.randn(2, 8, 5, 3, requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    torch.nn.functional.binary_cross_entropy_with_logits(pool(fmap), target).backward()
    assert fmap.grad is not None and fmap.grad.abs().sum() > 0
    for name, param in pool.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("backbone", ["audiocnn_tiny", "mobilenetv3_small_050"])
def test_a_model_with_the_attention_head_trains_end_to_end(backbone):
    cfg = RunConfig(task="toy-transients", backbone=backbone, head="attention", n_mels=32)
    model = build_model(cfg, num_classes=5, t_in=101)
    assert isinstance(model.backbone, PooledBackbone) and isinstance(model.backbone.head, AttentionPool)
    logits, _ = model(0.1 * torch.randn(2, 100 * 160))  # waveform in: 101 frames at 10 ms
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert model.backbone.head.att.weight.grad is not None
    linear = build_model(cfg.replace(head="linear"), num_classes=5, t_in=101)
    assert not isinstance(linear.backbone, PooledBackbone)
