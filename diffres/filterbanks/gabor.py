"""Gabor filters initialised as approximations of mel filters (LEAF, section 3.1), as pure functions.

Shared by ``tdfbanks`` and ``efficientleaf``; ``leaf`` uses speechbrain's ``GaborConv1d``, whose
initialisation this reproduces (a test pins the two to the same numbers). A Gabor filter is a complex
sinusoid at centre frequency ``ω`` (radians per sample, in [0, π]) under a Gaussian envelope of width
``σ`` (samples); its parameters come from a mel filterbank of ``n_fft`` bins: the centre is the peak
bin of the square-root mel filter, ``σ = sqrt(2 ln 2) n_fft / (π · FWHM)`` with FWHM its half-maximum
width in bins.

Subnormal taps: a narrow filter's envelope underflows at the kernel's edges into subnormal floats
(below ``torch.finfo(float32).tiny``), and a CPU convolution over subnormal weights runs several times
slower (LEAF fwd+bwd: 436 ms per clip before the flush, 97 ms after, results/bench_filterbanks.csv and its
history). ``flush_subnormal`` sets them to 0, which changes no output by more than float32 rounding (each
term is below 1e-38).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MIN_FREQ_HZ, MAX_FREQ_HZ = 60.0, 7800.0  # LEAF's mel initialisation range at 16 kHz
GABOR_N_FFT = 512  # the FFT size of LEAF's mel-to-Gabor initialisation


def mel_gabor_params(n_filters: int, sample_rate: int, min_freq: float = MIN_FREQ_HZ,
                     max_freq: float = MAX_FREQ_HZ, n_fft: int = GABOR_N_FFT) -> tuple[Tensor, Tensor]:
    """Centre frequencies ``ω`` [n_filters] (rad/sample) and envelope widths ``σ`` [n_filters] (samples)."""
    import torchaudio.functional as AF

    mel = AF.melscale_fbanks(n_freqs=n_fft // 2 + 1, f_min=min_freq, f_max=max_freq, n_mels=n_filters,
                             sample_rate=sample_rate).T.sqrt()  # [n_filters, n_fft // 2 + 1]
    peaks = mel.amax(dim=1, keepdim=True)
    fwhm = (mel >= peaks / 2).float().sum(dim=1)
    centres = mel.argmax(dim=1).float() * 2 * math.pi / n_fft
    sigmas = math.sqrt(2 * math.log(2)) * n_fft / (math.pi * fwhm)
    return centres, sigmas


def sigma_bounds(kernel_size: int) -> tuple[float, float]:
    """LEAF's clamp of ``σ``: a filter's FWHM between 4 samples and the kernel length."""
    z = math.sqrt(2 * math.log(2)) / math.pi
    return 4 * z, kernel_size * z


def flush_subnormal(x: Tensor) -> Tensor:
    """``x`` with its subnormal entries set to 0 (complex: each part); differentiable elsewhere."""
    if x.is_complex():
        return torch.view_as_complex(flush_subnormal(torch.view_as_real(x)))
    return torch.where(x.abs() < torch.finfo(x.dtype).tiny, torch.zeros_like(x), x)


def gabor_kernels(centres: Tensor, sigmas: Tensor, kernel_size: int) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts [n, kernel_size] of ``exp(iωt) exp(-t²/2σ²) / (sqrt(2π) σ)``, t centred;
    subnormal taps flushed to 0."""
    t = torch.arange(-(kernel_size // 2), (kernel_size + 1) // 2, dtype=centres.dtype, device=centres.device)
    envelope = torch.exp(-0.5 * (t[None] / sigmas[:, None]) ** 2) / (math.sqrt(2 * math.pi) * sigmas[:, None])
    phase = centres[:, None] * t[None]
    return flush_subnormal(envelope * torch.cos(phase)), flush_subnormal(envelope * torch.sin(phase))


def odd(n: int) -> int:
    """``n`` rounded up to an odd number (centred kernels): LEAF's 25 ms at 16 kHz is 401 taps."""
    return n + 1 - n % 2
