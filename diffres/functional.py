"""The DiffRes maths as pure tensor functions: no state, no nn.Module, torch only.

Conventions: spectrograms are ``[B, T, F]`` (time first); importance scores are ``[B, T]``;
``lengths`` is an optional ``LongTensor[B]`` of valid input frames per clip (padding at the end).

Frame warping: with ``c = cumsum(s)``, input frame ``i`` occupies the interval
``(c[i-1], c[i]]`` of the output time axis. Output frame ``j`` is the overlap-weighted sum of the
input frames over ``(j, j+1]``. Because every score is at most 1, a frame's interval has length
at most 1, so it touches at most two output frames: the whole warp is two ``index_add`` calls,
O(B*T*F) time and memory, instead of a dense ``[B, T, T']`` matrix.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

# index_reduce is marked beta, but its amax and backward are what the max aggregation needs.
warnings.filterwarnings("ignore", message="index_reduce\\(\\) is in beta")

__all__ = [
    "output_frames",
    "validate_reduction_rate",
    "normalize_scores",
    "Warp",
    "warp_weights",
    "merge_frames",
    "aggregate_linear",
    "sinusoidal_encoding",
    "empty_frame_mask",
    "guide_loss",
    "activeness",
    "length_mask",
]


def validate_reduction_rate(reduction_rate: float) -> float:
    """Return ``reduction_rate`` as a float if it lies in the open interval (0, 1)."""
    if isinstance(reduction_rate, bool) or not isinstance(reduction_rate, (int, float)):
        raise TypeError(f"reduction_rate must be a number in (0, 1), got {reduction_rate!r}")
    if not (0.0 < float(reduction_rate) < 1.0) or math.isnan(reduction_rate):
        raise ValueError(
            f"reduction_rate (dimension reduction rate δ) must lie in (0, 1), got {reduction_rate!r}"
        )
    return float(reduction_rate)


def output_frames(t_in: int, reduction_rate: float) -> int:
    """``T' = floor(T * (1 - δ))``: the number of frames DiffRes hands to the classifier.

    A tolerance of 1e-9 keeps float error from losing a frame (``10 * (1 - 0.9)`` is
    ``0.9999999999999998`` in floating point). Raises if ``T' < 1``.
    """
    if t_in < 1:
        raise ValueError(f"input must have at least 1 frame, got T={t_in}")
    t_out = math.floor(t_in * (1.0 - reduction_rate) + 1e-9)
    if t_out < 1:
        raise ValueError(
            f"T' = floor(T*(1-δ)) = floor({t_in}*(1-{reduction_rate})) = {t_out} < 1 output frame: "
            "use a smaller reduction_rate or longer input"
        )
    return t_out


def length_mask(lengths: Tensor | None, batch: int, t_in: int, device: torch.device) -> Tensor:
    """``[B, T]`` boolean mask of valid frames (all True when ``lengths`` is None)."""
    if lengths is None:
        return torch.ones(batch, t_in, dtype=torch.bool, device=device)
    return torch.arange(t_in, device=device)[None, :] < lengths.to(device)[:, None]


def normalize_scores(score: Tensor, t_out: Tensor | int, mask: Tensor | None = None) -> Tensor:
    """Rescale scores ``[B, T]`` so each row sums to ``t_out`` with every score in [0, 1].

    The paper rescales ``s * t_out / sum(s)`` and, when that pushes scores above 1, divides by the
    max and raises the remaining scores to fill the deficit. The exact, loop-free form of that is
    water-filling: ``s' = min(1, λ s)`` with the unique ``λ`` such that ``sum(s') = t_out``.
    Saturated frames are kept whole; the rest share the remaining budget in proportion to their
    score, so the order of scores is preserved. Found by sorting: if the top ``k`` scores saturate,
    ``λ = (t_out - k) / (sum of the other scores)``; the right ``k`` is the smallest for which the
    (k+1)-th score is not pushed past 1.

    ``t_out`` is an int or a ``[B]`` tensor (per-clip target, for padded batches); ``mask`` ``[B, T]``
    zeroes padded frames. Needs at least ``t_out`` frames with a positive score per row.
    """
    if mask is not None:
        score = score * mask
    batch, t_in = score.shape
    target = torch.as_tensor(t_out, dtype=score.dtype, device=score.device).expand(batch)
    sorted_s, _ = torch.sort(score, dim=1, descending=True)
    # tail[k] = sum of sorted scores from position k on (k = 0..T-1)
    tail = sorted_s.flip(1).cumsum(1).flip(1)
    k = torch.arange(t_in, device=score.device, dtype=score.dtype)
    lam = (target[:, None] - k) / tail.clamp_min(torch.finfo(score.dtype).tiny)  # [B, T]
    # Valid k: lam_k * s_(k) <= 1 (the first unsaturated frame stays <= 1) and k <= target.
    ok = (lam * sorted_s <= 1 + 1e-6) & (k <= target[:, None]) & (sorted_s > 0)
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)  # smallest valid k
    lam_star = lam.gather(1, first)  # [B, 1]
    return torch.minimum(score * lam_star, torch.ones_like(score))


class Warp(NamedTuple):
    """Where each input frame goes: two output rows and overlap weights per frame, all ``[B, T]``.

    Rows are flat indices into a ``[B * T', F]`` view of the output (``b * T' + j``), so merging is
    one ``index_add`` / ``index_reduce`` over rows, the fastest scatter torch has on CPU and CUDA.
    """

    row0: Tensor
    w0: Tensor
    row1: Tensor
    w1: Tensor
    t_out: int


def warp_weights(score: Tensor, t_out: int) -> Warp:
    """Each input frame's two output frames and overlap weights.

    ``score`` ``[B, T]`` with entries in [0, 1]. Frame ``i`` covers ``(a, b] = (c[i-1], c[i]]``;
    it puts ``w0 = min(b, j0 + 1) - a`` on output ``j0 = floor(a)`` and ``w1 = max(0, b - j0 - 1)``
    on ``j0 + 1``. Indices past ``t_out - 1`` (only from rounding at the very end) are clamped.
    """
    # float64 for the running sum: in float32 it drifts by ~1e-4 after thousands of frames,
    # which would move frame boundaries. Only [B, T] numbers, so it costs nothing.
    s64 = score.double()
    end = s64.cumsum(1)
    start = end - s64
    j0 = start.detach().floor()
    w0 = (torch.minimum(end, j0 + 1) - start).to(score.dtype)
    w1 = (end - (j0 + 1)).clamp_min(0).to(score.dtype)
    j0 = j0.long().clamp(0, t_out - 1)
    j1 = (j0 + 1).clamp(max=t_out - 1)
    base = torch.arange(score.shape[0], device=score.device)[:, None] * t_out
    return Warp(base + j0, w0, base + j1, w1, t_out)


def _rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])  # [B, T, F] -> [B*T, F]


def _straddlers(w1: Tensor) -> Tensor:
    """Flat indices of the frames that reach a second output frame (``w1 > 0``): about T' of the T."""
    return torch.nonzero(w1.reshape(-1) > 0).squeeze(1)


