"""`diffres-bench tasks inspect SOURCE`: what a user's corpus holds and what is wrong with it, before
anything trains. Reads the layout, every audio file's header and, for a local corpus, its samples, streamed
in blocks (bounded memory; nothing written): classes, clips per split or fold, clip lengths, sample rates,
label balance, and every problem found (all of them, where building the task stops at the first kind):
clips with NaN or Inf samples (a run fails on them) are problems naming the file; silent (all-zero) and
clipped clips, and a longest clip that pads every other one many times over, are warnings. A hub dataset
is read from its local copy (`--data-dir` or $DIFFRES_DATA_DIR) through the task's own split selection,
headers only."""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.sources.corpus import (
    AUDIO_SUFFIXES,
    TaskFileError,
    fold_roles,
    probe_all,
    split_problems,
    stratified_split,
)
from tasks.taskref import DEFAULT_SAMPLE_RATE, declaration
from tasks.usertask import SHOWN, bad_files, read_corpus

HEADER_BATCH = 256  # hub rows whose audio bytes are held at once
SCAN_BLOCK = 65536  # samples a file is read in, so a long file costs no more memory than a short one
ACTIVITY_FRAME_S = 0.02  # frames of the activity detector (`active_share`)
ACTIVITY_DB = 10.0  # a frame is active this far above its clip's quiet floor
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
PAD_WARNING = 4.0  # the longest clip this many times the median: most clips would be mostly padding


@dataclass(frozen=True)
class Inspection:
    text: str
    problems: tuple[str, ...]


def inspect_source(ref: str, data_dir: str | None = None) -> Inspection:
    try:
        decl = declaration(ref)
        if decl["source"] == "hub":
            return _inspect_hub(ref, decl, data_dir)
        corpus = read_corpus(decl)
    except TaskFileError as err:
        return Inspection(f"{ref}: cannot be read as a task: {err}", (str(err),))
    problems: list[str] = []
    probes = probe_all(corpus)
    try:
        bad = bad_files(decl, corpus, probes)
    except TaskFileError as err:
        problems.append(str(err))
        bad = [(rel, p.problem) for rel, p in probes.items() if p.problem]
    for rel, problem in bad[:SHOWN]:
        problems.append(f"{corpus.root / rel}: {problem}")
    if len(bad) > SHOWN:
        problems.append(f"... and {len(bad) - SHOWN} more unusable file(s)")
    dropped = {rel for rel, _ in bad}
    clips = [c for c in corpus.clips if c.rel not in dropped]
    if corpus.folds is None and any(c.split is None for c in clips):
        clips = stratified_split(clips, decl.get("split_seed", 0))
    problems += split_problems(corpus, clips)

    lengths = [probes[c.rel].seconds for c in clips]
    lines = [f"task:         {decl['name']} ({decl['source']} at {corpus.root})",
             _classes_line(corpus.classes, corpus.multi),
             f"clips:        {len(corpus.clips)} listed, {len(clips)} usable, {len(bad)} unusable"]
    if corpus.folds:
        per_fold = Counter(c.fold for c in clips)
        lines.append("folds:        " + ", ".join(f"{f}: {per_fold[f]}" for f in range(1, corpus.folds + 1))
                     + f"  (fold 1: {_roles(corpus.folds)})")
    else:
        per_split = Counter(c.split for c in clips)
        rule = corpus.rule or f"a seeded stratified split, split_seed {decl.get('split_seed', 0)}"
        lines.append("splits:       " + ", ".join(f"{s} {per_split[s]}" for s in ("train", "val", "test"))
                     + f"  ({rule})")
    seconds = decl.get("clip_seconds") or corpus.clip_seconds or max(lengths, default=0.0)
    origin = ("declared" if decl.get("clip_seconds") else "from the metadata" if corpus.clip_seconds
              else "the longest clip")
    counts = Counter(name for c in clips for name in c.labels)
    active: list[float] = []
    warnings = _scan_samples([corpus.root / c.rel for c in clips], problems, active)
    if decl["source"] == "folder":
        warnings += _ignored_files(corpus.root, {c.rel for c in corpus.clips})
        warnings += _unfollowed_links(corpus.root, {c.rel for c in corpus.clips})
    if bad and decl.get("on_bad_file") == "skip":
        warnings.append(f"on_bad_file=skip: a run drops the {len(bad)} unusable file(s) listed under problems")
    if origin == "the longest clip" and lengths:
        median = float(np.median(lengths))
        if median > 0 and seconds >= PAD_WARNING * median:
            longest = max(clips, key=lambda c: probes[c.rel].seconds)
            warnings.append(f"the longest clip ({corpus.root / longest.rel}, {seconds:.2f} s) sets clip_seconds: the "
                            f"median clip ({median:.2f} s) is padded {seconds / median:.0f}x; declare clip_seconds "
                            f"(e.g. ?clip_seconds={float(np.quantile(lengths, 0.9)):.2g}, the 90th percentile)")
    lines += _summary(lengths, seconds, origin, Counter(probes[c.rel].sample_rate for c in clips),
                      [counts.get(name, 0) for name in corpus.classes], corpus.classes,
                      decl.get("sample_rate", DEFAULT_SAMPLE_RATE), problems)
    lines.append(_activity_line(active))
    lines.append(f"warnings:     {len(warnings) or 'none'}")
    lines += [f"  - {w}" for w in warnings[:SHOWN]]
    return Inspection("\n".join(lines), tuple(problems))


