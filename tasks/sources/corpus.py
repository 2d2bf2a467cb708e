"""What every user source reads its layout into, and the checks they share.

A reader (`@register_source("folder")` etc.) turns a task declaration into a `Corpus`: the clips
(`Clip`: file, path relative to the corpus root, label names, split or fold), the class vocabulary in
index order, and the files whose names, sizes and mtimes make the corpus's fingerprint. Errors in the
layout or the metadata are `TaskFileError`s naming the file, the field and the value; problems of single
audio files (missing, unreadable, empty) are collected by `probe` so that a user sees the whole list
at once (refused by default, skipped on request: `tasks.usertask`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test of the seeded stratified split


class TaskFileError(ValueError):
    """A user task's declaration, metadata or layout is not usable; the message names file, field, value."""


def file_error(file: Any, field_name: str, value: Any, expected: str) -> TaskFileError:
    return TaskFileError(f"{file}: field {field_name!r}, value {value!r}: {expected}")


@dataclass(frozen=True)
class Clip:
    path: Path  # absolute
    rel: str  # relative to the corpus root, '/'-separated: the clip id
    labels: tuple[str, ...]
    split: str | None = None  # train / val / test; None: assigned by the seeded stratified split
    fold: int | None = None  # 1..k for k-fold corpora


@dataclass
class Corpus:
    root: Path
    clips: list[Clip]
    classes: tuple[str, ...]  # class index = position
    multi: bool
    folds: int | None = None
    meta_files: list[Path] = field(default_factory=list)  # declaration, manifest, metadata: in the fingerprint
    clip_seconds: float | None = None  # a length the metadata states (HEAR's sample_duration)
    rule: str = ""  # how train / val / test are formed, in words
    rate_folder: int | None = None  # HEAR: every clip must be at this rate


@dataclass(frozen=True)
class Probe:
    """An audio file's header: its rate and length, or why it cannot be used."""

    sample_rate: int = 0
    frames: int = 0
    problem: str | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


SourceReader = Callable[[Mapping[str, Any]], Corpus]


@dataclass(frozen=True)
class Source:
    """A registered layout: its reader, the declared field it cannot do without, and whether the shorthand
    `<name>:<path>` names a corpus by that field alone (a path)."""

    read: SourceReader
    required: str
    shorthand: bool


SOURCES: dict[str, Source] = {}


def register_source(name: str, required: str, shorthand: bool = True) -> Callable[[SourceReader], SourceReader]:
    def add(fn: SourceReader) -> SourceReader:
        if name in SOURCES:
            raise ValueError(f"source {name!r} is already registered")
        SOURCES[name] = Source(fn, required, shorthand)
        return fn

    return add


def shorthands() -> dict[str, str]:
    """`<name>:<path>` shorthand -> the declared field the path fills."""
    return {name: s.required for name, s in SOURCES.items() if s.shorthand}


# ------------------------------------------------------------------------------------------ checks
def inside(root: Path, rel: str, file: Any, field_name: str) -> Path:
    """`root / rel`, refusing absolute paths and paths that leave the root (`../`)."""
    text = str(rel).strip()
    if not text:
        raise file_error(file, field_name, rel, "an audio file path relative to the corpus root (empty)")
    if Path(text).is_absolute() or text.startswith("\\"):
        raise file_error(file, field_name, rel, f"a path relative to {root} (absolute paths are refused)")
    path = (root / text).resolve()
    if not path.is_relative_to(root.resolve()):
        raise file_error(file, field_name, rel, f"a path inside {root} (it escapes the root)")
    return path


def split_name(value: Any, file: Any, field_name: str) -> str:
    key = str(value).strip().lower()
    if key not in SPLIT_NAMES:
        raise file_error(file, field_name, value, f"one of {sorted(SPLIT_NAMES)}")
    return SPLIT_NAMES[key]


def probe(path: Path) -> Probe:
    """The header of one audio file (no full decode): missing, unreadable and empty files are problems."""
    import soundfile as sf

    if not path.is_file():
        return Probe(problem="missing (no such file)")
    if path.stat().st_size == 0:
        return Probe(problem="empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # noqa: BLE001 — libsndfile raises by format; the message is the report
        return Probe(problem=f"unreadable ({str(err).strip().splitlines()[0][:120]})")
    if info.frames <= 0:
        return Probe(sample_rate=int(info.samplerate), problem="empty (0 samples)")
    return Probe(sample_rate=int(info.samplerate), frames=int(info.frames))


def probe_all(corpus: Corpus) -> dict[str, Probe]:
    return {clip.rel: probe(clip.path) for clip in corpus.clips}


def file_stats(paths: list[Path], root: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of every file: the fingerprint (a missing file counts as (name, -1, -1))."""
    out = []
    for p in sorted(set(paths)):
        try:
            st = os.stat(p)
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), -1, -1))
    return out


def stratified_split(clips: list[Clip], seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
                     ) -> list[Clip]:
    """Give every clip without a split one: per class (its first label), a seeded shuffle of the clips in
    name order, then val and test take round(n x fraction) each (at least one when the class has 3 clips
    or more) and train the rest. Clips that have a split keep it."""
    todo = sorted((c for c in clips if c.split is None), key=lambda c: c.rel)
    by_class: dict[str, list[Clip]] = {}
    for clip in todo:
        by_class.setdefault(clip.labels[0], []).append(clip)
    assigned: dict[str, str] = {}
    for k, name in enumerate(sorted(by_class)):
        members = by_class[name]
        order = np.random.default_rng([seed, k]).permutation(len(members))
        n = len(members)
        n_val, n_test = (max(1, round(n * f)) if n >= 3 else 0 for f in fractions[1:])
        for rank, i in enumerate(order):
            assigned[members[i].rel] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return [replace(c, split=assigned[c.rel]) if c.split is None else c for c in clips]


def fold_roles(fold: int, folds: int) -> dict[str, list[int]]:
    """fold f is test, fold (f mod k) + 1 validation, the rest train (ESC-50's rule; folds 1..k)."""
    val = fold % folds + 1
    return {"test": [fold], "val": [val], "train": [f for f in range(1, folds + 1) if f not in (fold, val)]}


def split_problems(corpus: Corpus, clips: list[Clip]) -> list[str]:
    """A split (of any fold) with no clip, a class with no training clip."""
    problems = []
    units = range(1, corpus.folds + 1) if corpus.folds else [None]
    for fold in units:
        if fold is None:
            members = {s: [c for c in clips if c.split == s] for s in ("train", "val", "test")}
        else:
            roles = fold_roles(fold, corpus.folds)
            members = {s: [c for c in clips if c.fold in roles[s]] for s in ("train", "val", "test")}
        where = "" if fold is None else f" of fold {fold}"
        for split, rows in members.items():
            if not rows:
                problems.append(f"split {split!r}{where} has no clip")
        trained = {label for c in members["train"] for label in c.labels}
        missing = [name for name in corpus.classes if name not in trained]
        if missing:
            problems.append(f"class(es) {missing[:5]}{' ...' if len(missing) > 5 else ''} have no training clip"
                            f"{where} ({len(missing)} of {len(corpus.classes)})")
    return problems


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
