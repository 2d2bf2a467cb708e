"""Control tasks: two offline tasks, generated from a seed, whose answer the benchmark knows in advance.

Both are stored and split exactly like the embedded toy tasks (`tasks.embedded`: parquet under
`<cache>/embedded/<task>/<identity>/`, same seed -> same bytes, balanced classes, 600 / 200 / 2000
clips by default, 5 classes so chance = 0.2). They are named `toy-*` so the quick recipe applies.

toy-ctrl-sweeps (positive control: learned resolution must win at δ = 0.9)
--------------------------------------------------------------------------
A 2 s clip (201 frames at a 10 ms hop) of digital silence holds four sweeps at random times, at least
250 ms apart. A sweep is a 8-15 ms tone (peak 0.3-1.0) gliding on a log-frequency scale between
0.5-0.9 kHz and 3.5-6 kHz, under a symmetric (Hann) envelope; it is up or down. The label is the
number of up-sweeps (0-4); which of the four go up is random. A down-sweep is exactly an up-sweep
played backwards, so every class has the same energy and spectrum in distribution: the clip-level
statistics that every reduction keeps say nothing about the label.

Every frame between the sweeps sits exactly at the log-mel's power floor (`tasks.features.LOG_FLOOR`):
it is an *empty* frame (`diffres.functional.empty_frame_mask`), as a SpecAugment time mask makes it, so
DiffRes's guide loss acts, as the paper built it to. (v1 of this task put the sweeps on a noise floor
at δ = 0.75: no frame was empty, and DiffRes found the sweeps in only 3 of 5 seeds.)

Why every uniform reduction loses the label at δ = 0.9 (log-mel: 25 ms Hann window, 10 ms hop):
- One frame says nothing. Reversing a real signal in time leaves the magnitude of its spectrum
  unchanged, and the window is symmetric, so the frame of an up-sweep at offset τ from the frame
  centre equals the frame of the mirrored down-sweep at offset -τ. Onsets are uniform, so the two
  directions give the same distribution of single frames. The direction lives only in how the
  spectrum moves across the 3 consecutive frames that a sweep lifts above the floor (low bands peak
  about one frame before the high bands on an up-sweep).
- changehop keeps one frame in 10 (100 ms apart): at most one kept frame sees each sweep, and that
  frame carries no direction (above).
- avgpool / maxpool over 10 frames, per mel band: when the 3 frames a sweep reaches fall in one bin,
  the bin holds the mean / max of the same multiset of per-band values for the up-sweep and for its
  mirrored down-sweep, so they are identical. Only when a bin boundary cuts those frames (about 2 in
  10 sweeps) does the split between two bins reveal the direction. Max over 100 ms keeps each band's
  peak but not when it happened.
- The label needs all four directions, so the best possible clip accuracy after pooling is about 0.3
  against 1.0 at full resolution (the `tests/tasks/test_tasks_controls.py` property test reads the
  directions with a slope-sign reader: 1.0 at 10 ms; 0.27 / 0.28 / 0.23 after 10x average / max
  pooling / keeping every 10th frame). At δ = 0.75 the same reader gets 0.67 / 0.62 after pooling:
  4-frame bins cut half of the sweeps, and on silence even the faint window tails of a cut sweep show
  its direction. That is why this control runs at δ = 0.9.
- DiffRes keeps it, though not the way one might guess. Its score network reads the full-resolution
  log-mel, so it can see each sweep's direction; the warp it computes (and the resolution encoding
  that describes the warp) hands that to the classifier. In the committed `quick` runs (DiffRes 0.997,
  pooling 0.36, changehop 0.22 at δ = 0.9; reports/quick/diffres_examples_toy-ctrl-sweeps.png) the score
  does not rise on the sweeps: it dips to 0 on each sweep between two small bumps, over a floor of
  1 - δ on the silence. Without the resolution encoding (`diffres-noenc`, also in `quick`) DiffRes still
  reaches 0.97 (0.88-1.00 over 5 seeds), so the warp alone carries most of the label. (A round-2 report
  said 0.48 for `diffres-noenc`: those runs were trained from uncommitted code and are withdrawn,
  docs/reproducibility.md.) The control tests what it should: learned resolution against uniform
  reduction.

toy-ctrl-texture (negative control: no front-end may differ at δ <= 0.5)
------------------------------------------------------------------------
A 1 s clip of stationary Gaussian noise with a spectral tilt of -6, -3, 0, +3 or +6 dB per octave
(the class), jittered per clip by up to ±1.75 dB / octave, so neighbouring classes overlap and the
best possible accuracy is about 0.89 (not trivially 1.0: a tie between front-ends then means
something). The level (20 dB range) and a slow class-independent swell (0.5-2 Hz, depth up to 30 %)
vary per clip. The label is in the long-term spectrum, which every frame samples: the time average
of the log-mel is kept by averaging or max-pooling pairs of frames (a max of two log-power values
is a per-band constant shift of the same distribution) and by keeping every other frame (half as
many samples of the same spectrum, 50 frames still), so spec, pooling, changehop and DiffRes
should tie at δ <= 0.5 within seed noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tasks.cache import digest
from tasks.embedded import SAMPLE_RATE, EmbeddedGenerator, embedded_spec
from tasks.registry import TaskSpec, register_task

GENERATOR_VERSION = 3  # v3: 2000 test clips; v2: sweeps on digital silence (v1: on a noise floor), 2 s, 600 train clips
SWEEPS_SIZES = {"train": 600, "val": 200, "test": 2000}
TEXTURE_SIZES = {"train": 600, "val": 200, "test": 2000}

SWEEPS_CLIP_SECONDS = 2.0
N_SWEEPS = 4  # label = number of up-sweeps, 0..N_SWEEPS
SWEEP_MS = (8.0, 15.0)  # a window plus a sweep spans <= 40 ms: one kept frame in 4 sees it at most once
SWEEP_LOW_HZ = (500.0, 900.0)
SWEEP_HIGH_HZ = (3500.0, 6000.0)
SWEEP_GAP_S = 0.25  # between onsets: no pooling bin (<= 100 ms at δ <= 0.9) holds two sweeps
SWEEP_EDGE_S = 0.1
SWEEP_LEVEL = (0.3, 1.0)  # peak amplitude, uniform

TEXTURE_CLIP_SECONDS = 1.0
TILTS_DB_PER_OCTAVE = (-6.0, -3.0, 0.0, 3.0, 6.0)
TILT_JITTER_DB_PER_OCTAVE = 1.75  # > half the 3 dB spacing: neighbouring classes overlap


@dataclass(frozen=True)
class ControlGenerator(EmbeddedGenerator):
    """An `EmbeddedGenerator` whose identity also names this module's GENERATOR_VERSION."""

    def identity(self) -> str:
        return f"seed{self.seed}-" + digest({"embedded": super().identity(), "controls": GENERATOR_VERSION},
                                            length=12)


