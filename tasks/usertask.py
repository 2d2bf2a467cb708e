"""A user's own corpus as a task, named without Python: a task YAML or a shorthand (`tasks.taskref`: the
format), wherever a task name is accepted (`get_task` resolves both).

The corpus is read into a parquet index (clip_id, audio path, label(s), split or fold, length, rate)
written once, atomically, under `<cache>/embedded/<name>/user-<fingerprint>/`, and from there the task
goes through the same loader, waveform cache, runs and report as every other task. The fingerprint is a
hash of the declared fields and of the names, sizes and mtimes of every file the task reads (not their
contents): editing the corpus gives a new index, a new waveform cache and new run identities. A process
resolves a reference once and keeps that view (`user_task(ref, fresh=True)` reads it again).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.cache import digest, embedded_dir
from tasks.registry import ParquetSource, TaskSpec
from tasks.sources import SOURCES, hubid
from tasks.sources.corpus import (
    Corpus,
    TaskFileError,
    file_stats,
    fold_roles,
    probe_all,
    split_problems,
    stratified_split,
)
from tasks.taskref import DEFAULT_SAMPLE_RATE, canonical_ref, declaration

INDEX_VERSION = 1
SHOWN = 20  # bad files listed in an error


# ---------------------------------------------------------------------------------------- the index
@dataclass(frozen=True)
class UserIndex:
    """A user task's local source (`TaskSpec.local`): the parquet index of its corpus under its fingerprint."""

    name: str
    fingerprint: str
    sizes: tuple[tuple[str, int], ...]  # train / val / test clips (of fold 1 for a k-fold task)
    meta: dict[str, Any] = field(compare=False, repr=False)
    ref: str = field(compare=False, default="")

    def identity(self) -> str:
        return f"user-{self.fingerprint}"

    def folder(self) -> Path:
        return embedded_dir(self.name) / self.identity()

    def ensure(self) -> Path:
        """The index folder; written again from the corpus if the cache was emptied since it was read."""
        if not (self.folder() / "clips.parquet").is_file():
            again = user_task(self.ref, fresh=True).local
            if again.fingerprint != self.fingerprint:
                raise TaskFileError(f"{self.ref}: the corpus changed while this process used it (fingerprint "
                                    f"{self.fingerprint} -> {again.fingerprint}); run the command again")
        return self.folder()


def read_corpus(decl: dict[str, Any]) -> Corpus:
    return SOURCES[decl["source"]].read(decl)


def fingerprint(decl: dict[str, Any], corpus: Corpus) -> str:
    declared = {k: v for k, v in decl.items() if k != "_file"}
    files = [c.path for c in corpus.clips] + corpus.meta_files
    return digest({"declared": declared, "files": file_stats(files, corpus.root), "version": INDEX_VERSION})


def bad_files(decl: dict[str, Any], corpus: Corpus, probes: dict) -> list[tuple[str, str]]:
    """(clip, problem) of every file that cannot be used; a HEAR rate folder with mixed rates is an error."""
    bad = [(rel, p.problem) for rel, p in probes.items() if p.problem]
    if corpus.rate_folder is not None:
        off = [(rel, p.sample_rate) for rel, p in probes.items()
               if not p.problem and p.sample_rate != corpus.rate_folder]
        if off:
            listed = ", ".join(f"{rel} ({sr} Hz)" for rel, sr in off[:SHOWN])
            raise TaskFileError(f"{corpus.root / str(corpus.rate_folder)}: field 'sample_rate', value mixed: every "
                                f"clip in a HEAR rate folder must be at {corpus.rate_folder} Hz; {len(off)} are not: "
                                f"{listed}")
    return bad


def build(decl: dict[str, Any], corpus: Corpus, out: Path) -> dict[str, Any]:
    """Check the corpus, then write `out/clips.parquet` and `out/meta.json` (and `split.csv` when the split
    was drawn here) atomically; -> the meta."""
    probes = probe_all(corpus)
    bad = bad_files(decl, corpus, probes)
    skip = decl.get("on_bad_file", "refuse") == "skip"
    if bad and not skip:
        listed = "; ".join(f"{corpus.root / rel}: {problem}" for rel, problem in bad[:SHOWN])
        raise TaskFileError(f"{len(bad)} of {len(corpus.clips)} audio file(s) cannot be used: {listed}"
                            f"{' ...' if len(bad) > SHOWN else ''}. Fix or remove them, or skip them: "
                            f"`on_bad_file: skip` in a task YAML, or a shorthand ending in `?on_bad_file=skip` "
                            f"(the report then states the skipped files)")
    dropped = {rel for rel, _ in bad}
    clips = [c for c in corpus.clips if c.rel not in dropped]
    drawn = corpus.folds is None and any(c.split is None for c in clips)
    seed = decl.get("split_seed", 0)
    if drawn:
        clips = stratified_split(clips, seed)
    problems = split_problems(corpus, clips)
    if problems:
        raise TaskFileError(f"{decl['_file']}: " + "; ".join(problems))
    seconds = decl.get("clip_seconds") or corpus.clip_seconds or math.ceil(max(probes[c.rel].seconds for c in clips)
                                                                            * 1000) / 1000
    clips.sort(key=lambda c: (Path(c.rel).name, c.rel))
    vocab = {name: i for i, name in enumerate(corpus.classes)}
    lengths = [probes[c.rel].seconds for c in clips]
    rule = corpus.rule or (f"a seeded stratified split (split_seed {seed}; per class 80/10/10 train/val/test, "
                           f"written to split.csv in the index folder)")
    meta = {
        "name": decl["name"], "source": decl["source"], "root": str(corpus.root), "ref": decl["_file"],
        "classes": list(corpus.classes), "multi": corpus.multi, "folds": corpus.folds, "clip_seconds": float(seconds),
        "rule": rule, "clips": len(clips), "cropped": sum(s > seconds + 1e-9 for s in lengths),
        "padded": sum(s < seconds - 1e-9 for s in lengths), "skipped": [f"{rel}: {p}" for rel, p in bad],
        "sizes": _sizes(clips, corpus.folds), "rates": sorted({probes[c.rel].sample_rate for c in clips}),
    }
    columns = {
        "clip_id": [c.rel for c in clips],
        "audio": [{"bytes": None, "path": str(c.path)} for c in clips],
        "split": [c.split or "" for c in clips], "fold": [c.fold or 0 for c in clips],
        "seconds": lengths, "source_rate": [probes[c.rel].sample_rate for c in clips],
    }
    if corpus.multi:
        columns["labels"] = [sorted(vocab[n] for n in c.labels) for c in clips]
    else:
        columns["label"] = [vocab[c.labels[0]] for c in clips]
    _write(out, columns, meta, drawn)
    return meta


