from __future__ import annotations

import pytest
import torch

from tasks.augment import mixup, spec_augment


def test_spec_augment_masks_with_the_clip_minimum():
    x = torch.randn(4, 50, 16)
    out = spec_augment(x, freq_mask=6, time_mask=10, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    changed = out != x
    clip_min = x.amin(dim=(1, 2))
    for b in range(4):
        assert torch.all(out[b][changed[b]] == clip_min[b])
        rows = changed[b].all(dim=1).sum()  # fully masked frames (time mask)
        cols = changed[b].all(dim=0).sum()  # fully masked bins (frequency mask)
        assert rows <= 10 and cols <= 6


def test_spec_augment_is_deterministic_and_zero_width_is_identity():
    x = torch.randn(3, 40, 8)
    a = spec_augment(x, 4, 8, torch.Generator().manual_seed(1))
    b = spec_augment(x, 4, 8, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(spec_augment(x, 0, 0, torch.Generator().manual_seed(1)), x)
    with pytest.raises(ValueError, match=r"logmel \[B, T, F\]"):
        spec_augment(x[0], 4, 8)


def test_mixup_mixes_waveforms_and_targets_with_one_lambda():
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(8, 100)
    target = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    mixed, mixed_target = mixup(wave, target, alpha=10.0, generator=g)
    assert mixed.shape == wave.shape and mixed_target.shape == target.shape
    assert torch.allclose(mixed_target.sum(dim=1), torch.ones(8))
    assert (mixed_target >= 0).all() and (mixed_target <= 1).all()
    again = mixup(wave, target, 10.0, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], mixed_target)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        mixup(wave, target, 0.0)
