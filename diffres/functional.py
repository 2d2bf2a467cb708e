"""The DiffRes maths as pure tensor functions: no state, no nn.Module, torch only.

Conventions: spectrograms are ``[B, T, F]`` (time first); importance scores are ``[B, T]``;
``lengths`` is an optional ``LongTensor[B]`` of valid input frames per clip (padding at the end).

Frame warping (paper Sec. 3): with ``c = cumsum(s)``, input frame ``i`` occupies the interval
``(c[i-1], c[i]]`` of the output time axis. Output frame ``j`` is the overlap-weighted sum of the
input frames over ``(j, j+1]``. Because every score is at most 1, a frame's interval has length
at most 1, so it touches at most two output frames: the whole warp is two ``scatter_add`` calls,
O(B*T*F) time and memory, instead of a dense ``[B, T, T']`` matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "output_frames",
    "validate_reduction_rate",
    "normalize_scores",
    "warp_weights",
    "aggregate_mean",
    "aggregate_max",
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


def warp_weights(score: Tensor, t_out: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each input frame's two output indices and overlap weights.

    ``score`` ``[B, T]`` with entries in [0, 1]. Frame ``i`` covers ``(a, b] = (c[i-1], c[i]]``;
    it puts ``w0 = min(b, j0 + 1) - a`` on output ``j0 = floor(a)`` and ``w1 = max(0, b - j0 - 1)``
    on ``j0 + 1``. Indices past ``t_out - 1`` (only from rounding at the very end) are clamped.
    Returns ``(j0, w0, j1, w1)``, each ``[B, T]``.
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
    return j0, w0, j1, w1


def aggregate_linear(values: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor], t_out: int) -> Tensor:
    """Overlap-weighted sum: ``values`` ``[B, T, F]`` -> ``[B, T', F]``, ``y_j = sum_i w_ij v_i``."""
    j0, w0, j1, w1 = weights
    batch, _, n_feat = values.shape
    out = values.new_zeros(batch, t_out, n_feat)
    out = out.scatter_add(1, j0[..., None].expand_as(values), w0[..., None] * values)
    return out.scatter_add(1, j1[..., None].expand_as(values), w1[..., None] * values)


def _output_shift(logmel: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor], t_out: int) -> Tensor:
    """Per output frame and bin, the max log value among the input frames merged into it: ``[B, T', F]``.

    Subtracting it before ``exp`` and adding it back after ``log`` makes the linear-domain
    aggregation exact for any range of log values (no overflow, no underflow of the largest term).
    """
    j0, w0, j1, w1 = weights
    x = logmel.detach()
    shift = x.new_full((x.shape[0], t_out, x.shape[2]), float("-inf"))
    for j, w in ((j0, w0), (j1, w1)):
        contrib = x.masked_fill((w <= 0)[..., None], float("-inf"))
        shift = shift.scatter_reduce(1, j[..., None].expand_as(x), contrib, "amax", include_self=True)
    return torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))


def _shifted_terms(logmel: Tensor, weights, shift: Tensor):
    """``(index, w * exp(x - shift[index]))`` for each of the two output frames of every input frame."""
    for j, w in (weights[0:2], weights[2:4]):
        idx = j[..., None].expand_as(logmel)
        # Frames that do not reach this output (w = 0) may lie far above its shift: mask them
        # out before exp so that 0 * inf never happens.
        diff = (logmel - shift.gather(1, idx)).masked_fill((w <= 0)[..., None], float("-inf"))
        yield idx, w[..., None] * diff.exp()


def aggregate_mean(logmel: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor], t_out: int) -> Tensor:
    """Average of merged frames in the linear (exp) domain, returned in log: ``[B, T', F]``.

    ``y_j = log(sum_i w_ij exp(x_i))``, exact for any range of log values (see ``_output_shift``).
    """
    shift = _output_shift(logmel, weights, t_out)
    out = torch.zeros_like(shift)
    for idx, term in _shifted_terms(logmel, weights, shift):
        out = out.scatter_add(1, idx, term)
    return out.clamp_min(torch.finfo(logmel.dtype).tiny).log() + shift


def aggregate_max(
    logmel: Tensor, weights: tuple[Tensor, Tensor, Tensor, Tensor], t_out: int, reduction_rate: float
) -> Tensor:
    """Max aggregation as in the reference: ``log(max_i w_ij exp(x_i) / (1 - δ))`` -> ``[B, T', F]``."""
    shift = _output_shift(logmel, weights, t_out)
    out = torch.zeros_like(shift)
    for idx, term in _shifted_terms(logmel, weights, shift):
        out = out.scatter_reduce(1, idx, term, "amax", include_self=True)
    return (out / (1.0 - reduction_rate)).clamp_min(torch.finfo(logmel.dtype).tiny).log() + shift


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