def _ignored_files(root: Path, used: set[str]) -> list[str]:
    """A folder corpus's files that no run reads (not audio, hidden, or outside the class folders), by suffix."""
    ignored = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in used]
    if not ignored:
        return []
    by_suffix = Counter(p.suffix.lower() or "(no suffix)" for p in ignored)
    kinds = ", ".join(f"{suffix} x {n}" for suffix, n in sorted(by_suffix.items()))
    return [f"{len(ignored)} file(s) ignored ({kinds}; audio is {', '.join(AUDIO_SUFFIXES)} inside a class "
            f"folder, not hidden), e.g. {sorted(ignored)[0]}"]


def _unfollowed_links(root: Path, used: set[str]) -> list[str]:
    """Symlinked folders whose audio no run reads: a class folder's files are found without following the links
    below it (no loops); a symlinked class or split folder itself is read (its files are among `used`)."""
    links = []
    for top, dirs, _ in os.walk(root):
        for name in dirs:
            path = Path(top) / name
            rel = path.relative_to(root).as_posix() + "/"
            if path.is_symlink() and not any(u.startswith(rel) for u in used):
                links.append(path)
    if not links:
        return []
    first = sorted(links)[0]
    return [f"{len(links)} symlinked folder(s) not followed (their audio is not read; copy them or link the "
            f"files one by one), e.g. {first} -> {os.readlink(first)}"]


