"""The slow, exact reference of DiffRes's merge: the dense O(T*T') form, written the obvious way.

``diffres`` merges frames with two scatters per input frame (:mod:`diffres.functional`); this module
writes the same maths as a dense ``[B, T, T']`` overlap matrix, batched matmuls and a
``[B, T, T', F]`` product for the max, differentiated by autograd. The tests check the fast path
against it (values and gradients), and ``bench_frontends`` times it as the dense baseline. Torch
only (plus ``diffres`` for the score network and the score normalisation, which it does not
replace). Memory grows as B*T*T'*F: use it on small inputs, or to measure that cost. It lives in the
library, not in the tests, so `tests/diffres` runs with torch and `diffres` alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffres import functional as Fn
from diffres.diffres import DiffRes

__all__ = ["dense_diffres", "dense_merge", "dense_weights"]


def dense_weights(score: Tensor, t_out: int) -> Tensor:
    """``W[b, i, j] = |(c[i-1], c[i]] ∩ (j, j+1]|`` for every i, j, with ``c = cumsum(score)``.

    ``score`` ``[B, T]`` -> ``[B, T, T']``.
    """
    end = score.cumsum(1)
    start = end - score
    j = torch.arange(t_out, dtype=score.dtype, device=score.device)
    lo = torch.maximum(start[..., None], j)
    hi = torch.minimum(end[..., None], j + 1)
    return (hi - lo).clamp_min(0)


def dense_merge(x: Tensor, w: Tensor, reduction_rate: float) -> tuple[Tensor, Tensor]:
    """Mean ``log(sum_i w_ij e^x_i)`` and max ``log(max_i w_ij e^x_i / (1 - δ))``, each ``[B, T', F]``.

    ``x`` ``[B, T, F]`` log-mel, ``w`` ``[B, T, T']`` from :func:`dense_weights`. Output frames no
    input reaches are ``-inf``.
    """
    x_hi = x.detach().amax(1, keepdim=True)  # [B, 1, F]
    log_range = float((x_hi - x.detach().amin(1, keepdim=True)).max())
    if log_range <= -math.log(torch.finfo(x.dtype).tiny) / 2:
        # Every e^(x - max) is a normal float, so the plain form is exact: one batched matmul.
        lin = (x - x_hi).exp()
        mean = torch.bmm(w.transpose(1, 2), lin).log() + x_hi
        peak = ((w[..., None] * lin[:, :, None]).amax(1) / (1 - reduction_rate)).log() + x_hi
        return mean, peak
    # A wider range would underflow there: work in the log domain throughout.
    log_terms = w.log()[..., None] + x[:, :, None]  # [B, T, T', F]; -inf where a frame misses an output
    return log_terms.logsumexp(1), log_terms.amax(1) - math.log(1 - reduction_rate)


def dense_diffres(model: DiffRes, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """What ``model(x, lengths)`` computes, densely: features ``[B, C, T', F]`` and scores ``[B, T]``.

    The score network and the normalisation are the model's own; everything after them (the warp,
    the aggregations, the resolution encoding, zeroing frames past a padded clip's T') is dense.
    Scores are in ``promote_types(x.dtype, float32)``, as in the model.
    """
    batch, t_in, _ = x.shape
    t_out = model.t_out(t_in)
    mask = Fn.length_mask(lengths, batch, t_in, x.device)
    target = t_out if lengths is None else Fn.per_clip_frames(lengths, model.reduction_rate)
    dtype = torch.promote_types(x.dtype, torch.float32)
    raw = model.score_net(x, None if lengths is None else mask).to(dtype).clamp_min(1e-6)
    score = Fn.normalize_scores(raw, target, mask)
    w = dense_weights(score, t_out)
    channels = list(dense_merge(x, w, model.reduction_rate))
    if model.resolution_encoding:
        channels.append(torch.matmul(w.transpose(1, 2), Fn.position_table(model.pos_emb, t_in, x)))
    features = torch.stack(channels, 1)
    if lengths is not None:
        valid = Fn.length_mask(torch.as_tensor(target, device=x.device), batch, t_out, x.device)
        features = torch.where(valid[:, None, :, None], features, 0.0)
    return features, score
