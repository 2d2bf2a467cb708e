"""LEAF and SincNet, composed from speechbrain's layers as the LEAF paper ran them.

``leaf`` (Zeghidour et al., "LEAF: a learnable frontend for audio classification", ICLR 2021):
complex Gabor conv (``n_bands`` filters = 2·n_bands real/imaginary channels, 401 taps at 25 ms,
mel initialisation 60-7800 Hz, no bias) -> squared modulus -> Gaussian lowpass pooling (stride = hop,
per-band learnable width, init 0.4, no bias) -> clamp at 1e-5 -> PCEN (learnable: α 0.96, δ 2,
r 1/2, smoothing 0.04 per band). speechbrain's own ``Leaf`` class is not used: it builds its pooling
with a learnable bias starting at 1.0, which the original has not, and its output at initialisation
is then nearly constant (std 0.0035 for an input at amplitude 0.1). The two filter layers flush their
subnormal taps to 0 (``flushing_layers``; the same outputs, ~4x faster on a CPU).

``sincnet`` (Ravanelli & Bengio, SLT 2018, in LEAF's setting): sinc band-pass conv (``n_bands`` filters,
401 taps) -> LeakyReLU(0.2) -> max-pool (401 wide, stride = hop) -> LayerNorm over the bands.

Both pool on the log-mel's frame grid (frame t centred on sample t·hop, see ``Filterbank.pad_for_frames``).
speechbrain is imported when one is built, so ``import diffres`` needs torch only.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from diffres.filterbanks.gabor import MAX_FREQ_HZ, MIN_FREQ_HZ, flush_subnormal, odd
from diffres.filterbanks.registry import Filterbank, register_filterbank

PCEN_FLOOR = 1e-5  # LEAF clamps the pooled energies before PCEN


def speechbrain_nnet() -> Any:
    """``speechbrain.nnet`` with its CNN, normalization and pooling layers imported.

    Importing speechbrain puts lazy placeholder modules into ``sys.modules`` (deprecated redirects and
    optional integrations such as k2). Anything that walks ``sys.modules`` and reads ``__file__``
    (hypothesis does, to collect constants) then triggers their imports, which raise ImportError for
    integrations that are not installed. The placeholders never loaded are dropped from ``sys.modules``;
    importing one of them by name still works, or fails with speechbrain's own message.
    """
    import speechbrain.nnet.CNN
    import speechbrain.nnet.normalization
    import speechbrain.nnet.pooling
    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            del sys.modules[name]
    return speechbrain.nnet


@functools.cache
def flushing_layers() -> tuple[type, type]:
    """speechbrain's ``GaborConv1d`` and ``GaussianLowpassPooling`` with the subnormal taps of their
    filters flushed to 0 (see ``gabor``): the same numbers to float32 rounding, LEAF ~4x faster on a CPU."""
    nnet = speechbrain_nnet()

    class FlushingGaborConv1d(nnet.CNN.GaborConv1d):
        def _gabor_filters(self, kernel):
            return flush_subnormal(super()._gabor_filters(kernel))

    class FlushingGaussianLowpassPooling(nnet.pooling.GaussianLowpassPooling):
        def _get_impulse_responses(self, sigma):
            return flush_subnormal(super()._get_impulse_responses(sigma))

    return FlushingGaborConv1d, FlushingGaussianLowpassPooling


@register_filterbank("leaf", learnable=True, channels=80, normalisation="PCEN (learnable), no per-task statistics",
                     source="Zeghidour et al., ICLR 2021; speechbrain 1.1.2 GaborConv1d, GaussianLowpassPooling, PCEN",
                     description="Gabor conv, squared modulus, Gaussian lowpass pooling, PCEN")
class Leaf(Filterbank):
    """waveform [B, N] -> PCEN energies [B, 1 + N // hop, n_bands]."""

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
                 min_freq: float = MIN_FREQ_HZ, max_freq: float = MAX_FREQ_HZ, learnable_pcen: bool = True):
        super().__init__(n_bands, sample_rate, win_ms, hop_ms)
        nnet = speechbrain_nnet()
        (GaborConv1d, GaussianLowpassPooling), PCEN = flushing_layers(), nnet.normalization.PCEN

        self.kernel_size = odd(self.win_length)
        self.gabor = GaborConv1d(2 * n_bands, kernel_size=self.kernel_size, stride=1, in_channels=1, padding="same",
                                 sample_rate=sample_rate, min_freq=min_freq, max_freq=max_freq, bias=False,
                                 skip_transpose=True)
        self.pooling = GaussianLowpassPooling(n_bands, kernel_size=self.kernel_size, stride=self.hop_length,
                                              padding="valid", bias=False, skip_transpose=True)
        self.pcen = PCEN(n_bands, alpha=0.96, smooth_coef=0.04, delta=2.0, root=2.0, floor=1e-12,
                         trainable=learnable_pcen, per_channel_smooth_coef=True, skip_transpose=True)

    def transform(self, x: Tensor) -> Tensor:
        h = self.gabor(x[:, None])  # [B, 1, N] -> [B, 2F, N]: real and imaginary part of filter i at 2i, 2i+1
        energy = h[:, 0::2] ** 2 + h[:, 1::2] ** 2  # squared modulus [B, F, N]
        pooled = self.pooling(self.pad_for_frames(energy, self.kernel_size))  # [B, F, T]
        return self.pcen(pooled.clamp_min(PCEN_FLOOR)).transpose(1, 2)


@register_filterbank("sincnet", learnable=True, channels=40, normalisation="LayerNorm over bands (learnable)",
                     source="Ravanelli & Bengio, SLT 2018, in the setting of LEAF (ICLR 2021); speechbrain 1.1.2 "
                            "SincConv",
                     description="sinc band-pass conv, LeakyReLU, max-pool, LayerNorm")
class SincNet(Filterbank):
    """waveform [B, N] -> [B, 1 + N // hop, n_bands]."""

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
                 negative_slope: float = 0.2):
        super().__init__(n_bands, sample_rate, win_ms, hop_ms)
        SincConv = speechbrain_nnet().CNN.SincConv

        self.kernel_size = odd(self.win_length)
        self.sinc = SincConv(n_bands, kernel_size=self.kernel_size, in_channels=1, padding="same",
                             sample_rate=sample_rate)
        self.negative_slope = negative_slope
        self.norm = nn.LayerNorm(n_bands)

    def transform(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.sinc(x), self.negative_slope).transpose(1, 2)  # [B, N, F] -> [B, F, N]
        pooled = F.max_pool1d(self.pad_for_frames(h, self.kernel_size, value=float("-inf")), self.kernel_size,
                              stride=self.hop_length)  # [B, F, T]
        return self.norm(pooled.transpose(1, 2))
