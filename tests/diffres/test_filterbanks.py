"""The filterbank registry: every entry maps [B, N] to [B, T, F] on the log-mel's frame grid, learns
through every parameter, fails clearly on bad input; LEAF and TD-filterbanks start near the log-mel."""

from __future__ import annotations

import math

import pytest
import torch

from diffres import create_frontend
from diffres.filterbanks import (
    check_waveform,
    create_filterbank,
    filterbank_info,
    list_filterbanks,
    register_filterbank,
)
from diffres.filterbanks.gabor import mel_gabor_params

SR = 16000
ALL = list_filterbanks()
LEARNABLE = list_filterbanks(learnable=True)


def speechlike(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    """Harmonic voiced sound (f0 120-240 Hz, moving) in 3 Hz on/off syllables, amplitude ~0.1, light noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    clips = []
    for i in range(batch):
        vibrato = 40 * torch.sin(2 * math.pi * (1 + torch.rand((), generator=g)) * t)
        f0 = 120 + 80 * torch.rand((), generator=g) + vibrato
        phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 30))
        syllables = (torch.sin(2 * math.pi * 3 * t + i) > 0).float()
        clips.append(0.1 * voiced * syllables + 0.003 * torch.randn(n, generator=g))
    return torch.stack(clips)


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def test_registry_lists_the_five_with_metadata():
    assert ALL == ["efficientleaf", "leaf", "mel", "sincnet", "tdfbanks"]
    assert LEARNABLE == ["efficientleaf", "leaf", "sincnet", "tdfbanks"]
    assert not filterbank_info("mel").learnable
    assert filterbank_info("leaf").channels == 80 and filterbank_info("leaf").stride_ms == 10.0
    assert all(filterbank_info(n).source and filterbank_info(n).normalisation for n in ALL)
    with pytest.raises(KeyError, match="unknown filterbank 'leaff'; known filterbanks: efficientleaf, leaf"):
        create_filterbank("leaff", n_bands=40)
    with pytest.raises(ValueError, match="'leaf' is already registered"):
        register_filterbank("leaf", learnable=True, channels=1, normalisation="", source="")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n_samples", [400, 4000, 16000, 16123])
def test_shape_and_frames_match_the_mel_grid(name, n_samples):
    fb = create_filterbank(name, n_bands=40)
    out = fb(speechlike(2, n_samples))
    expected_t = 1 + n_samples // 160  # a centred STFT at a 10 ms hop: the cached log-mel's T (tests/tasks)
    assert out.shape == (2, expected_t, 40) and fb.t_out(n_samples) == expected_t
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("reducer", ["spec", "avgpool", "changehop", "diffres"])
def test_every_filterbank_feeds_every_kind_of_reducer(name, reducer):
    fb = create_filterbank(name, n_bands=16).eval()
    maps = fb(speechlike(3, 3200))  # [3, 21, 16]
    assert maps.is_contiguous()
    fe = create_frontend(reducer, in_t_dim=maps.shape[1], in_f_dim=16, reduction_rate=0.0 if reducer == "spec" else 0.5)
    out = fe(maps).features
    assert out.shape == (3, fe.out_channels, fe.t_out(21), 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", LEARNABLE)
def test_gradients_reach_every_learnable_parameter(name):
    fb = create_filterbank(name, n_bands=16).train()
    out = fb(speechlike(2, 4000))
    (out * torch.rand(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()  # a generic loss
    params = dict(fb.named_parameters())
    assert params, f"{name} has no parameters"
    missing = [k for k, p in params.items() if p.grad is None or not torch.isfinite(p.grad).all()
               or float(p.grad.abs().sum()) == 0.0]
    assert not missing, f"{name}: no gradient for {missing}"


@pytest.mark.parametrize("name", ["leaf", "tdfbanks", "efficientleaf"])
def test_gabor_filterbanks_start_near_the_log_mel(name):
    x = speechlike(4, 16000)
    fb = create_filterbank(name, n_bands=40).eval()
    with torch.no_grad():
        out = fb(x)
    # non-degenerate: varies over time and over bands (speechbrain's Leaf class gives std ~0.005 here)
    assert out.std(dim=1).mean() > 0.1 and out.std(dim=2).mean() > 0.1
    with torch.no_grad():
        logmel = create_filterbank("mel", n_bands=40)(x)  # the cached log-mel (tests/tasks/test_tasks_features.py)
    assert corr(out, logmel) > 0.6


def test_gabor_init_is_leafs():
    from diffres.filterbanks.leaf import speechbrain_nnet

    conv = speechbrain_nnet().CNN.GaborConv1d(80, kernel_size=401, stride=1, in_channels=1, sample_rate=SR,
                                              min_freq=60.0, max_freq=7800.0)
    centres, sigmas = mel_gabor_params(40, SR)
    assert torch.allclose(conv.kernel[:, 0], centres) and torch.allclose(conv.kernel[:, 1], sigmas)
    assert bool((centres[1:] > centres[:-1]).all())  # sorted: efficientleaf groups by centre frequency


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name):
    x = speechlike(2, 4000)
    torch.manual_seed(0)
    a = create_filterbank(name, n_bands=24).eval()
    torch.manual_seed(1)
    b = create_filterbank(name, n_bands=24).eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and torch.equal(a(x), a(x))


@pytest.mark.parametrize("name", ALL)
def test_bad_input_gives_the_same_clear_errors(name):
    fb = create_filterbank(name, n_bands=40)
    good = speechlike(1, 1600)
    with pytest.raises(ValueError, match=r"waveform at sample_rate=8000 Hz; this filterbank expects 16000 Hz"):
        fb(good, sample_rate=8000)
    with pytest.raises(ValueError, match=r"empty waveform: expected at least one clip of at least one sample"):
        fb(torch.zeros(1, 0))
    with pytest.raises(ValueError, match=r"empty waveform"):
        fb(torch.zeros(0, 1600))
    with pytest.raises(ValueError, match=r"expected a waveform \[B, N\], got shape \(1, 1, 1600\)"):
        fb(good[None])
    with pytest.raises(ValueError, match="shorter than one analysis window"):
        fb(good[:, :100])
    bad = good.clone()
    bad[0, 7] = float("nan")
    with pytest.raises(ValueError, match="waveform contains NaN or Inf samples"):
        fb(bad)
    with pytest.raises(ValueError, match=r"hop_ms=10.03: expected a whole number \(>= 1\) of samples at 16000 Hz"):
        create_filterbank(name, n_bands=40, hop_ms=10.03)


@pytest.mark.parametrize("name", LEARNABLE)
def test_learnable_ones_refuse_another_sample_rate(name):
    with pytest.raises(ValueError, match=r"sample_rate=44100: expected 16000 Hz"):
        create_filterbank(name, n_bands=40, sample_rate=44100)


def test_check_waveform_accepts_a_good_clip_and_names_the_dtype():
    check_waveform(torch.zeros(2, 400), 400)
    with pytest.raises(ValueError, match="floating-point waveform, got dtype torch.int64"):
        check_waveform(torch.zeros(2, 400, dtype=torch.long), 400)


def test_efficientleaf_groups_land_on_one_grid_with_growing_strides():
    fb = create_filterbank("efficientleaf", n_bands=40)
    plan = fb.group_plan(fb.centres.detach(), fb.sigmas.detach())
    assert len(plan) == 8 and all(160 % stride == 0 for _, _, stride, _ in plan)
    strides = [s for _, _, s, _ in plan]
    assert strides == sorted(strides, reverse=True) and strides[0] > strides[-1]  # low bands: larger strides


def test_speechbrain_leaves_no_lazy_placeholder_that_breaks_a_walk_over_sys_modules():
    """hypothesis (and any tool) reads `__file__` of every module in sys.modules; speechbrain's unloaded
    lazy placeholders would import optional integrations (k2) there and raise."""
    import sys

    from diffres.filterbanks.leaf import speechbrain_nnet

    speechbrain_nnet()
    for module in list(sys.modules.values()):
        getattr(module, "__file__", None)


@pytest.mark.parametrize("name", ["leaf", "tdfbanks", "efficientleaf"])
def test_no_subnormal_filter_taps_reach_a_convolution(name, monkeypatch):
    # a CPU convolution over subnormal weights runs several times slower (results/bench_filterbanks.csv)
    import torch.nn.functional as F

    seen = []
    conv1d = F.conv1d
    monkeypatch.setattr(F, "conv1d", lambda x, w, *a, **k: seen.append(w.detach()) or conv1d(x, w, *a, **k))
    fb = create_filterbank(name, n_bands=40)
    with torch.no_grad():
        fb(speechlike(1, 4000))
        for module in fb.modules():
            if isinstance(module, torch.nn.Conv1d):
                seen.append(module.weight.detach())
    assert seen
    tiny = torch.finfo(torch.float32).tiny
    for w in seen:
        assert not bool(((w != 0) & (w.abs() < tiny)).any())


def test_leaf_flushing_changes_no_output():
    from diffres.filterbanks.leaf import speechbrain_nnet

    x = speechlike(2, 16000)
    fb = create_filterbank("leaf", n_bands=40).eval()
    with torch.no_grad():
        flushed = fb(x)
        plain_filters = speechbrain_nnet().CNN.GaborConv1d._gabor_filters(fb.gabor, fb.gabor.kernel)
        parts = torch.view_as_real(plain_filters)
        assert bool(((parts != 0) & (parts.abs() < torch.finfo(torch.float32).tiny)).any())  # what is flushed
        fb.gabor.__class__ = speechbrain_nnet().CNN.GaborConv1d
        fb.pooling.__class__ = speechbrain_nnet().pooling.GaussianLowpassPooling
        plain = fb(x)
    assert torch.allclose(flushed, plain, rtol=0, atol=1e-6 * float(plain.abs().max()))