def _scan_samples(paths: list[Path], problems: list[str], active: list[float] | None = None) -> list[str]:
    """Every file's samples, block by block: NaN / Inf (appended to `problems`, naming the file), and the
    warnings for silent and clipped files (returned); each readable file's active share is appended to `active`
    (`active_share`)."""
    import soundfile as sf

    silent, clipped = [], []
    for path in paths:
        peak, finite, levels = 0.0, True, []
        try:
            frame = max(1, round(ACTIVITY_FRAME_S * sf.info(str(path)).samplerate))
            for block in sf.blocks(str(path), blocksize=frame * max(1, SCAN_BLOCK // frame), dtype="float32",
                                   always_2d=True):
                if not np.isfinite(block).all():
                    finite = False
                    break
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                mono = block.mean(axis=1)
                whole = len(mono) // frame * frame  # a last partial frame is left out
                levels.append((mono[:whole].reshape(-1, frame) ** 2).mean(axis=1))
        except Exception:  # noqa: BLE001 — an unreadable file is reported by bad_files already
            continue
        if not finite:
            problems.append(f"{path}: contains NaN or Inf samples (a run fails on it; fix or remove the file)")
            continue
        if peak == 0.0:
            silent.append(path)
        elif peak >= CLIP_LEVEL:
            clipped.append(path)
        if active is not None and levels:
            active.append(active_share(np.concatenate(levels)))
    warnings = []
    for what, files in (("silent (all samples zero)", silent), (f"clipped (|sample| >= {CLIP_LEVEL})", clipped)):
        if files:
            shown = ", ".join(str(f) for f in files[:3]) + (f", ... ({len(files) - 3} more)" if len(files) > 3 else "")
            warnings.append(f"{len(files)} clip(s) {what}: {shown}")
    return warnings


def active_share(power: np.ndarray) -> float:
    """The share of a clip's 20 ms frames (`power`: their mean squared sample) louder than its quiet floor (the
    10th-percentile frame) by ACTIVITY_DB: an energy activity detector, the measurable stand-in for the
    resolution map's event-share dial. All-quiet or silent clips read 0."""
    if len(power) == 0 or float(power.max()) <= 0.0:
        return 0.0
    db = 10.0 * np.log10(np.maximum(power, 1e-12))
    return float(np.mean(db > np.percentile(db, 10) + ACTIVITY_DB))


def _activity_line(active: list[float]) -> str:
    if not active:
        return "active share: not measured (no readable clip)"
    q1, med, q3 = (float(np.percentile(active, q)) * 100 for q in (25, 50, 75))
    return (f"active share: median {med:.0f} % of a clip (quartiles {q1:.0f}-{q3:.0f} %): frames {ACTIVITY_DB:g} dB "
            f"above the clip's quiet floor (a clip that sounds evenly reads 0 %), the measurable stand-in for the "
            f"resolution map's event-share dial "
            f"(levels 5 / 15 / 40 %; docs/benchmark.md). The map's time-scale dial is not measured, and the map "
            f"has not yet run at a deciding n, so it predicts nothing here yet")


def _inspect_hub(ref: str, decl: dict, data_dir: str | None) -> Inspection:
    """The hub task's splits as a run forms them (its local copy, else the hub), every clip's header."""
    import soundfile as sf

    from tasks.columns import read_column
    from tasks.data import load_split
    from tasks.registry import SPLITS
    from tasks.resolve import get_task

    spec = get_task(ref)
    problems: list[str] = []
    lengths: list[float] = []
    rates: Counter = Counter()
    counts = np.zeros(spec.num_classes, dtype=np.int64)
    per_split = {}
    for split in SPLITS:
        try:
            table, _ = load_split(spec, split, None, data_dir)
        except (ValueError, OSError) as err:  # no local copy and offline, a bad label, a missing column
            problems.append(f"split {split}: {err}")
            continue
        per_split[split] = len(table)
        for label in read_column(table, "label" if spec.label_kind == "single" else "labels").to_pylist():
            counts[label] += 1
        ids = read_column(table, "clip_id").to_pylist()
        audio = table.select_columns(["audio"]).with_format("arrow")
        for start in range(0, len(table), HEADER_BATCH):
            for k, clip in enumerate(audio[start:start + HEADER_BATCH]["audio"].to_pylist(), start):
                try:
                    data = clip.get("bytes")
                    info = sf.info(io.BytesIO(data) if data else Path(str(clip.get("path"))))
                    if info.frames <= 0:
                        raise ValueError("0 samples")
                except Exception as err:  # soundfile's errors differ by format
                    problems.append(f"split {split}, clip {ids[k]!r} (row {k}): cannot read its header: {err}")
                    continue
                lengths.append(info.frames / info.samplerate)
                rates[info.samplerate] += 1
    lines = [f"task:         {spec.name} (hub dataset)", f"source:       {spec.source}",
             _classes_line(spec.class_names, spec.label_kind == "multi"),
             "splits:       " + ", ".join(f"{s} {per_split.get(s, 'unreadable')}" for s in SPLITS)
             + f"  ({spec.protocol.split(';')[0]})"]
    lines += _summary(lengths, spec.clip_seconds, "declared", rates, counts.tolist(), spec.class_names,
                      spec.sample_rate, problems)
    return Inspection("\n".join(lines), tuple(problems))


def _classes_line(classes: tuple[str, ...], multi: bool) -> str:
    return (f"classes:      {len(classes)} ({'multi' if multi else 'single'}-label): " + ", ".join(classes[:10])
            + (", ..." if len(classes) > 10 else ""))


def _summary(lengths: list[float], seconds: float, origin: str, rates: Counter, balance: list[int],
             classes: tuple[str, ...], target_rate: int, problems: list[str]) -> list[str]:
    """Clip lengths, the crop / pad counts at `seconds`, sample rates, label balance, the problems."""
    arr = np.asarray(lengths) if lengths else np.zeros(1)
    q = np.quantile(arr, [0.0, 0.1, 0.5, 0.9, 1.0])
    lines = ["clip length:  min {:.2f} s, p10 {:.2f}, median {:.2f}, p90 {:.2f}, max {:.2f} s".format(*q),
             f"clip_seconds: {seconds:g} s ({origin}): {int((arr > seconds + 1e-9).sum()) if lengths else 0} clips "
             f"cropped, {int((arr < seconds - 1e-9).sum()) if lengths else 0} padded",
             "sample rates: " + ", ".join(f"{r} Hz x {n}" for r, n in sorted(rates.items()))
             + f" (resampled to {target_rate} Hz)"]
    if balance:
        lines.append(f"label balance: {min(balance)}..{max(balance)} clips a class"
                     f" (ratio {max(balance) / max(min(balance), 1):.1f})")
    lines += [f"  {name}: {n}" for name, n in list(zip(classes, balance, strict=True))[:30]]
    lines.append(f"problems:     {len(problems) or 'none'}")
    lines += [f"  - {p}" for p in problems[:SHOWN]]
    if len(problems) > SHOWN:
        lines.append(f"  ... and {len(problems) - SHOWN} more")
    return lines


def _roles(folds: int) -> str:
    roles = fold_roles(1, folds)
    return f"test {roles['test']}, val {roles['val']}, train {roles['train']}"
