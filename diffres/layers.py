"""The importance-score network of DiffRes and the conv layers it is built from.

``ScoreNetwork`` maps a log-mel ``[B, T, F]`` (and an optional frame mask) to scores ``[B, T]`` in
(0, 1); ``kind`` picks the reference code's dense convs or depthwise-separable ones
(``SCORE_NETWORKS``). The layers are plain ``nn.Conv1d`` subclasses (same parameters and
state-dict keys) whose forwards are faster on CPU; ``DepthwiseConvFunction`` is the depthwise
conv's hand-written backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SCORE_NETWORKS",
    "Conv",
    "Depthwise",
    "DepthwiseConvFunction",
    "Pointwise",
    "ResidualConvBlock",
    "ScoreNetwork",
    "SeparableConv",
]


class Pointwise(nn.Conv1d):
    """A 1x1 conv over ``[B, C, T]`` as matrix products (oneDNN's 1x1 conv is up to 2x slower on CPU):
    on a time-major input (a transposed ``[B, T, C]`` tensor, as the score network's first layer sees
    the log-mel) one ``linear``, otherwise ``bias + W @ x`` batched over B. No copy either way."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.squeeze(-1)  # [C_out, C_in]
        if x.transpose(1, 2).is_contiguous():
            return F.linear(x.transpose(1, 2), weight, self.bias).transpose(1, 2)
        batch, _, t_in = x.shape
        bias = self.bias[None, :, None].expand(batch, -1, t_in)
        return torch.baddbmm(bias, weight.expand(batch, -1, -1), x)


class Conv(nn.Conv1d):
    """A 'same'-padded conv over time; takes the frame mask like the separable one (and ignores it:
    its input is already masked, so padded frames read as the zero padding of a clip alone).

    The input is made contiguous first: the first layer sees the log-mel transposed, and oneDNN
    would copy a strided input in the forward and again in the backward.
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return super().forward(x.contiguous())


class DepthwiseConvFunction(torch.autograd.Function):
    """Depthwise conv over time (``groups = channels``) with a hand-written backward.

    On CPU, oneDNN's weight gradient of a depthwise conv costs several times its forward; here it is
    one multiply-and-sum per kernel tap over shifted views, and the input gradient is the correlation
    with the flipped kernel (see ``bench_frontends --compare`` for the effect on DiffRes).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):  # x [B, C, T], weight [C, 1, K], bias [C] or None
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv1d(x, weight, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        pad, (channels, _, taps), t_in = ctx.padding, weight.shape, x.shape[-1]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # y_t = sum_k w_k x_{t+k-pad}, so dx_u = sum_j w_{K-1-j} dy_{u+j-(K-1-pad)}.
            grad_x = F.conv1d(grad, weight.flip(-1).to(grad.dtype), padding=taps - 1 - pad, groups=channels)
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:
            xg = x.to(grad.dtype)
            grad_w = weight.new_empty(channels, 1, taps)
            for k in range(taps):
                shift = k - pad  # output t reads input t + shift
                lo, hi = max(0, -shift), min(grad.shape[-1], t_in - shift)
                grad_w[:, 0, k] = (grad[..., lo:hi] * xg[..., lo + shift:hi + shift]).sum((0, 2))
        if ctx.needs_input_grad[2]:  # False when there is no bias
            grad_b = grad.sum((0, 2)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None


class Depthwise(nn.Conv1d):
    """A 'same'-padded depthwise conv over time, ``Depthwise(channels, kernel_size)``; its backward is
    :class:`DepthwiseConvFunction`'s. Same parameters (and state-dict keys) as ``nn.Conv1d(..., groups=C)``."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        return DepthwiseConvFunction.apply(x, self.weight, self.bias, self.padding[0])


class SeparableConv(nn.Module):
    """Pointwise (1x1) conv across channels, then a depthwise kernel-5 conv over time (MobileNet)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        # Pointwise first when narrowing, so the depthwise conv runs on the fewer channels.
        self.pointwise = Pointwise(in_channels, out_channels, 1)
        self.depthwise = Depthwise(out_channels, kernel_size)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # Re-mask between the two: the pointwise bias would otherwise leak into valid frames.
        return self.depthwise(_masked(self.pointwise(x), mask))


def _conv(in_channels: int, out_channels: int, kernel_size: int, separable: bool) -> nn.Module:
    if separable:
        return SeparableConv(in_channels, out_channels, kernel_size)
    return Conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


def _masked(h: Tensor, mask: Tensor | None) -> Tensor:
    # Zeroing padded frames after every conv makes a padded clip score exactly as the clip alone.
    return h if mask is None else h * mask


class ResidualConvBlock(nn.Module):
    """Two 1-D convs over time (kernel 5) with BatchNorm and ReLU; the second is residual.

    ``separable=True`` factors each conv into a pointwise (1x1) conv across channels and a depthwise
    kernel-5 conv over time, as in MobileNet: the same receptive field and widths, about a fifth of
    the multiply-adds at F = 128.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, separable: bool = False):
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, kernel_size, separable)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = _conv(out_channels, out_channels, kernel_size, separable)
        self.bn2 = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # [B, C_in, T] -> [B, C_out, T]
        # In place (ReLU, residual add): BatchNorm's backward needs its input, not its output, so
        # this is safe and saves a full activation per op.
        h = _masked(torch.relu_(self.bn1(self.conv1(x, mask))), mask)
        return _masked(torch.relu_(self.bn2(self.conv2(h, mask)).add_(h)), mask)


SCORE_NETWORKS = ("paper", "separable")


class ScoreNetwork(nn.Module):
    """Residual conv blocks halving the channels from F down to 8, then a conv to 1 and a sigmoid.

    At F = 128: 128 -> 64 -> 32 -> 16 -> 8 -> 1. ``kind="paper"``: the reference code's dense
    kernel-5 convs, about 82k parameters and 164k FLOPs per input frame. ``kind="separable"``:
    every conv factored into pointwise (channels) then depthwise (time), about 19k parameters and
    36k FLOPs per frame.
    """

    def __init__(self, in_f_dim: int, kernel_size: int = 5, min_channels: int = 8, kind: str = "paper"):
        super().__init__()
        if kind not in SCORE_NETWORKS:
            raise ValueError(f"score_network must be one of {SCORE_NETWORKS}, got {kind!r}")
        widths = [in_f_dim]
        while widths[-1] // 2 >= min_channels or len(widths) == 1:
            widths.append(max(widths[-1] // 2, 1))
        separable = kind == "separable"
        self.blocks = nn.ModuleList(
            ResidualConvBlock(a, b, kernel_size, separable) for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Conv1d(widths[-1], 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # [B, T, F], [B, T] -> [B, T] in (0, 1)
        mask = None if mask is None else mask[:, None].to(x.dtype)  # [B, 1, T]
        h = _masked(x.transpose(1, 2), mask)  # [B, F, T]
        for block in self.blocks:
            h = block(h, mask)
        return torch.sigmoid(self.head(h)).squeeze(1)
