"""Any hub dataset by id, read as parquet exactly like the paper's tasks (`tasks.hub`): from a local copy
under `<data-dir>/<name>/` (same relative paths as the repo), else from `hf://` after the reachability
check, with the same offline error and `hf download` command.

    name: birdclef-mini
    source: hub
    repo: someone/birdsongs@<commit hash>          # a pinned revision: the data cannot change under a result
    audio_column: audio                           # optional (audio)
    label_column: label                           # optional (label): a ClassLabel, a class name, or a list
    multi_label: false                            # optional: true for a list column or `label_separator`
    label_separator: ","                          # optional: several names in one string (multi-label)
    id_column: file                               # optional: a clip id column (else <split>-<row>)
    splits: {train: train, val: validation, test: test}   # our split -> the hub's split name
    data_files: {train: [data/train-*.parquet]}   # optional, by hub split (default data/<split>-*.parquet)
    classes: [a, b, c]                            # optional with a local copy (--data-dir / $DIFFRES_DATA_DIR)
    clip_seconds: 5                               # required: clips are cropped or padded to it

Class index = position in `classes`, else the label column's ClassLabel names, else the sorted names found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.audio import clip_error
from tasks.cache import digest
from tasks.registry import ParquetSource, TaskSpec
from tasks.sources.corpus import TaskFileError, file_error, register_source

DEFAULT_SPLITS = {"train": "train", "val": "validation", "test": "test"}


@register_source("hub", required="repo", shorthand=False)
def read_hub(decl: Mapping[str, Any]) -> Any:
    """A hub dataset has no corpus of files to index: `tasks.usertask` builds its spec with `hub_spec`."""
    raise TaskFileError(f"{decl['_file']}: a hub dataset is read as parquet, not as a corpus of files")


def hub_spec(decl: Mapping[str, Any]) -> TaskSpec:
    file = decl["_file"]
    repo, _, revision = str(decl["repo"]).partition("@")
    if not repo or "/" not in repo or not revision:
        raise file_error(file, "repo", decl["repo"], "owner/name@revision (a pinned commit, branch or tag)")
    splits = dict(decl.get("splits") or DEFAULT_SPLITS)
    if sorted(splits) != ["test", "train", "val"]:
        raise file_error(file, "splits", splits, "a mapping of train, val and test to the hub's split names")
    patterns = decl.get("data_files") or {hub: [f"data/{hub}-*.parquet"] for hub in set(splits.values())}
    missing = sorted(set(splits.values()) - set(patterns))
    if missing:
        raise file_error(file, "data_files", patterns, f"patterns for every split named in `splits` ({missing})")
    if decl.get("clip_seconds") is None:
        raise file_error(file, "clip_seconds", None, "the clip length in seconds (clips are cropped or padded)")
    source = ParquetSource(repo, revision, {k: tuple(v) for k, v in patterns.items()},
                           audio_column=str(decl.get("audio_column", "audio")))
    multi = bool(decl.get("multi_label")) or decl.get("label_separator") is not None
    classes = tuple(str(c) for c in decl["classes"]) if decl.get("classes") else _classes(decl, source)
    return TaskSpec(
        name=decl["name"], num_classes=len(classes), class_names=classes, label_kind="multi" if multi else "single",
        metric=decl.get("metric", "mAP" if multi else "accuracy"), sample_rate=decl.get("sample_rate", 16000),
        clip_seconds=float(decl["clip_seconds"]), folds=None,
        source=f"hub {repo}@{revision} (declared in {file}): "
               + ", ".join(p for ps in patterns.values() for p in ps),
        protocol=f"the hub's splits: train = {splits['train']}, val = {splits['val']}, test = {splits['test']}; "
                 f"clips cropped (from the start) or zero-padded to {float(decl['clip_seconds']):g} s",
        parquet=source, select=_selector(decl, splits, classes),
    )


def identity(decl: Mapping[str, Any]) -> str:
    """A hub task's part of a run identity: its declared fields (the revision pins the data)."""
    return "hub-" + digest({k: v for k, v in decl.items() if k != "_file"})