def _sizes(clips: list, folds: int | None) -> list[list]:
    if folds is None:
        return [[s, sum(c.split == s for c in clips)] for s in ("train", "val", "test")]
    roles = fold_roles(1, folds)
    return [[s, sum(c.fold in roles[s] for c in clips)] for s in ("train", "val", "test")]


def _write(out: Path, columns: dict[str, list], meta: dict[str, Any], drawn: bool) -> None:
    import datasets

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        ds = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(decode=False))
        ds.to_parquet(str(tmp / "clips.parquet"))
        if drawn:
            pairs = zip(columns["clip_id"], columns["split"], strict=True)
            lines = ["file_name,split"] + [f"{c},{s}" for c, s in pairs]
            (tmp / "split.csv").write_text("\n".join(lines) + "\n")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, out)
    except OSError:
        if not (out / "meta.json").is_file():
            raise
    finally:
        if tmp.exists():
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()


# ---------------------------------------------------------------------------------------- the spec
def _select(sources: dict[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
    import numpy as np

    from tasks.columns import read_column

    ds = sources["clips"]
    if spec.folds is not None:
        mask = np.isin(read_column(ds, "fold").to_numpy(), fold_roles(int(fold), spec.folds)[split])
    else:
        mask = read_column(ds, "split").to_numpy(zero_copy_only=False) == split
    label = "label" if spec.label_kind == "single" else "labels"
    return ds.select(np.flatnonzero(mask)).select_columns(["clip_id", "audio", label])


def spec_from(decl: dict[str, Any], meta: dict[str, Any], fp: str) -> TaskSpec:
    multi = meta["multi"]
    seconds = meta["clip_seconds"]
    notes = [f"clips cropped (from the start) or zero-padded to {seconds:g} s: {meta['cropped']} of {meta['clips']} "
             f"longer (cropped), {meta['padded']} shorter (padded)"]
    if meta["skipped"]:
        notes.append(f"{len(meta['skipped'])} unreadable file(s) skipped (on_bad_file: skip): "
                     + "; ".join(meta["skipped"][:SHOWN]))
    index = UserIndex(name=decl["name"], fingerprint=fp, sizes=tuple((s, n) for s, n in meta["sizes"]), meta=meta,
                      ref=decl["_file"])
    return TaskSpec(
        name=decl["name"], num_classes=len(meta["classes"]), class_names=tuple(meta["classes"]),
        label_kind="multi" if multi else "single", metric=decl.get("metric", "mAP" if multi else "accuracy"),
        sample_rate=decl.get("sample_rate", DEFAULT_SAMPLE_RATE), clip_seconds=seconds, folds=meta["folds"],
        source=f"your corpus ({decl['source']}) at {meta['root']}: {meta['clips']} clips, rates "
               f"{meta['rates']} Hz; fingerprint {fp} (names, sizes, mtimes)",
        protocol=f"{meta['rule']}; " + "; ".join(notes),
        parquet=ParquetSource(None, "user", {"clips": ("clips.parquet",)}, note=f"index at {index.folder()}"),
        select=_select, local=index,
    )


_RESOLVED: dict[str, TaskSpec] = {}
_IDENTITY: dict[str, str] = {}


def task_identity(ref: str) -> str:
    """What a run's identity holds of a user task: the corpus fingerprint (`user-...`), or for a hub dataset
    its declared fields (`hub-...`; the pinned revision fixes the data)."""
    key = canonical_ref(ref)
    if key not in _IDENTITY:
        user_task(key)
    return _IDENTITY[key]


def user_task(ref: str, fresh: bool = False) -> TaskSpec:
    """The TaskSpec of a task YAML or shorthand (see the module docstring); raises `TaskFileError`."""
    key = canonical_ref(ref)
    if not fresh and key in _RESOLVED:
        return _RESOLVED[key]
    decl = declaration(key)
    if decl["source"] == "hub":
        spec = hubid.hub_spec(decl)
        _IDENTITY[key] = hubid.identity(decl)
    else:
        corpus = read_corpus(decl)
        fp = fingerprint(decl, corpus)
        out = embedded_dir(decl["name"]) / f"user-{fp}"
        meta_path = out / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else build(decl, corpus, out)
        spec = spec_from(decl, meta, fp)
        _IDENTITY[key] = spec.local.identity()
    _RESOLVED[key] = spec
    return spec
