"""The DiffRes maths as pure tensor functions: no state, no nn.Module, torch only.

Owns the input checks, frame counts, score normalisation, the warp, the aggregations (their
autograd kernels live in :mod:`diffres.merge`), the position encoding, the guide loss and the
activeness monitor, and the batch grouping of the merge.

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
from typing import NamedTuple

import torch
from torch import Tensor

from diffres.merge import MergeFrames, WarpSum

__all__ = [
    "GROUP_BYTES",
    "check_input",
    "output_frames",
    "per_clip_frames",
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
    "position_table",
    "clip_groups",
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


def per_clip_frames(lengths: Tensor, reduction_rate: float) -> Tensor:
    """``floor(L_b * (1 - δ))`` per clip ``[B]``, with the same float tolerance as ``output_frames``."""
    frames = torch.floor(lengths.double() * (1.0 - reduction_rate) + 1e-9).long()
    if (frames < 1).any():
        bad = lengths[frames < 1].tolist()
        raise ValueError(f"clips with lengths {bad} give T' < 1 at δ={reduction_rate}")
    return frames


def check_input(x: Tensor, in_f_dim: int) -> None:
    """Raise a ``ValueError`` naming the shape unless ``x`` is a finite, non-empty ``[B, T, in_f_dim]``."""
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



def aggregate_linear(values: Tensor, warp: Warp) -> Tensor:
    """Overlap-weighted sum ``y_j = sum_i w_ij v_i``: ``values`` ``[B, T, F]`` (or ``[1, T, F]``,
    shared by the batch) -> ``[B, T', F]``."""
    return WarpSum.apply(values, warp.w0, warp.w1, warp.row0, warp.row1, warp.t_out)


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
    return MergeFrames.apply(logmel, warp.w0, warp.w1, warp.row0, warp.row1, warp.t_out,
                              1.0 / (1.0 - reduction_rate))


def sinusoidal_encoding(t_in: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """Transformer-style sinusoidal encoding of the frame index: ``[T, dim]`` in [-1, 1]."""
    position = torch.arange(t_in, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / dim))
    enc = torch.zeros(t_in, dim, device=device, dtype=torch.float64)
    enc[:, 0::2] = torch.sin(position * freq)
    enc[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return enc.to(dtype)


def position_table(table: Tensor, t_in: int, like: Tensor) -> Tensor:
    """The first ``t_in`` rows of a sinusoidal position table ``[T, F]`` in ``like``'s dtype; a fixed
    table is extended on the fly for longer inputs, a learnable one (an ``nn.Parameter``) cannot be."""
    if t_in <= table.shape[0]:
        return table[:t_in].to(like.dtype)
    if isinstance(table, torch.nn.Parameter):
        raise ValueError(f"learnable position table has {table.shape[0]} frames; input has T={t_in}")
    return sinusoidal_encoding(t_in, table.shape[1], like.device, like.dtype)


def empty_frame_mask(logmel: Tensor, mask: Tensor | None = None, atol: float = 1e-6) -> Tensor:
    """``[B, T]``: frames with no content — every mel bin at the clip's floor value.

    The floor is the clip's minimum over all its valid cells; SpecAugment time masks
    (:func:`tasks.augment.spec_augment`) write exactly that value into every bin of a masked frame,
    and digital silence sits at it too. A frame of real audio has at least one bin above the floor,
    so a clip without masks or silence has no empty frame and its guide loss is 0. (The reference
    code flags the frames at the batch's minimum energy, and a per-clip minimum-energy rule would
    flag every clip's quietest frame: the guide loss then never goes away without masks.)
    Frames outside ``mask`` (padding) are never empty: they are not part of the clip.
    """
    x = logmel.detach()
    valid = None if mask is None else mask[:, :, None]  # [B, T, 1]
    floor = (x if valid is None else x.masked_fill(~valid, float("inf"))).amin(dim=(1, 2))  # [B]
    empty = x.amax(dim=-1) <= floor[:, None] + atol  # [B, T]: no bin above the floor
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