def _local_copy(name: str) -> Path | None:
    from tasks.cache import DATA_DIR_ENV

    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) / name if root and (Path(root) / name).is_dir() else None


def _classes(decl: Mapping[str, Any], source: ParquetSource) -> tuple[str, ...]:
    """The class names from a local copy: the ClassLabel names of the label column, else the names found."""
    import pyarrow.parquet as pq

    from tasks.cache import DATA_DIR_ENV

    name = decl["name"]
    root = _local_copy(name)
    if root is None:
        raise file_error(decl["_file"], "classes", None,
                         f"the class names in index order, or a local copy at ${DATA_DIR_ENV}/{name}/ to read them "
                         f"from (`{source.download_command(f'<dir>/{name}')}`)")
    column = str(decl.get("label_column", "label"))
    files = sorted(p for pats in source.data_files.values() for pat in pats for p in root.glob(pat))
    if not files:
        raise file_error(decl["_file"], "data_files", dict(source.data_files), f"patterns that match files in {root}")
    meta = pq.read_schema(files[0]).metadata or {}
    features = json.loads(meta.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    feature = features.get(column, {})
    inner = feature.get("feature", feature) if feature.get("_type") in ("Sequence", "List") else feature
    if inner.get("_type") == "ClassLabel" and inner.get("names"):
        return tuple(inner["names"])
    names: set[str] = set()
    sep = decl.get("label_separator")
    for path in files:
        table = pq.read_table(path, columns=[column])
        if column not in table.column_names:
            raise file_error(path, column, None, f"a label column (found {pq.read_schema(path).names})")
        for value in table.column(column).to_pylist():
            items = value if isinstance(value, list) else str(value).split(sep) if sep else [value]
            names |= {str(v) for v in items}
    return tuple(sorted(names))


def _selector(decl: Mapping[str, Any], splits: Mapping[str, str], classes: tuple[str, ...]):
    column, sep = str(decl.get("label_column", "label")), decl.get("label_separator")
    id_column = decl.get("id_column")
    vocab = {name: i for i, name in enumerate(classes)}

    def select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
        import datasets

        from tasks.splits import split_where, standard_multi, standard_single

        ds = sources[splits[split]]
        if id_column is None:
            ds = ds.add_column("clip_id", [f"{splits[split]}-{i}" for i in range(len(ds))])
        id_col = id_column or "clip_id"
        if column not in ds.column_names:
            raise file_error(split_where(spec, split), column, None, f"a label column (found {ds.column_names})")
        feature = ds.features[column]
        if spec.label_kind == "multi":
            inner = getattr(feature, "feature", None)
            if isinstance(inner, datasets.ClassLabel):  # indices of the hub's own vocabulary -> names
                ds = ds.map(lambda b: {"_names": [[inner.int2str(int(x)) for x in row] for row in b[column]]},
                            batched=True, remove_columns=[column]).rename_column("_names", column)
            return standard_multi(ds, id_col, column, vocab, spec, split, sep=sep)
        if isinstance(feature, datasets.ClassLabel) or feature.dtype.startswith("int"):
            return standard_single(ds, id_col, column, spec, split)
        where = split_where(spec, split)

        def to_index(batch: dict) -> dict:
            unknown = [(c, n) for c, n in zip(batch[id_col], batch[column], strict=True) if str(n) not in vocab]
            if unknown:
                raise clip_error(where, str(unknown[0][0]), column, f"class {unknown[0][1]!r} is not one of the "
                                 f"{len(vocab)} classes ({list(vocab)[:8]})")
            return {"_label": [vocab[str(n)] for n in batch[column]]}

        ds = ds.map(to_index, batched=True, desc=f"{spec.name}/{split}: labels")
        return standard_single(ds, id_col, "_label", spec, split)

    return select
