"""Training-time augmentation: SpecAugment masks on log-mel and waveform mixup (PSLA recipe).

Both are vectorised over the batch and draw from an explicit `torch.Generator`, so a run is a
pure function of its seed.
"""

from __future__ import annotations

import torch


def _band_mask(batch: int, size: int, max_width: int, generator: torch.Generator | None,
               device: torch.device) -> torch.Tensor:
    """One random band per item: width ~ U{0..max_width}, start ~ U{0..size-width} -> bool [B, size]."""
    width = torch.randint(0, max_width + 1, (batch, 1), generator=generator)
    start = (torch.rand((batch, 1), generator=generator) * (size - width + 1)).floor().long()
    pos = torch.arange(size).unsqueeze(0)
    return ((pos >= start) & (pos < start + width)).to(device)


def spec_augment(logmel: torch.Tensor, freq_mask: int, time_mask: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One frequency and one time mask per clip; masked cells get the clip's minimum value.

    logmel [B, T, F] -> [B, T, F]. The minimum (not 0) is used because DiffRes's guide loss treats
    frames whose every bin sits at the clip's floor as empty (a normalised log-mel's 0 is average
    energy).
    """
    if logmel.dim() != 3:
        raise ValueError(f"spec_augment expects logmel [B, T, F], got shape {tuple(logmel.shape)}")
    if freq_mask < 0 or time_mask < 0:
        raise ValueError(f"mask widths must be >= 0, got freq_mask={freq_mask}, time_mask={time_mask}")
    b, t, f = logmel.shape
    tmask = _band_mask(b, t, min(time_mask, t), generator, logmel.device)  # [B, T]
    fmask = _band_mask(b, f, min(freq_mask, f), generator, logmel.device)  # [B, F]
    mask = tmask[:, :, None] | fmask[:, None, :]  # [B, T, F]
    clip_min = logmel.amin(dim=(1, 2), keepdim=True)
    return torch.where(mask, clip_min.expand_as(logmel), logmel)


def mixup(waveform: torch.Tensor, target: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each clip with a random partner of the batch: lambda ~ Beta(alpha, alpha) per clip.

    waveform [B, N], target [B, C] float (one-hot or multi-hot) -> (mixed [B, N], mixed [B, C]).
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    if waveform.dim() != 2 or target.dim() != 2 or waveform.shape[0] != target.shape[0]:
        raise ValueError(f"mixup expects waveform [B, N] and target [B, C], got {tuple(waveform.shape)} "
                         f"and {tuple(target.shape)}")
    b = waveform.shape[0]
    # Beta(a, a) from two Gammas, drawn with the generator (torch.distributions cannot take one)
    g1 = torch._standard_gamma(torch.full((b,), float(alpha)), generator=generator)
    g2 = torch._standard_gamma(torch.full((b,), float(alpha)), generator=generator)
    lam = (g1 / (g1 + g2)).to(waveform.device)
    partner = torch.randperm(b, generator=generator).to(waveform.device)
    mixed_wave = lam[:, None] * waveform + (1 - lam[:, None]) * waveform[partner]
    lam_t = lam.to(target.dtype)[:, None]
    return mixed_wave, lam_t * target + (1 - lam_t) * target[partner]
