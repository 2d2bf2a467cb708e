"""``efficientleaf``: EfficientLEAF (Schlüter & Gutenbrunner, "EfficientLEAF: a faster learnable audio
frontend of questionable use", EUSIPCO 2022), written from the paper.

LEAF's Gabor filterbank is a stride-1 convolution of 401 taps, most of whose output the pooling
throws away. EfficientLEAF splits the filters (sorted by centre frequency, as the mel initialisation
leaves them) into ``num_groups`` groups and gives each group

- a kernel just long enough for its widest envelope: ``conv_win_factor · max σ`` taps (odd);
- a convolution stride as large as its highest centre frequency allows, ``stride_factor · π / max ω``
  samples, rounded down to a divisor of the hop, so every group's Gaussian pooling (its own width per
  band, LEAF's window resampled to the group's rate, stride ``hop / conv stride``) ends on the same
  10 ms grid;

then compresses with LogTBN: ``log1p(10^a · x)`` with a learnable ``a`` per band (init 5), the median over
time subtracted per clip and band, then a temporal batch norm (BatchNorm1d over batch and time per band).
Kernel lengths and strides are recomputed from the current (detached) parameters at each forward.

Deviations: the paper's LogTBN appends the median-subtracted map as a second channel; here it replaces
the map in place, because the filterbank axis hands reducers one map ``[B, T, F]``. The pooling window
of a group with conv stride ``s`` is scaled by ``s`` so all groups carry LEAF's energy scale (TBN would
equalise them anyway). Defaults (8 groups, window factor 6, stride factor 16) are our reading of the
paper's optimised setting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffres.filterbanks.gabor import (
    MAX_FREQ_HZ,
    MIN_FREQ_HZ,
    flush_subnormal,
    gabor_kernels,
    mel_gabor_params,
    odd,
    sigma_bounds,
)
from diffres.filterbanks.registry import Filterbank, register_filterbank

POOL_INIT = 0.4  # LEAF's Gaussian pooling width (fraction of the half window)


@register_filterbank("efficientleaf", learnable=True, channels=80,
                     normalisation="LogTBN: log1p, median subtraction, temporal batch norm; no per-task statistics",
                     source="Schlüter & Gutenbrunner, EUSIPCO 2022 (written from the paper)",
                     description="grouped strided Gabor filterbank, Gaussian pooling, LogTBN")
class EfficientLeaf(Filterbank):
    """waveform [B, N] -> [B, 1 + N // hop, n_bands]."""

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
                 num_groups: int = 8, conv_win_factor: float = 6.0, stride_factor: float = 16.0,
                 min_freq: float = MIN_FREQ_HZ, max_freq: float = MAX_FREQ_HZ, log1p_init: float = 5.0):
        super().__init__(n_bands, sample_rate, win_ms, hop_ms)
        if not (isinstance(num_groups, int) and 1 <= num_groups <= n_bands):
            raise ValueError(f"num_groups={num_groups!r}: expected an integer in [1, n_bands={n_bands}]")
        self.pool_size = odd(self.win_length)
        self.num_groups, self.conv_win_factor, self.stride_factor = num_groups, conv_win_factor, stride_factor
        centres, sigmas = mel_gabor_params(n_bands, sample_rate, min_freq, max_freq)
        self.centres = nn.Parameter(centres)
        self.sigmas = nn.Parameter(sigmas)
        self.pool_widths = nn.Parameter(torch.full((n_bands,), POOL_INIT))
        self.log1p_a = nn.Parameter(torch.full((n_bands,), float(log1p_init)))
        self.tbn = nn.BatchNorm1d(n_bands)
        self.strides = [d for d in range(1, self.hop_length + 1) if self.hop_length % d == 0]
        self.splits = [g * n_bands // num_groups for g in range(num_groups + 1)]

    def group_plan(self, centres: Tensor, sigmas: Tensor) -> list[tuple[int, int, int, int]]:
        """(first band, end band, conv stride, kernel taps) per group, from the current parameters."""
        plan = []
        for a, b in zip(self.splits[:-1], self.splits[1:]):
            allowed = max(1.0, self.stride_factor * math.pi / max(float(centres[a:b].max()), 1e-6))
            stride = max(s for s in self.strides if s <= allowed)
            plan.append((a, b, stride, odd(max(1, int(float(sigmas[a:b].max()) * self.conv_win_factor)))))
        return plan

    def transform(self, x: Tensor) -> Tensor:
        lo, hi = sigma_bounds(self.pool_size)
        centres = self.centres.clamp(0.0, math.pi)
        sigmas = self.sigmas.clamp(lo, hi)
        widths = self.pool_widths.clamp(2.0 / self.pool_size, 0.5)
        x = x[:, None]  # [B, 1, N]
        bands = []
        for a, b, stride, taps in self.group_plan(centres.detach(), sigmas.detach()):
            real, imag = gabor_kernels(centres[a:b], sigmas[a:b], taps)
            h = F.conv1d(F.pad(x, (taps // 2, taps // 2)), torch.cat([real, imag])[:, None], stride=stride)
            energy = h[:, : b - a] ** 2 + h[:, b - a :] ** 2  # [B, n, ceil(N / stride)]
            # LEAF's Gaussian window over the pool_size samples around a frame centre, at this group's rate
            window = odd(max(1, round(self.pool_size / stride)))
            offset = torch.arange(-(window // 2), window // 2 + 1, device=x.device, dtype=x.dtype) * stride
            half = (self.pool_size - 1) / 2
            gauss = torch.exp(-0.5 * (offset[None] / (widths[a:b, None] * half)) ** 2)
            kernel = stride * flush_subnormal(gauss)  # [n, window]
            pooled = F.conv1d(F.pad(energy, (window // 2, window // 2 + 1)), kernel[:, None],
                              stride=self.hop_length // stride, groups=b - a)
            bands.append(pooled)
        t = min(p.shape[-1] for p in bands)
        energy = torch.cat([p[..., :t] for p in bands], dim=1)  # [B, F, T]
        y = torch.log1p(10 ** self.log1p_a[:, None] * energy)
        y = y - y.median(dim=-1, keepdim=True).values
        return self.tbn(y).transpose(1, 2)