class _WarpSum(torch.autograd.Function):
    """``y = sum_i w_ij v_i`` with a hand-written backward.

    Autograd of the plain form keeps several ``[B*T, F]`` products alive and gathers the output
    gradient twice; here the second slot is computed on the straddling frames only, a table shared
    by the batch (``[1, T, F]``) is never copied B times, and the backward is one gather.
    """

    @staticmethod
    def forward(ctx, values, w0, w1, row0, row1, t_out):  # values [B, T, F] or [1, T, F]
        batch, t_in = w0.shape
        n_feat = values.shape[-1]
        k = _straddlers(w1)
        term = torch.mul(values, w0[..., None])  # [B, T, F]
        out = values.new_zeros(batch * t_out, n_feat).index_add_(0, row0.reshape(-1), _rows(term))
        del term
        out.index_add_(0, row1.reshape(-1)[k], _frames(values, k, t_in) * w1.reshape(-1, 1)[k])
        ctx.save_for_backward(values, w0, w1, row0, row1, k)
        return out.view(batch, t_out, n_feat)

    @staticmethod
    def backward(ctx, grad):
        values, w0, w1, row0, row1, k = ctx.saved_tensors
        batch, t_in = w0.shape
        n_feat = values.shape[-1]
        g = grad.reshape(-1, n_feat)
        g0 = g.index_select(0, row0.reshape(-1)).view(batch, t_in, n_feat)  # dy_{row0(i)}, [B, T, F]
        g1_k = g.index_select(0, row1.reshape(-1)[k])  # dy_{row1(i)} of the straddling frames
        v_k = _frames(values, k, t_in)
        grad_v = grad_w0 = grad_w1 = None
        if ctx.needs_input_grad[0]:
            gv = (g0 * w0[..., None]).reshape(-1, n_feat).index_add_(0, k, g1_k * w1.reshape(-1, 1)[k])
            grad_v = gv.view(batch, t_in, n_feat).sum_to_size(values.shape)
        if ctx.needs_input_grad[1]:
            grad_w0 = g0.mul_(values).sum(-1)
        if ctx.needs_input_grad[2]:
            grad_w1 = w1.new_zeros(w1.numel()).index_put_((k,), torch.einsum("kf,kf->k", g1_k, v_k)).view_as(w1)
        return grad_v, grad_w0, grad_w1, None, None, None


