from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tasks_helpers import small_embedded

from tasks import FeatureConfig, LogMel, get_task
from tasks import controls as C

CONTROLS = {"toy-ctrl-sweeps": 2.0, "toy-ctrl-texture": 1.0}  # name -> clip seconds


def _bytes(columns: dict) -> list[bytes]:
    return [a["bytes"] for a in columns["audio"]]


@pytest.mark.parametrize("name", CONTROLS)
def test_same_seed_same_bytes_other_seed_other_bytes(name):
    a = small_embedded(name, 5, 5, 5, seed=0).embedded.generate_split("val")
    b = small_embedded(name, 5, 5, 5, seed=0).embedded.generate_split("val")
    c = small_embedded(name, 5, 5, 5, seed=1).embedded.generate_split("val")
    assert a["label"] == b["label"] and _bytes(a) == _bytes(b)
    assert _bytes(a) != _bytes(c)


@pytest.mark.parametrize("name", CONTROLS)
def test_spec_metadata_and_default_sizes(name):
    spec = get_task(name)
    assert spec.is_embedded and spec.num_classes == 5 and spec.chance_level == pytest.approx(0.2)
    assert (spec.label_kind, spec.metric, spec.folds) == ("single", "accuracy", None)
    assert spec.sample_rate == 16000 and spec.clip_seconds == CONTROLS[name]
    sizes = dict(spec.embedded.sizes)
    assert sizes == {"train": 600, "val": 200, "test": 2000}
    assert all(n % spec.num_classes == 0 for n in sizes.values())  # exactly balanced
    assert f"v{C.GENERATOR_VERSION}" in spec.source and "control" in spec.source


