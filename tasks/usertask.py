"""A user's own corpus as a task, named without Python: a task YAML or a shorthand, wherever a task name
is accepted (`get_task` resolves both).

    name: birds                  # names cache folders (letters, digits, '-', '_', '.')
    source: folder               # folder | manifest | hear | hub (tasks/sources/)
    root: data/birds             # relative paths are relative to the YAML's folder
    clip_seconds: 5              # optional: HEAR's sample_duration, else the longest clip
    sample_rate: 16000           # optional (16000)
    metric: accuracy             # optional: accuracy for single-label, mAP for multi-label tasks
    split_seed: 0                # optional: the seeded stratified split of a corpus without splits
    on_bad_file: refuse          # refuse (default: an error lists them) | skip (the report states it)

Shorthands: `folder:/path/to/dir`, `hear:/path/to/dir`, `manifest:/path/to/metadata.csv` (the name is
the folder's or file's name). The reference a run stores is canonical: the YAML's absolute path, or
`<source>:<absolute path>`.

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
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.cache import digest, embedded_dir
from tasks.registry import ParquetSource, TaskSpec
from tasks.sources import SOURCES, folder, hear, hubid, manifest  # noqa: F401  (register the readers)
from tasks.sources.corpus import (
    Corpus,
    TaskFileError,
    file_error,
    file_stats,
    fold_roles,
    probe_all,
    shorthands,
    split_problems,
    stratified_split,
)

INDEX_VERSION = 1
DEFAULT_SAMPLE_RATE = 16000
KEYS = {"name", "source", "root", "manifest", "label_column", "label_separator", "classes", "clip_seconds",
        "sample_rate", "metric", "split_seed", "on_bad_file", "repo", "audio_column", "splits", "data_files",
        "multi_label", "id_column"}
BAD_FILE_POLICIES = ("refuse", "skip")
SHOWN = 20  # bad files listed in an error


def is_user_ref(ref: str) -> bool:
    text = str(ref)
    return text.endswith((".yaml", ".yml")) or text.split(":", 1)[0] in shorthands() and ":" in text


def canonical_ref(ref: str, base_dir: str | os.PathLike | None = None) -> str:
    """The absolute form of a reference; relative paths are taken from `base_dir` (default: the working
    directory; a suite YAML passes its own folder)."""
    text = str(ref)
    kind, path = text.split(":", 1) if text.split(":", 1)[0] in shorthands() and ":" in text else ("", text)
    absolute = (Path(base_dir or ".") / Path(path).expanduser()).resolve()
    return f"{kind}:{absolute}" if kind else str(absolute)


def declaration(ref: str) -> dict[str, Any]:
    """The task's declared fields, checked, with paths made absolute; `_file` names where they came from."""
    ref = canonical_ref(ref)
    kind, _, path = ref.partition(":") if not ref.endswith((".yaml", ".yml")) else ("", "", ref)
    if kind:
        target = Path(path)
        field_name = shorthands()[kind]  # a folder is named after itself, a manifest after its folder
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", target.name if target.is_dir() else target.parent.name or target.stem)
        decl = {"name": name.lstrip(".-_") or "corpus", "source": kind, field_name: path, "_file": ref}
    else:
        file = Path(path)
        if not file.is_file():
            raise TaskFileError(f"task file {file} does not exist")
        try:
            decl = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise TaskFileError(f"{file}: malformed YAML: {err}") from None
        if not isinstance(decl, dict):
            raise file_error(file, "(file)", type(decl).__name__, f"a mapping with keys {sorted(KEYS)}")
        unknown = sorted(set(decl) - KEYS)
        if unknown:
            raise file_error(file, unknown[0], decl[unknown[0]], f"one of the keys {sorted(KEYS)}")
        for key in ("root", "manifest"):
            if key in decl:
                decl[key] = str((file.parent / str(decl[key])).expanduser().resolve())
        decl["_file"] = str(file)
    _check(decl)
    return decl


def _check(decl: dict[str, Any]) -> None:
    from tasks.registry import _REGISTRY

    file = decl["_file"]
    name = decl.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise file_error(file, "name", name, "letters, digits, '.', '-' or '_' (it names cache folders)")
    if name in _REGISTRY:
        raise file_error(file, "name", name, "a name that is not a built-in task's (`diffres-bench tasks list`)")
    if decl.get("source") not in SOURCES:
        raise file_error(file, "source", decl.get("source"), f"one of {sorted(SOURCES)}")
    needed = SOURCES[decl["source"]].required
    if not decl.get(needed):
        raise file_error(file, needed, None, f"a value for source {decl['source']!r}")
    seconds = decl.get("clip_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not 0 < seconds <= 600):
        raise file_error(file, "clip_seconds", seconds, "seconds in (0, 600]")
    rate = decl.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 192000:
        raise file_error(file, "sample_rate", rate, "an integer in Hz, 1000..192000")
    if decl.get("metric", "accuracy") not in ("accuracy", "mAP"):
        raise file_error(file, "metric", decl["metric"], "'accuracy' or 'mAP'")
    seed = decl.get("split_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise file_error(file, "split_seed", seed, "an integer >= 0")
    if decl.get("on_bad_file", "refuse") not in BAD_FILE_POLICIES:
        raise file_error(file, "on_bad_file", decl["on_bad_file"], f"one of {list(BAD_FILE_POLICIES)}")
    sep = decl.get("label_separator")
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise file_error(file, "label_separator", sep, "a non-empty string (the character between labels)")


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
                            f"{' ...' if len(bad) > SHOWN else ''}. Fix or remove them, or declare "
                            f"`on_bad_file: skip` in a task YAML (the report then states the skipped files)")
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

    from tasks.data import read_column

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