def _frames(values: Tensor, flat: Tensor, t_in: int) -> Tensor:
    """Rows ``flat`` (indices into ``b * T + i``) of ``values`` ``[B, T, F]`` or ``[1, T, F]``."""
    if values.shape[0] == 1 or values.stride(0) == 0:
        return values[0].index_select(0, flat % t_in)
    return values.reshape(-1, values.shape[-1]).index_select(0, flat)


class _MergeFrames(torch.autograd.Function):
    """Mean and max aggregation in the log domain, with a hand-written backward (see merge_frames).

    Each ``[B*T, F]`` buffer costs a fresh allocation (page faults dominate on CPU), so the forward
    makes one: the exponentials, turned in place into the weighted terms and kept for the backward.
    """

    @staticmethod
    def forward(ctx, x, w0, w1, row0, row1, t_out, scale):
        batch, t_in, n_feat = x.shape
        tiny = torch.finfo(x.dtype).tiny
        r0, r1 = row0.reshape(-1), row1.reshape(-1)
        k = _straddlers(w1)
        r1_k = r1[k]
        xr = _rows(x)
        hi = x.amax(1, keepdim=True)  # [B, 1, F]
        if float((hi - x.amin(1, keepdim=True)).max()) <= -math.log(tiny) / 2:
            # One shift per clip and mel bin: every exp stays a normal float, so no term is lost.
            shift = hi.expand(batch, t_out, n_feat).reshape(-1, n_feat)
            term0 = torch.sub(x, hi).exp_().view(-1, n_feat)  # [B*T, F]
            term1_k = term0[k]
        else:
            # Any range: shift each output frame by the largest log value merged into it.
            shift = xr.new_full((batch * t_out, n_feat), float("-inf"))
            shift.index_reduce_(0, r0, xr, "amax").index_reduce_(0, r1_k, xr[k], "amax")
            # Output frames no input reaches (past a padded clip's T') keep a finite shift.
            shift = torch.where(torch.isfinite(shift), shift, 0.0)
            term0 = torch.sub(xr, shift.index_select(0, r0)).exp_()
            term1_k = (xr[k] - shift.index_select(0, r1_k)).exp_()
        term0.mul_(w0.reshape(-1, 1))  # w_i0 * exp(x_i - shift)
        term1_k.mul_(w1.reshape(-1, 1)[k])
        total = xr.new_zeros(batch * t_out, n_feat).index_add_(0, r0, term0).index_add_(0, r1_k, term1_k)
        peak = xr.new_zeros(batch * t_out, n_feat)
        peak.index_reduce_(0, r0, term0, "amax").index_reduce_(0, r1_k, term1_k, "amax")
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(w0, w1, r0, k, r1_k, term0, term1_k, total, peak)
            ctx.scale = scale
        mean = total.clamp_min(tiny).log_().add_(shift)
        peak_log = (peak * scale).clamp_min_(tiny).log_().add_(shift)
        return mean.view(batch, t_out, n_feat), peak_log.view(batch, t_out, n_feat)

    @staticmethod
    def backward(ctx, grad_mean, grad_peak):
        w0, w1, r0, k, r1_k, term0, term1_k, total, peak = ctx.saved_tensors
        batch, t_in = w0.shape
        n_feat = term0.shape[1]
        tiny = torch.finfo(term0.dtype).tiny
        w0f, w1_k = w0.reshape(-1), w1.reshape(-1)[k]
        # d mean_j / d term_i = 1 / total_j (zero where total was clamped to tiny).
        a = torch.where(total >= tiny, grad_mean.reshape(-1, n_feat) / total, 0.0)
        buf = a.index_select(0, r0)  # [B*T, F]
        dot0 = torch.einsum("nf,nf->n", term0, buf)  # sum_f term * a = w * (d loss / d w), mean part
        a1_k = a.index_select(0, r1_k)
        dot1_k = torch.einsum("kf,kf->k", term1_k, a1_k)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = buf.mul_(term0)  # d term / d x = term
            grad_x.index_add_(0, k, a1_k * term1_k)
            buf = None
        # d log(max_j) / d term_i = 1 / term_i at the maximum; tied maxima share it, as autograd's amax.
        hit0 = torch.index_select(peak, 0, r0, out=buf)
        hit0 = torch.eq(term0, hit0, out=hit0)  # 1.0 where frame i holds its output's max, else 0.0
        hit1_k = (term1_k == peak.index_select(0, r1_k)).to(peak.dtype)
        ties = torch.zeros_like(peak).index_add_(0, r0, hit0).index_add_(0, r1_k, hit1_k)
        p = torch.where(peak * ctx.scale >= tiny, grad_peak.reshape(-1, n_feat) / ties, 0.0)
        p0 = p.index_select(0, r0)
        p1_k = p.index_select(0, r1_k).mul_(hit1_k)
        dot0 += torch.einsum("nf,nf->n", hit0, p0)
        dot1_k += p1_k.sum(1)
        if grad_x is not None:
            grad_x.addcmul_(hit0, p0).index_add_(0, k, p1_k)  # d log(term) / d x = 1
            grad_x = grad_x.view(batch, t_in, n_feat)
        # term = w * exp(...): d term / d w = term / w; frames with w = 0 reach no output.
        grad_w0 = torch.where(w0f > 0, dot0 / w0f, 0.0).view_as(w0)
        grad_w1 = w1.new_zeros(w1.numel()).index_put_((k,), dot1_k / w1_k).view_as(w1)
        return grad_x, grad_w0, grad_w1, None, None, None, None


