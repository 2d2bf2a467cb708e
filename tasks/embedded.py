"""Offline tasks generated from a seed, where temporal resolution matters.

Each clip is 1.5 s of 16 kHz audio: quiet coloured background noise, 1-3 faint stationary tones and
one longer distractor event (all independent of the class, well below the clicks), plus a short
cluster of clicks (2-6 ms bursts, levels 0.5-1) at a random time. The class lives only in the fine
timing of the cluster:

- toy-transients: how many clicks (1..5), 20-45 ms apart, each with a random level, so the
  cluster's total energy is a weak cue and counting needs frames shorter than the gaps;
- toy-rhythm: four clicks whose three inter-onset intervals follow a pattern of short (S) and
  long (L = 2.5 S) gaps (SSS, SSL, SLS, LSS, LLS) at a random tempo S = 25-40 ms, so the class
  is the order of the gaps, which 40 ms frames blur.

- toy-rhythm-short: toy-rhythm in 0.6 s clips (the cluster anywhere from 50 ms after the start to
  50 ms before the end), for the learnable filterbanks, whose cost on a CPU grows with the samples
  of a clip (LEAF's 401-tap convolution runs at every sample): 2.5x cheaper than toy-rhythm.

Splits: 1000 train / 200 val / 2000 test clips (v3). The test split is large so that a comparison's
interval is not set by which 200 clips happened to be drawn: evaluating costs little beside training, and a
claim is about the population of clips the generator draws from (v2 had 200 test clips; v1 3 s clips,
240/80/80 clips and a louder background, which a small CNN trained for a few CPU minutes could not learn).
Draws: the generator's seed is the task's draw of clips (`TaskSpec.draw`, `RunConfig.data_seed`): seed 0
is the registered task, any other seed a new draw of every split from the same distribution.

Clips are stored exactly like a hub task: parquet files with `clip_id`, `audio` ({"bytes": WAV,
"path"}) and an int `label`, written once under `<cache>/embedded/<task>/<identity>/` and then
read through the same code path as the hub tasks. Same seed -> same bytes. Classes are balanced
(split sizes divisible by the class count give exactly equal counts). Chance = 1 / 5.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.audio import encode_wav
from tasks.cache import digest
from tasks.registry import SPLITS, ParquetSource, TaskSpec, register_task
from tasks.splits import official_select, standard_single

GENERATOR_VERSION = 3
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.5
DEFAULT_SIZES = {"train": 1000, "val": 200, "test": 2000}

SHORT_CLIP_SECONDS = 0.6  # toy-rhythm-short; its longest cluster spans 0.27 s
EDGE_S, SHORT_EDGE_S = 0.15, 0.05  # the cluster starts and ends at least this far from the clip's edges

RHYTHM_PATTERNS = ("SSS", "SSL", "SLS", "LSS", "LLS")
LONG_GAP = 2.5  # L = 2.5 S


def _click(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A 2-6 ms burst: decaying noise mixed with a damped 1-6 kHz sinusoid."""
    n = int(sr * rng.uniform(0.002, 0.006))
    t = np.arange(n) / sr
    env = np.exp(-t / rng.uniform(0.0006, 0.0015))
    tone = np.sin(2 * np.pi * rng.uniform(1000, 6000) * t + rng.uniform(0, 2 * np.pi))
    mix = rng.uniform(0.2, 0.8)
    return (env * (mix * rng.standard_normal(n) + (1 - mix) * tone)).astype(np.float32)


