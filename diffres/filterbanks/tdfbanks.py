"""``tdfbanks``: Time-Domain filterbanks (Zeghidour, Usunier, Kokkinos, Schatz, Synnaeve, Dupoux,
"Learning filterbanks from raw speech for phone recognition", ICASSP 2018), written from the paper.

A complex convolution (``n_bands`` complex filters = 2·n_bands real channels, 401 taps) initialised to
Gabor approximations of the mel filters; the squared modulus; a per-band lowpass (401 taps, stride =
hop) initialised to the squared Hann window that the mel spectrogram's energy applies (normalised to
sum 1, a constant offset after the log); ``log(|x| + 1e-5)``; then, optionally (on by default), a
per-utterance mean/variance normalisation of each band over time. Every tap is a free parameter: unlike
LEAF's, the filters are not constrained to stay Gabor.

Deviation: ``|x|`` inside the log, so that the log stays defined once training gives the lowpass
negative taps (the paper's lowpass is initialised positive and its sign is not stated).
No maintained implementation exists (the reference code is non-commercial and batch-size 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffres.filterbanks.gabor import MAX_FREQ_HZ, MIN_FREQ_HZ, gabor_kernels, mel_gabor_params, odd
from diffres.filterbanks.registry import Filterbank, register_filterbank

LOG_EPS = 1e-5


@register_filterbank("tdfbanks", learnable=True, channels=80,
                     normalisation="per-utterance mean/variance per band (normalise=True), no per-task statistics",
                     source="Zeghidour et al., ICASSP 2018 (written from the paper)",
                     description="learnable complex conv (mel-Gabor init), squared modulus, squared-Hann lowpass, log")
class TDFilterbanks(Filterbank):
    """waveform [B, N] -> log energies [B, 1 + N // hop, n_bands]."""

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
                 min_freq: float = MIN_FREQ_HZ, max_freq: float = MAX_FREQ_HZ, normalise: bool = True):
        super().__init__(n_bands, sample_rate, win_ms, hop_ms)
        self.kernel_size = k = odd(self.win_length)
        self.complex_conv = nn.Conv1d(1, 2 * n_bands, k, padding=k // 2, bias=False)
        self.lowpass = nn.Conv1d(n_bands, n_bands, k, stride=self.hop_length, groups=n_bands, bias=False)
        with torch.no_grad():
            real, imag = gabor_kernels(*mel_gabor_params(n_bands, sample_rate, min_freq, max_freq), k)
            self.complex_conv.weight.copy_(torch.stack([real, imag], dim=1).reshape(2 * n_bands, 1, k))
            hann2 = torch.hann_window(k, periodic=False) ** 2
            self.lowpass.weight.copy_((hann2 / hann2.sum()).expand(n_bands, 1, k))
        self.norm = nn.InstanceNorm1d(n_bands, eps=1e-5) if normalise else nn.Identity()

    def transform(self, x: Tensor) -> Tensor:
        h = self.complex_conv(x[:, None])  # [B, 2F, N]: real and imaginary part of filter i at 2i, 2i+1
        energy = h[:, 0::2] ** 2 + h[:, 1::2] ** 2  # [B, F, N]
        low = self.lowpass(self.pad_for_frames(energy, self.kernel_size))  # [B, F, T]
        return self.norm(torch.log(low.abs() + LOG_EPS)).transpose(1, 2)