def aggregate_linear(values: Tensor, warp: Warp) -> Tensor:
    """Overlap-weighted sum ``y_j = sum_i w_ij v_i``: ``values`` ``[B, T, F]`` (or ``[1, T, F]``,
    shared by the batch) -> ``[B, T', F]``."""
    return _WarpSum.apply(values, warp.w0, warp.w1, warp.row0, warp.row1, warp.t_out)


def merge_frames(logmel: Tensor, warp: Warp, reduction_rate: float) -> tuple[Tensor, Tensor]:
    """Mean and max aggregation of log-mel frames, each ``[B, T', F]`` in the log domain.

    mean: ``log(sum_i w_ij exp(x_i))`` — the average in the linear domain (weights sum to 1);
    max: ``log(max_i w_ij exp(x_i) / (1 - δ))``, as in the reference code.
    The exponentials are taken relative to a shift that is added back after ``log``: the clip's
    maximum per mel bin when the clip's log range is small enough that no term can underflow
    (half the float's exponent range: 43 nats in float32, far beyond any log-mel), otherwise the
    largest log value merged into each output frame. Either way the result is exact for any range.

    The backward is written by hand (``d mean / d w_i = e_i / total``, ``d max / d w_i = 1 / w_i``
    at the maximum, ties sharing): autograd of the plain form costs twice the time and memory.
    """
    return _MergeFrames.apply(logmel, warp.w0, warp.w1, warp.row0, warp.row1, warp.t_out,
                              1.0 / (1.0 - reduction_rate))


def sinusoidal_encoding(t_in: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """Transformer-style sinusoidal encoding of the frame index: ``[T, dim]`` in [-1, 1]."""
    position = torch.arange(t_in, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / dim))
    enc = torch.zeros(t_in, dim, device=device, dtype=torch.float64)
    enc[:, 0::2] = torch.sin(position * freq)
    enc[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return enc.to(dtype)


def empty_frame_mask(logmel: Tensor, mask: Tensor | None = None, atol: float = 1e-6) -> Tensor:
    """``[B, T]``: frames whose energy is at the clip's minimum (e.g. SpecAugment time masks).

    Energy is ``logsumexp`` over mel bins (the log of the summed linear energy), so the test does
    not depend on whether the input was shifted or normalised.
    """
    energy = torch.logsumexp(logmel.detach(), dim=-1)  # [B, T]
    if mask is not None:
        energy = energy.masked_fill(~mask, float("inf"))
    floor = energy.amin(dim=1, keepdim=True)
    empty = energy <= floor + atol
    return empty if mask is None else empty & mask


def guide_loss(score: Tensor, empty: Tensor, reduction_rate: float) -> Tensor:
    """Mean score of empty frames, per clip, kept only above ``(1 - δ) / 2``; averaged over clips.

    ``score`` ``[B, T]`` (normalised), ``empty`` ``[B, T]`` bool. Returns a scalar (0 when no clip
    qualifies), as in the reference code.
    """
    n_empty = empty.sum(1)
    mean_empty = (score * empty).sum(1) / n_empty.clamp_min(1)
    keep = (n_empty > 0) & (mean_empty > 0.5 * (1.0 - reduction_rate))
    return (mean_empty * keep).sum() / keep.sum().clamp_min(1)


def activeness(score: Tensor, active: Tensor) -> Tensor:
    """Std of the scores of non-empty frames per clip, averaged over clips with >= 2 such frames."""
    n = active.sum(1)
    mean = (score * active).sum(1) / n.clamp_min(1)
    var = (((score - mean[:, None]) ** 2) * active).sum(1) / (n - 1).clamp_min(1)
    keep = n > 1
    return (var.sqrt() * keep).sum() / keep.sum().clamp_min(1)