def _background(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Class-independent, well below the clicks: coloured noise, faint tones and one distractor event."""
    white = rng.standard_normal(n)
    a = rng.uniform(0.0, 0.95)  # one-pole low-pass: from white (a=0) towards brown-ish noise
    coloured = _one_pole(white, a)
    coloured *= rng.uniform(0.005, 0.02) / (coloured.std() + 1e-12)
    t = np.arange(n) / sr
    out = coloured
    for _ in range(rng.integers(1, 4)):
        f = rng.uniform(150, 5000)
        am = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t + rng.uniform(0, 2 * np.pi))
        out = out + rng.uniform(0.005, 0.02) * am * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    # distractor: a 100-400 ms swell of a tone or band noise, anywhere in the clip
    d = int(sr * rng.uniform(0.1, 0.4))
    start = rng.integers(0, n - d)
    env = np.hanning(d)
    if rng.random() < 0.5:
        ev = np.sin(2 * np.pi * rng.uniform(300, 3000) * np.arange(d) / sr)
    else:
        ev = _one_pole(rng.standard_normal(d), rng.uniform(0.3, 0.9))
        ev /= ev.std() + 1e-12
    out[start : start + d] += rng.uniform(0.02, 0.08) * env * ev
    return out.astype(np.float32)


def _one_pole(x: np.ndarray, a: float) -> np.ndarray:
    """Low-pass y[t] = a*y[t-1] + (1-a)*x[t], applied in the frequency domain (circular; for noise)."""
    w = np.linspace(0.0, np.pi, len(x) // 2 + 1)
    return np.fft.irfft(np.fft.rfft(x) * (1 - a) / (1 - a * np.exp(-1j * w)), n=len(x))


def _place_clicks(rng: np.random.Generator, clip: np.ndarray, onsets_s: np.ndarray, sr: int,
                  edge_s: float = EDGE_S) -> None:
    """Add one click per onset (seconds from the cluster start) at a random cluster position."""
    span = float(onsets_s[-1]) + 0.01
    start = rng.uniform(edge_s, len(clip) / sr - edge_s - span)
    for onset in onsets_s:
        c = _click(rng, sr) * rng.uniform(0.5, 1.0)
        i = int((start + onset) * sr)
        clip[i : i + len(c)] += c


def transients_clip(rng: np.random.Generator, label: int, sr: int, n: int) -> np.ndarray:
    clip = _background(rng, n, sr)
    gaps = rng.uniform(0.020, 0.045, size=label)  # label k -> k + 1 clicks
    _place_clicks(rng, clip, np.concatenate([[0.0], np.cumsum(gaps)]), sr)
    return clip


def rhythm_clip(rng: np.random.Generator, label: int, sr: int, n: int, edge_s: float = EDGE_S) -> np.ndarray:
    clip = _background(rng, n, sr)
    short = rng.uniform(0.025, 0.040)
    gaps = np.array([short * (LONG_GAP if g == "L" else 1.0) for g in RHYTHM_PATTERNS[label]])
    gaps *= rng.uniform(0.9, 1.1, size=len(gaps))  # slight timing jitter
    _place_clicks(rng, clip, np.concatenate([[0.0], np.cumsum(gaps)]), sr, edge_s)
    return clip


def rhythm_short_clip(rng: np.random.Generator, label: int, sr: int, n: int) -> np.ndarray:
    return rhythm_clip(rng, label, sr, n, edge_s=SHORT_EDGE_S)


@dataclass(frozen=True)
class EmbeddedGenerator:
    """Writes a task's train/val/test parquet files from a seed (see module docstring)."""

    name: str
    make_clip: Callable[[np.random.Generator, int, int, int], np.ndarray] = field(compare=False)
    num_classes: int
    seed: int = 0
    sizes: tuple[tuple[str, int], ...] = tuple(DEFAULT_SIZES.items())
    sample_rate: int = SAMPLE_RATE
    clip_seconds: float = CLIP_SECONDS

    def identity(self) -> str:
        key = {"name": self.name, "seed": self.seed, "sizes": dict(self.sizes), "sr": self.sample_rate,
               "clip_seconds": self.clip_seconds, "version": GENERATOR_VERSION}
        return f"seed{self.seed}-" + digest(key, length=12)

    def generate_split(self, split: str) -> dict[str, list]:
        """-> columns clip_id, audio ({"bytes", "path"}), label for one split; deterministic."""
        n_clips = dict(self.sizes)[split]
        rng = np.random.default_rng([self.seed, SPLITS.index(split), GENERATOR_VERSION])
        labels = rng.permutation(np.arange(n_clips) % self.num_classes)
        n = int(round(self.clip_seconds * self.sample_rate))
        ids, audio = [], []
        for i, label in enumerate(labels):
            clip = self.make_clip(rng, int(label), self.sample_rate, n)
            clip *= min(1.0, 0.95 / float(np.abs(clip).max()))
            clip_id = f"{self.name}-s{self.seed}-{split}-{i:05d}"  # ids name the draw: unique across draws
            ids.append(clip_id)
            audio.append({"bytes": encode_wav(clip, self.sample_rate), "path": f"{clip_id}.wav"})
        return {"clip_id": ids, "audio": audio, "label": [int(x) for x in labels]}

    def write(self, root: Path) -> Path:
        """Write `<root>/<identity>/{train,val,test}.parquet` (atomically) and return that folder."""
        import datasets

        out = Path(root) / self.identity()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
        for split in SPLITS:
            ds = datasets.Dataset.from_dict(self.generate_split(split))
            ds = ds.cast_column("audio", datasets.Audio(decode=False))
            ds.to_parquet(str(tmp / f"{split}.parquet"))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first; keep theirs
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
        return out

    def ensure(self, root: Path) -> Path:
        out = Path(root) / self.identity()
        if all((out / f"{s}.parquet").is_file() for s in SPLITS):
            return out
        return self.write(root)


def embedded_spec(gen: EmbeddedGenerator, class_names: tuple[str, ...], what: str) -> TaskSpec:
    sizes = dict(gen.sizes)
    return TaskSpec(
        name=gen.name, num_classes=gen.num_classes, class_names=class_names, label_kind="single",
        metric="accuracy", sample_rate=gen.sample_rate, clip_seconds=gen.clip_seconds, folds=None,
        source=f"embedded generator (seed {gen.seed}, v{GENERATOR_VERSION}): {what}; "
               f"{sizes['train']}/{sizes['val']}/{sizes['test']} clips; chance = 1/{gen.num_classes}",
        protocol="generated train / val / test, class-balanced; model selection on val",
        parquet=ParquetSource(None, "embedded", {s: (f"{s}.parquet",) for s in SPLITS}),
        select=official_select({s: s for s in SPLITS},
                               lambda ds, split, spec: standard_single(ds, "clip_id", "label", spec, split)),
        embedded=gen,
    )


@register_task
def toy_transients() -> TaskSpec:
    gen = EmbeddedGenerator("toy-transients", transients_clip, num_classes=5)
    return embedded_spec(gen, tuple(f"{k}_clicks" for k in range(1, 6)), "count of clicks 20-45 ms apart")


@register_task
def toy_rhythm() -> TaskSpec:
    gen = EmbeddedGenerator("toy-rhythm", rhythm_clip, num_classes=len(RHYTHM_PATTERNS))
    return embedded_spec(gen, RHYTHM_PATTERNS, "order of short/long gaps in a 4-click rhythm")


@register_task
def toy_rhythm_short() -> TaskSpec:
    gen = EmbeddedGenerator("toy-rhythm-short", rhythm_short_clip, num_classes=len(RHYTHM_PATTERNS),
                            clip_seconds=SHORT_CLIP_SECONDS)
    return embedded_spec(gen, RHYTHM_PATTERNS, "toy-rhythm in 0.6 s clips (for the learnable filterbanks)")