# ------------------------------------------------------------------------------ toy-ctrl-sweeps
def sweep(rng: np.random.Generator, up: bool, sr: int) -> np.ndarray:
    """An 8-15 ms Hann-windowed glide, uniform in log frequency; the down-sweep is the same up-sweep
    reversed in time, exactly."""
    dur = rng.uniform(*SWEEP_MS) / 1000
    n = int(sr * dur)
    t = np.arange(n) / sr
    f0, f1 = rng.uniform(*SWEEP_LOW_HZ), rng.uniform(*SWEEP_HIGH_HZ)
    rate = np.log(f1 / f0) / dur  # instantaneous frequency f0 * exp(rate * t)
    glide = np.hanning(n + 2)[1:-1] * np.sin(2 * np.pi * f0 * np.expm1(rate * t) / rate + rng.uniform(0, 2 * np.pi))
    return glide if up else glide[::-1].copy()


def sweep_layout(rng: np.random.Generator, label: int, clip_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """-> onsets in seconds (sorted, >= SWEEP_GAP_S apart, uniform over such layouts) and is-up flags."""
    free = clip_seconds - 2 * SWEEP_EDGE_S - (N_SWEEPS - 1) * SWEEP_GAP_S
    onsets = SWEEP_EDGE_S + np.sort(rng.uniform(0, free, N_SWEEPS)) + SWEEP_GAP_S * np.arange(N_SWEEPS)
    return onsets, rng.permutation(np.arange(N_SWEEPS) < label)


def render_sweeps(rng: np.random.Generator, onsets_s: np.ndarray, ups: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Digital silence plus one sweep (peak level U(SWEEP_LEVEL)) per onset; ups[i] says which way sweep i goes."""
    clip = np.zeros(n)
    for onset, up in zip(onsets_s, ups):
        s = sweep(rng, bool(up), sr) * rng.uniform(*SWEEP_LEVEL)
        i = int(onset * sr)
        clip[i : i + len(s)] += s
    return clip.astype(np.float32)


def sweeps_clip(rng: np.random.Generator, label: int, sr: int, n: int) -> np.ndarray:
    onsets, ups = sweep_layout(rng, label, n / sr)
    return render_sweeps(rng, onsets, ups, sr, n)


# ----------------------------------------------------------------------------- toy-ctrl-texture
def tilted_noise(rng: np.random.Generator, tilt_db_per_octave: float, n: int, sr: int) -> np.ndarray:
    """Stationary Gaussian noise whose power spectrum falls or rises by the tilt per octave (about 1 kHz;
    flat below 62.5 Hz), with unit standard deviation."""
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 62.5)
    gain = 10 ** (tilt_db_per_octave * np.log2(freqs / 1000) / 20)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * gain, n=n)
    return noise / noise.std()


def texture_clip(rng: np.random.Generator, label: int, sr: int, n: int) -> np.ndarray:
    tilt = TILTS_DB_PER_OCTAVE[label] + rng.uniform(-TILT_JITTER_DB_PER_OCTAVE, TILT_JITTER_DB_PER_OCTAVE)
    t = np.arange(n) / sr
    swell = 1 + rng.uniform(0.0, 0.3) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))
    level = 10 ** (rng.uniform(-20, 0) / 20) * 0.2  # standard deviation 0.02-0.2
    return (level * swell * tilted_noise(rng, tilt, n, sr)).astype(np.float32)


# ------------------------------------------------------------------------------------ registry
def _control_spec(gen: ControlGenerator, class_names: tuple[str, ...], what: str) -> TaskSpec:
    spec = embedded_spec(gen, class_names, what)
    sizes = dict(gen.sizes)
    return dataclasses.replace(
        spec, source=f"control generator (seed {gen.seed}, v{GENERATOR_VERSION}): {what}; "
                     f"{sizes['train']}/{sizes['val']}/{sizes['test']} clips; chance = 1/{gen.num_classes}")


@register_task
def toy_ctrl_sweeps() -> TaskSpec:
    gen = ControlGenerator("toy-ctrl-sweeps", sweeps_clip, num_classes=N_SWEEPS + 1,
                           sizes=tuple(SWEEPS_SIZES.items()), sample_rate=SAMPLE_RATE,
                           clip_seconds=SWEEPS_CLIP_SECONDS)
    return dataclasses.replace(
        _control_spec(gen, tuple(f"{k}_up" for k in range(N_SWEEPS + 1)),
                      f"positive control: how many of {N_SWEEPS} sparse 8-15 ms sweeps go up"), control="positive")


@register_task
def toy_ctrl_texture() -> TaskSpec:
    gen = ControlGenerator("toy-ctrl-texture", texture_clip, num_classes=len(TILTS_DB_PER_OCTAVE),
                           sizes=tuple(TEXTURE_SIZES.items()), sample_rate=SAMPLE_RATE,
                           clip_seconds=TEXTURE_CLIP_SECONDS)
    return dataclasses.replace(
        _control_spec(gen, tuple(f"tilt_{t:+.0f}dB_per_octave" for t in TILTS_DB_PER_OCTAVE),
                      "negative control: spectral tilt of stationary noise"), control="negative")
