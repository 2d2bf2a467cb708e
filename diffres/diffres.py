"""``DiffRes``: the importance-score network plus calls into :mod:`diffres.functional`.

Public API matches the reference implementation (PyPI ``pydiffres``), so its users can switch:
``DiffRes(in_t_dim, in_f_dim, dimension_reduction_rate, learn_pos_emb=False)``, input a log-mel
``[B, T, F]``, output with ``["feature"]`` ``[B, 3, T', F]`` (mean, max, resolution encoding),
``["score"]`` ``[B, T, 1]``, ``["guide_loss"]``, ``["activeness"]``, ``["avgpool"]``,
``["maxpool"]``, ``["resolution_enc"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffres import functional as Fn


@dataclass(frozen=True)
class FrontendOutput:
    """What every front-end returns; the trainer reads ``features`` and ``aux_loss`` only."""

    features: Tensor  # [B, C, T', F]
    aux_loss: Tensor  # scalar, added to the task loss with the recipe's weight
    score: Tensor | None = None  # [B, T, 1] importance scores (DiffRes)
    activeness: Tensor | None = None  # scalar monitor (DiffRes)
    lengths: Tensor | None = None  # [B] valid output frames, when input lengths were given

    def __getitem__(self, key: str) -> Tensor | None:
        """Dict-style access, as the reference returns a dict (``out["feature"]``)."""
        names = {f.name for f in fields(self)} | {"feature", "guide_loss"}
        if key not in names:
            raise KeyError(f"{key!r} is not an output field; fields: {sorted(names)}")
        return getattr(self, key)


@dataclass(frozen=True)
class DiffResOutput(FrontendOutput):
    avgpool: Tensor | None = None  # [B, T', F] mean-aggregated log-mel
    maxpool: Tensor | None = None  # [B, T', F] max-aggregated log-mel
    resolution_enc: Tensor | None = None  # [B, T', F]

    @property
    def feature(self) -> Tensor:
        return self.features

    @property
    def guide_loss(self) -> Tensor:
        return self.aux_loss


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


class _DepthwiseConv(torch.autograd.Function):
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
    :class:`_DepthwiseConv`'s. Same parameters (and state-dict keys) as ``nn.Conv1d(..., groups=C)``."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        return _DepthwiseConv.apply(x, self.weight, self.bias, self.padding[0])


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


class DiffRes(nn.Module):
    """Differentiable temporal resolution: merge unimportant frames, keep important ones.

    Args:
        in_t_dim: frames of the training input (used for the position-encoding table and the
            nominal output size; any T is accepted at forward time).
        in_f_dim: mel bins F.
        dimension_reduction_rate: δ in (0, 1); the output has ``floor(T * (1 - δ))`` frames.
        learn_pos_emb: make the resolution encoding's position table a learnable parameter.
        resolution_encoding: stack the resolution encoding as the third channel (the paper's
            ablation sets it False: 2 channels, mean and max).
        score_network: ``"paper"`` (the reference code's dense convs) or ``"separable"``
            (depthwise-separable convs, the same widths and receptive field, about 1/5 of the FLOPs).
    """

    def __init__(
        self,
        in_t_dim: int,
        in_f_dim: int,
        dimension_reduction_rate: float,
        learn_pos_emb: bool = False,
        resolution_encoding: bool = True,
        score_network: str = "paper",
    ):
        super().__init__()
        self.resolution_encoding = resolution_encoding
        self.out_channels = 3 if resolution_encoding else 2
        self.reduction_rate = Fn.validate_reduction_rate(dimension_reduction_rate)
        if in_f_dim < 1 or in_t_dim < 1:
            raise ValueError(f"in_t_dim and in_f_dim must be >= 1, got in_t_dim={in_t_dim}, in_f_dim={in_f_dim}")
        self.input_seq_length = in_t_dim
        self.input_f_dim = in_f_dim
        self.output_seq_length = Fn.output_frames(in_t_dim, self.reduction_rate)
        self.score_net = ScoreNetwork(in_f_dim, kind=score_network)
        pos = Fn.sinusoidal_encoding(in_t_dim, in_f_dim)
        if learn_pos_emb:
            self.pos_emb = nn.Parameter(pos)
        else:
            self.register_buffer("pos_emb", pos, persistent=False)

    def t_out(self, t_in: int) -> int:
        return Fn.output_frames(t_in, self.reduction_rate)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> DiffResOutput:
        """``x`` ``[B, T, F]`` log-mel; ``lengths`` optional ``[B]`` valid frames (padding at the end)."""
        _check_input(x, self.input_f_dim)
        batch, t_in, _ = x.shape
        t_out = self.t_out(t_in)
        mask = Fn.length_mask(lengths, batch, t_in, x.device)
        target = t_out if lengths is None else _per_clip_frames(lengths, self.reduction_rate)

        # Scores are kept away from 0 so every clip has >= T' frames to share the budget.
        # float32 from here on, also under autocast: the budget T' must be met to ~1e-6, not to fp16's 1e-3.
        raw = self.score_net(x, None if lengths is None else mask).float().clamp_min(1e-6)  # [B, T]
        score = Fn.normalize_scores(raw, target, mask)

        # Everything after the scores is per clip: done in groups of clips (see clip_groups) and joined.
        pos = position_table(self.pos_emb, t_in, x)[None] if self.resolution_encoding else None  # [1, T, F]
        parts = [self._aggregate(x[g], score[g], mask[g], t_out, pos) for g in clip_groups(x)]
        features = torch.cat([f for f, _ in parts]) if len(parts) > 1 else parts[0][0]  # [B, C, T', F]
        empty = torch.cat([e for _, e in parts]) if len(parts) > 1 else parts[0][1]  # [B, T]
        out_lengths = None
        if lengths is not None:
            out_lengths = torch.as_tensor(target, device=x.device)
            features = features * Fn.length_mask(out_lengths, batch, t_out, x.device)[:, None, :, None]

        return DiffResOutput(
            features=features,
            aux_loss=Fn.guide_loss(score, empty, self.reduction_rate),
            score=score[..., None],
            activeness=Fn.activeness(score.detach(), mask & ~empty),
            lengths=out_lengths,
            avgpool=features[:, 0],
            maxpool=features[:, 1],
            resolution_enc=features[:, 2] if self.resolution_encoding else None,
        )

    def _aggregate(self, x: Tensor, score: Tensor, mask: Tensor, t_out: int, pos: Tensor | None):
        """Merged channels ``[b, C, T', F]`` and empty-frame mask ``[b, T]`` of a group of clips."""
        warp = Fn.warp_weights(score, t_out)
        channels = list(Fn.merge_frames(x, warp, self.reduction_rate))  # mean, max: [b, T', F] each
        if pos is not None:
            channels.append(Fn.aggregate_linear(pos, warp))
        return torch.stack(channels, dim=1), Fn.empty_frame_mask(x, mask)


# glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with fresh pages and
# returns them on free, so each large temporary pays its page faults again: on a 2-core VM that costs
# more than the arithmetic of the merge (see ``bench_frontends --compare`` for the effect on DiffRes).
GROUP_BYTES = 16 * 2**20


def clip_groups(x: Tensor, max_bytes: int | None = None) -> list[slice]:
    """Slices of the batch with at most ``max_bytes`` (default ``GROUP_BYTES``) of ``x`` each, at
    least one clip per group.

    The merge's temporaries are the size of the group's input, so they stay below the allocator's
    mmap threshold and are reused from the heap. Results are identical to one pass over the batch.
    """
    max_bytes = GROUP_BYTES if max_bytes is None else max_bytes
    batch = x.shape[0]
    per_clip = max(1, x[0].numel() * x.element_size())
    size = max(1, min(batch, max_bytes // per_clip))
    return [slice(i, i + size) for i in range(0, batch, size)]


def position_table(table: Tensor, t_in: int, like: Tensor) -> Tensor:
    """The first ``t_in`` rows of a sinusoidal position table ``[T, F]``; a fixed table is extended on
    the fly for longer inputs, a learnable one cannot be."""
    if t_in <= table.shape[0]:
        return table[:t_in].to(like.dtype)
    if isinstance(table, nn.Parameter):
        raise ValueError(f"learnable position table has {table.shape[0]} frames; input has T={t_in}")
    return Fn.sinusoidal_encoding(t_in, table.shape[1], like.device, like.dtype)


def _per_clip_frames(lengths: Tensor, reduction_rate: float) -> Tensor:
    """``floor(L_b * (1 - δ))`` per clip, with the same float tolerance as ``output_frames``."""
    frames = torch.floor(lengths.double() * (1.0 - reduction_rate) + 1e-9).long()
    if (frames < 1).any():
        bad = lengths[frames < 1].tolist()
        raise ValueError(f"clips with lengths {bad} give T' < 1 at δ={reduction_rate}")
    return frames


def _check_input(x: Tensor, in_f_dim: int) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected a log-mel spectrogram [B, T, F], got shape {tuple(x.shape)}")
    if x.shape[-1] != in_f_dim:
        raise ValueError(f"expected F={in_f_dim} mel bins (last dim), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected at least one clip of at least one frame, got shape {tuple(x.shape)}")
    # Finite row sums mean finite values: one matrix-vector product reads x once (isfinite(x) costs
    # 10x more on long inputs). Only a non-finite sum, which overflow can also give, needs the
    # element-wise check. (A matrix-vector product, not .sum(), so FLOP counts skip the validation.)
    row_sums = x.reshape(-1, x.shape[-1]) @ x.new_ones(x.shape[-1])
    if not torch.isfinite(row_sums).all() and not torch.isfinite(x).all():
        raise ValueError("input spectrogram contains NaN or Inf values")
