"""The filterbank registry and what every filterbank shares: input checks and the frame grid.

A filterbank maps a waveform ``[B, N]`` to a time-frequency map ``[B, T, F]`` on the same frame grid
as the log-mel of ``tasks.features`` (a centred STFT): frame ``t`` is centred on sample
``t * hop_length`` and a clip of ``N`` samples has ``T = 1 + N // hop_length`` frames, so any
reducer front-end and backbone sees the same shapes whichever filterbank fed it.

    fb = create_filterbank("leaf", n_bands=40)          # sample_rate=16000, win_ms=25, hop_ms=10
    fb(waveform)                                        # [B, N] -> [B, 1 + N // 160, 40]
    filterbank_info("leaf").learnable                   # True

Each entry carries a :class:`FilterbankInfo` (learnable or not, complex/real channels of its
first convolution, stride, window, what normalises its output, its source) without building it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffres.registry import Registry

__all__ = ["Filterbank", "FilterbankInfo", "check_waveform", "create_filterbank", "filterbank_info",
           "list_filterbanks", "register_filterbank"]


@dataclass(frozen=True)
class FilterbankInfo:
    """What the benchmark and the report need to know about a registered filterbank."""

    name: str
    learnable: bool  # trained with the model (features computed per batch) or fixed (cached)
    channels: int  # output channels of its first (time-domain or STFT) stage, e.g. 80 = 40 real + 40 imag
    stride_ms: float  # default frame hop
    window_ms: float  # default analysis window / filter length
    normalisation: str  # what normalises its output (the per-task log-mel statistics apply to `mel` only)
    source: str  # paper and the implementation it follows
    description: str = ""


FILTERBANKS: Registry[FilterbankInfo] = Registry("filterbank", "filterbanks")


def register_filterbank(name: str, *, learnable: bool, channels: int, normalisation: str, source: str,
                        stride_ms: float = 10.0, window_ms: float = 25.0, description: str = ""):
    """Decorator adding a filterbank factory ``(n_bands, sample_rate, win_ms, hop_ms, **kw) -> Filterbank``
    with its :class:`FilterbankInfo`; a duplicate name is rejected."""
    if name in FILTERBANKS:
        raise ValueError(f"filterbank {name!r} is already registered")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"filterbank {name!r}: channels must be an int >= 1, got {channels!r}")
    info = FilterbankInfo(name, bool(learnable), channels, float(stride_ms), float(window_ms), normalisation,
                          source, description)
    return FILTERBANKS.register(name, info)


def filterbank_info(name: str) -> FilterbankInfo:
    """The metadata of filterbank ``name``; unknown names raise a ``KeyError`` listing the registered ones."""
    return FILTERBANKS.info(name)


def list_filterbanks(learnable: bool | None = None) -> list[str]:
    """Registered names, sorted; only the learnable (or only the fixed) ones when ``learnable`` is given."""
    return FILTERBANKS.names(None if learnable is None else lambda info: info.learnable == learnable)


def create_filterbank(name: str, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0,
                      hop_ms: float = 10.0, **kwargs) -> nn.Module:
    """Build filterbank ``name`` with ``n_bands`` output bands; unknown names raise a ``KeyError``."""
    return FILTERBANKS.create(name, n_bands=n_bands, sample_rate=sample_rate, win_ms=win_ms, hop_ms=hop_ms, **kwargs)


def _whole_samples(field: str, ms: float, sample_rate: int) -> int:
    """``ms`` as a whole number (>= 1) of samples, with the wording of ``tasks.features.not_whole_samples``."""
    samples = ms * sample_rate / 1000
    if not math.isfinite(samples) or abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
        raise ValueError(f"{field}={ms!r}: expected a whole number (>= 1) of samples at {sample_rate} Hz, "
                         f"got {samples:g}")
    return int(round(samples))


def check_waveform(x: Tensor, min_samples: int, sample_rate: int | None = None, expected_rate: int = 16000) -> None:
    """Raise a ``ValueError`` naming the problem unless ``x`` is a finite float ``[B, N]`` with ``B >= 1`` and
    ``N >= min_samples``, at ``expected_rate`` Hz when the caller says its ``sample_rate``."""
    if sample_rate is not None and int(sample_rate) != expected_rate:
        raise ValueError(f"waveform at sample_rate={sample_rate} Hz; this filterbank expects {expected_rate} Hz "
                         f"(resample first, e.g. tasks.audio.resample)")
    if x.dim() != 2:
        raise ValueError(f"expected a waveform [B, N], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point waveform, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"empty waveform: expected at least one clip of at least one sample, got shape "
                         f"{tuple(x.shape)}")
    if x.shape[1] < min_samples:
        raise ValueError(f"waveform of {x.shape[1]} samples is shorter than one analysis window "
                         f"({min_samples} samples); pad the clip first")
    # One matrix-vector product reads x once (see diffres.functional.check_input), and FLOP counts skip it.
    if not torch.isfinite(x @ x.new_ones(x.shape[1])).all() and not torch.isfinite(x).all():
        raise ValueError("waveform contains NaN or Inf samples")


class Filterbank(nn.Module):
    """Base class: validates settings and input, keeps the output on the log-mel frame grid.

    Subclasses implement ``transform(x) -> [B, T, F]`` with ``T`` about ``1 + N // hop_length``; the base
    crops or edge-pads to exactly that (a filterbank whose frames are centred like the STFT's needs
    neither, see :meth:`pad_for_frames`).
    """

    def __init__(self, n_bands: int, sample_rate: int = 16000, win_ms: float = 25.0, hop_ms: float = 10.0,
                 expected_rate: int | None = 16000):
        super().__init__()
        if isinstance(n_bands, bool) or not isinstance(n_bands, int) or n_bands < 1:
            raise ValueError(f"n_bands={n_bands!r}: expected an integer >= 1")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
            raise ValueError(f"sample_rate={sample_rate!r}: expected a positive integer (Hz)")
        if expected_rate is not None and sample_rate != expected_rate:
            raise ValueError(f"sample_rate={sample_rate}: expected {expected_rate} Hz (the rate this "
                             f"filterbank's initialisation is defined for; resample the task's audio)")
        self.n_bands, self.sample_rate = n_bands, sample_rate
        self.win_length = _whole_samples("win_ms", win_ms, sample_rate)
        self.hop_length = _whole_samples("hop_ms", hop_ms, sample_rate)
        if self.hop_length > self.win_length:
            raise ValueError(f"hop_ms={hop_ms!r}: expected <= win_ms={win_ms!r} (frames would skip samples)")

    def t_out(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` samples: ``1 + n_samples // hop_length`` (the log-mel's)."""
        return 1 + n_samples // self.hop_length

    def pad_for_frames(self, x: Tensor, kernel: int, value: float = 0.0) -> Tensor:
        """Pad ``[..., N]`` so a valid ``kernel``-tap conv at stride ``hop_length`` gives ``t_out(N)`` frames,
        frame ``t`` centred on sample ``t * hop_length`` (``kernel // 2`` left, ``kernel // 2 + 1`` right for
        an odd kernel), as the centred STFT of the mel path."""
        left = kernel // 2
        right = kernel - 1 - left + 1
        return F.pad(x, (left, right), value=value)

    def transform(self, x: Tensor) -> Tensor:  # [B, N] -> [B, T, F]
        raise NotImplementedError

    def forward(self, waveform: Tensor, sample_rate: int | None = None) -> Tensor:
        check_waveform(waveform, self.win_length, sample_rate, self.sample_rate)
        out = self.transform(waveform)
        t = self.t_out(waveform.shape[1])
        if out.shape[1] > t:
            out = out[:, :t]
        elif out.shape[1] < t:
            out = F.pad(out.transpose(1, 2), (0, t - out.shape[1]), mode="replicate").transpose(1, 2)
        return out.contiguous()  # as the cached log-mel: reducers may view it (DiffRes's merge does)
