"""The score network's layers (diffres.layers): sizes, and the fast convs against plain nn.Conv1d."""

import pytest
import torch

from diffres import DiffRes
from diffres.layers import Depthwise, DepthwiseConvFunction, Pointwise, ScoreNetwork


def test_diffres_score_network_has_the_papers_size():
    assert sum(p.numel() for p in DiffRes(1000, 128, 0.5).score_net.parameters()) == pytest.approx(82_000, rel=0.02)


def test_separable_score_network_is_a_fifth_of_the_papers_and_rejects_unknown_kinds():
    paper, separable = (DiffRes(1000, 128, 0.5, score_network=k).score_net for k in ("paper", "separable"))
    n_paper, n_sep = (sum(p.numel() for p in net.parameters()) for net in (paper, separable))
    assert 0.15 < n_sep / n_paper < 0.25
    with pytest.raises(ValueError, match="score_network must be one of"):
        DiffRes(1000, 128, 0.5, score_network="tiny")
    with pytest.raises(ValueError, match="score_network must be one of"):
        ScoreNetwork(128, kind="tiny")


def test_score_network_halves_the_channels_down_to_eight_and_masks_padding():
    net = ScoreNetwork(128).eval()
    widths = [block.conv1.in_channels for block in net.blocks] + [net.head.in_channels]
    assert widths == [128, 64, 32, 16, 8]
    x = torch.randn(2, 50, 128)
    mask = torch.arange(50)[None] < torch.tensor([[50], [30]])
    with torch.no_grad():
        score = net(x, mask)
        alone = net(x[1:, :30])
    assert score.shape == (2, 50) and ((score > 0) & (score < 1)).all()
    assert torch.allclose(score[1, :30], alone[0], atol=1e-5)  # padded frames read as zeros


def test_pointwise_conv_equals_conv1d_on_both_layouts():
    torch.manual_seed(0)
    layer = Pointwise(16, 8, 1)
    x = torch.randn(2, 50, 16)  # [B, T, C] memory, seen as [B, C, T]
    plain = torch.nn.functional.conv1d(x.transpose(1, 2).contiguous(), layer.weight, layer.bias)
    assert torch.allclose(layer(x.transpose(1, 2)), plain, atol=1e-6)  # time-major: one linear
    assert torch.allclose(layer(x.transpose(1, 2).contiguous()), plain, atol=1e-6)  # [B, C, T]: baddbmm


@pytest.mark.parametrize(("taps", "padding"), [(5, 2), (3, 1), (5, 0), (5, 4)])
def test_depthwise_conv_backward_is_exact(taps, padding):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, taps, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: DepthwiseConvFunction.apply(x, w, b, padding), (x, w, b))
    # Float32, against autograd of nn.Conv1d with the same parameters; and only some inputs needing grads.
    layer = Depthwise(8, 5)
    plain = torch.nn.Conv1d(8, 8, 5, padding=2, groups=8)
    plain.load_state_dict(layer.state_dict())
    x32 = torch.randn(4, 8, 300)
    grads = []
    for module in (layer, plain):
        xi = x32.clone().requires_grad_()
        y = module(xi)
        grads.append([y, *torch.autograd.grad(y.sin().sum(), (xi, module.weight, module.bias))])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads))
    layer.bias.requires_grad_(False)
    (gw,) = torch.autograd.grad(layer(x32).sin().sum(), layer.weight)
    assert torch.allclose(gw, grads[1][2], atol=1e-4)