@pytest.mark.parametrize("name", CONTROLS)
def test_every_split_is_class_balanced(name):
    gen = small_embedded(name, 10, 5, 5).embedded
    for split, n in gen.sizes:
        assert np.bincount(gen.generate_split(split)["label"], minlength=5).tolist() == [n // 5] * 5


def test_identity_names_the_control_generator_version(monkeypatch):
    gen = get_task("toy-ctrl-sweeps").embedded
    before = gen.identity()
    monkeypatch.setattr(C, "GENERATOR_VERSION", C.GENERATOR_VERSION + 1)
    assert gen.identity() != before and gen.identity().startswith("seed0-")
    assert dataclasses.replace(gen, seed=3).identity().startswith("seed3-")


def test_a_down_sweep_clip_is_an_up_sweep_clip_played_backwards():
    """Reversing a clip turns up-sweeps into down-sweeps and only reverses the order of its log-mel
    frames (symmetric window, a frame grid that maps onto itself): no frame, and no order-free
    summary of frames (one frame, a bin's mean or max), tells the two directions apart."""
    assert np.array_equal(C.sweep(np.random.default_rng(1), False, 16000),
                          C.sweep(np.random.default_rng(1), True, 16000)[::-1])
    n = 100 * 160 + 1  # the centre of frame k maps onto the centre of frame 100 - k
    clip = C.render_sweeps(np.random.default_rng(0), np.array([0.31, 0.62]), np.array([True, True]), 16000, n)
    mel = LogMel(FeatureConfig(n_mels=32, hop_ms=10.0))
    forwards, backwards = mel(torch.from_numpy(clip)), mel(torch.from_numpy(clip[::-1].copy()))
    torch.testing.assert_close(backwards, forwards.flip(0), atol=1e-3, rtol=1e-4)


# ----------------------------------------------------------- the positive control's design property
def _reduce(logmel: torch.Tensor, kind: str, factor: int) -> torch.Tensor:
    """[B, T, F] -> [B, T // factor, F] as the uniform front-ends do it (adaptive pooling, centre frames)."""
    t_in, t_out = logmel.shape[1], logmel.shape[1] // factor
    if kind == "full":
        return logmel
    if kind == "every-kth":
        return logmel[:, ((torch.arange(t_out) + 0.5) * (t_in / t_out)).long()]
    pool = F.adaptive_avg_pool1d if kind == "avg" else F.adaptive_max_pool1d
    return pool(logmel.transpose(1, 2), t_out).transpose(1, 2)


def _slope_signs(logmel: torch.Tensor, onset_frames: np.ndarray, t_in: int) -> np.ndarray:
    """Per sweep: sign of the time-frequency covariance of its energy above the clip's median (the
    sweep's direction), in the representation's own frames; 0 when no frame order is left."""
    fac = t_in / logmel.shape[1]
    power = logmel.exp().numpy()
    excess = np.clip(power - 3 * np.median(power, axis=1, keepdims=True), 0, None)  # [B, T', F]
    signs = np.zeros(onset_frames.shape)
    for b, i in np.ndindex(*onset_frames.shape):
        lo, hi = int((onset_frames[b, i] - 2) // fac), int((onset_frames[b, i] + 4) // fac) + 1
        w = excess[b, max(lo, 0) : hi, 7:30]  # the mel bins of 0.5-6 kHz
        t, f = np.meshgrid(np.arange(w.shape[0]), np.arange(w.shape[1]), indexing="ij")
        m = w / (w.sum() + 1e-12)
        cov = (m * t * f).sum() - (m * t).sum() * (m * f).sum()
        signs[b, i] = 0.0 if abs(cov) < 1e-9 else np.sign(cov)
    return signs


def test_the_label_is_read_at_10ms_and_lost_after_10x_uniform_reduction():
    """δ = 0.9: counting the sweeps whose time-frequency slope is positive reads the label at full
    resolution; after 10x average / max pooling or keeping every 10th frame the same count mostly fails
    (one kept frame in 10 leaves each direction a coin toss; pooling leaks it only when a bin boundary
    cuts a sweep, and the label needs all four)."""
    rng = np.random.default_rng(0)
    n = int(C.SWEEPS_CLIP_SECONDS * 16000)
    labels = np.arange(100) % 5
    layouts = [C.sweep_layout(rng, int(k), C.SWEEPS_CLIP_SECONDS) for k in labels]
    clips = np.stack([C.render_sweeps(rng, onsets, ups, 16000, n) for onsets, ups in layouts])
    onset_frames = np.stack([onsets for onsets, _ in layouts]) * 100  # 10 ms hop
    ups = np.stack([ups for _, ups in layouts])
    assert (ups.sum(1) == labels).all()
    logmel = LogMel(FeatureConfig(n_mels=32, hop_ms=10.0))(torch.from_numpy(clips))  # [100, 201, 32]
    per_sweep, per_clip = {}, {}
    for kind in ("full", "avg", "max", "every-kth"):
        signs = _slope_signs(_reduce(logmel, kind, 10), onset_frames, logmel.shape[1])
        per_sweep[kind] = float(np.mean(np.where(signs == 0, 0.5, (signs > 0) == ups)))
        count = (signs > 0).sum(1) + rng.binomial((signs == 0).sum(1), 0.5)  # a tie is a coin toss
        per_clip[kind] = float(np.mean(count == labels))
    assert per_sweep["full"] > 0.95 and per_clip["full"] > 0.9, (per_sweep, per_clip)
    assert per_sweep["every-kth"] < 0.6, per_sweep
    assert all(per_clip[k] < 0.4 for k in ("avg", "max", "every-kth")), per_clip


def test_texture_label_is_read_as_well_after_2x_uniform_reduction():
    """Negative control, δ = 0.5: the slope of the clip's time-averaged log-mel (its spectral tilt)
    classifies clips as well after 2x average / max pooling or keeping every other frame as at full
    resolution, and well above chance but below 1 (neighbouring classes overlap)."""
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 5
    clips = np.stack([C.texture_clip(rng, int(k), 16000, 16000) for k in labels])
    logmel = LogMel(FeatureConfig(n_mels=32, hop_ms=10.0))(torch.from_numpy(clips))  # [300, 101, 32]
    bands = np.arange(4, 32)  # above ~150 Hz
    train, test = slice(0, 200), slice(200, 300)
    accuracy = {}
    for kind in ("full", "avg", "max", "every-kth"):
        profile = _reduce(logmel, kind, 2).mean(1).numpy()[:, bands]  # [300, 28]: time-averaged log-mel
        slope = np.polyfit(bands, profile.T, 1)[0]  # [300]
        means = np.array([slope[train][labels[train] == k].mean() for k in range(5)])
        assert np.all(np.diff(means) > 0), means  # the classes' tilts, in order
        predicted = np.abs(slope[test, None] - means[None]).argmin(1)
        accuracy[kind] = float(np.mean(predicted == labels[test]))
    assert 0.7 < accuracy["full"] < 0.98, accuracy
    assert all(abs(accuracy[k] - accuracy["full"]) <= 0.05 for k in ("avg", "max", "every-kth")), accuracy


def test_between_the_sweeps_every_frame_is_empty_so_the_guide_loss_acts():
    """The silence between the sweeps sits exactly at the log-mel floor: DiffRes's empty frames. Each sweep
    lifts only the 2-4 frames it reaches above it."""
    from diffres.functional import empty_frame_mask

    rng = np.random.default_rng(0)
    n = int(C.SWEEPS_CLIP_SECONDS * 16000)
    clips = np.stack([C.sweeps_clip(rng, k, 16000, n) for k in range(5)])
    empty = empty_frame_mask(LogMel(FeatureConfig(n_mels=32, hop_ms=10.0))(torch.from_numpy(clips)))
    sounding = (~empty).sum(1)
    assert ((sounding >= 2 * C.N_SWEEPS) & (sounding <= 4 * C.N_SWEEPS)).all(), sounding


def test_the_control_tasks_say_which_control_they_are():
    assert get_task("toy-ctrl-sweeps").control == "positive"
    assert get_task("toy-ctrl-texture").control == "negative"
    assert get_task("toy-rhythm").control is None
