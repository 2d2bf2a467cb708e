"""The warp's two scatter kernels as autograd Functions with hand-written backwards.

:func:`diffres.functional.aggregate_linear` and :func:`diffres.functional.merge_frames` are the
entry points; this module owns only their kernels. Each input frame ``i`` sends weight ``w0[i]``
to flat output row ``row0[i]`` and ``w1[i]`` to ``row1[i]`` (see ``functional.Warp``); only about
T' of the T frames have ``w1 > 0`` (they straddle an output boundary), so the second slot is
computed on those frames alone.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

__all__ = ["MergeFrames", "WarpSum"]


def _index_amax(out: Tensor, index: Tensor, source: Tensor) -> Tensor:
    """``out.index_reduce_(0, index, source, "amax")``. index_reduce is marked beta, but its amax is what the max
    aggregation needs: its beta warning is silenced here only, not for the importing program."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce\\(\\) is in beta")
        return out.index_reduce_(0, index, source, "amax")


def _rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])  # [B, T, F] -> [B*T, F]


def _straddlers(w1: Tensor) -> Tensor:
    """Flat indices of the frames that reach a second output frame (``w1 > 0``): about T' of the T."""
    return torch.nonzero(w1.reshape(-1) > 0).squeeze(1)


class WarpSum(torch.autograd.Function):
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


class MergeFrames(torch.autograd.Function):
    """Mean and max aggregation in the log domain, with a hand-written backward (see ``functional.merge_frames``).

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
            _index_amax(_index_amax(shift, r0, xr), r1_k, xr[k])
            # Output frames no input reaches (past a padded clip's T') keep a finite shift.
            shift = torch.where(torch.isfinite(shift), shift, 0.0)
            term0 = torch.sub(xr, shift.index_select(0, r0)).exp_()
            term1_k = (xr[k] - shift.index_select(0, r1_k)).exp_()
        term0.mul_(w0.reshape(-1, 1))  # w_i0 * exp(x_i - shift)
        term1_k.mul_(w1.reshape(-1, 1)[k])
        total = xr.new_zeros(batch * t_out, n_feat).index_add_(0, r0, term0).index_add_(0, r1_k, term1_k)
        peak = xr.new_zeros(batch * t_out, n_feat)
        _index_amax(_index_amax(peak, r0, term0), r1_k, term1_k)
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
