"""A HEAR task directory (what hear-preprocess writes and hear-eval-kit reads):

    task_metadata.json     task_name, embedding_type (scene | event), prediction_type (multiclass |
                           multilabel), split_mode (trainvaltest | presplit_kfold | new_split_kfold),
                           nfolds, sample_duration, evaluation
    labelvocabulary.csv    idx,label (class index = idx)
    train.json, valid.json, test.json          trainvaltest: {"file.wav": ["label", ...]}
    fold00.json ... fold{k-1}.json             k-fold tasks
    <sample_rate>/<split>/<file>               the audio, one folder per rate

Scene tasks only: an `event` task (labels with timestamps) is refused. A k-fold task becomes folds 1..k
(HEAR's fold00 = fold 1): fold f is test, fold (f mod k) + 1 validation, the others train. The rate folder
read is the declared `sample_rate` when the task has it, else the highest rate it has (resampled down);
every clip in it must be at that rate.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.sources.corpus import Clip, Corpus, TaskFileError, file_error, inside, register_source

METADATA = "task_metadata.json"
VOCABULARY = "labelvocabulary.csv"
SPLIT_MODES = ("trainvaltest", "presplit_kfold", "new_split_kfold")
PREDICTION_TYPES = {"multiclass": False, "multilabel": True}
TRAINVALTEST = {"train": "train", "valid": "val", "test": "test"}


def _json_object(path: Path, expected: str) -> dict[str, Any]:
    """The JSON object in `path`, or an error naming the file and what it should hold."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise file_error(path, "(file)", "malformed JSON", f"{expected} ({err})") from None
    if not isinstance(value, dict):
        raise file_error(path, "(file)", type(value).__name__, expected)
    return value


def read_metadata(root: Path) -> dict[str, Any]:
    path = root / METADATA
    if not path.is_file():
        raise file_error(path, METADATA, None, "a HEAR task directory has a task_metadata.json (missing)")
    meta = _json_object(path, "a JSON object")
    for key in ("task_name", "embedding_type", "prediction_type", "split_mode", "sample_duration"):
        if key not in meta:
            raise file_error(path, key, None, f"a value (task_metadata.json needs {key!r})")
    if meta["embedding_type"] != "scene":
        raise file_error(path, "embedding_type", meta["embedding_type"],
                         "'scene' (event tasks, with timestamped labels, are out of scope)")
    if meta["prediction_type"] not in PREDICTION_TYPES:
        raise file_error(path, "prediction_type", meta["prediction_type"], f"one of {list(PREDICTION_TYPES)}")
    if meta["split_mode"] not in SPLIT_MODES:
        raise file_error(path, "split_mode", meta["split_mode"], f"one of {list(SPLIT_MODES)}")
    duration = meta["sample_duration"]
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or duration <= 0):
        raise file_error(path, "sample_duration", duration, "seconds > 0 (or null)")
    if meta["split_mode"] != "trainvaltest":
        nfolds = meta.get("nfolds")
        if isinstance(nfolds, bool) or not isinstance(nfolds, int) or nfolds < 3:
            raise file_error(path, "nfolds", nfolds, f"an integer >= 3 for split_mode {meta['split_mode']!r}")
    return meta


def read_vocabulary(root: Path) -> tuple[str, ...]:
    path = root / VOCABULARY
    if not path.is_file():
        raise file_error(path, VOCABULARY, None, "a HEAR task directory has a labelvocabulary.csv (missing)")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"idx", "label"} <= set(rows[0]):
        raise file_error(path, "idx,label", sorted(rows[0]) if rows else None, "a header idx,label and one row a class")
    by_idx = {}
    for i, row in enumerate(rows):
        try:
            by_idx[int(row["idx"])] = str(row["label"])
        except (TypeError, ValueError):
            raise file_error(f"{path} line {i + 2}", "idx", row["idx"], "an integer") from None
    if sorted(by_idx) != list(range(len(rows))):
        raise file_error(path, "idx", sorted(by_idx)[:5], f"0..{len(rows) - 1}, each once")
    return tuple(by_idx[i] for i in range(len(rows)))


def rate_folder(root: Path, wanted: int | None) -> int:
    rates = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates:
        raise file_error(root, "<sample_rate>/", None, "a folder of audio per sample rate, e.g. 16000/ (none found)")
    return wanted if wanted in rates else rates[-1]


@register_source("hear", required="root")
def read_hear(decl: Mapping[str, Any]) -> Corpus:
    root = Path(decl["root"])
    if not root.is_dir():
        raise file_error(decl["_file"], "root", str(root), "an existing HEAR task directory")
    meta = read_metadata(root)
    classes = read_vocabulary(root)
    multi = PREDICTION_TYPES[meta["prediction_type"]]
    rate = rate_folder(root, decl.get("sample_rate"))
    kfold = meta["split_mode"] != "trainvaltest"
    names = ([f"fold{k:02d}" for k in range(meta["nfolds"])] if kfold else list(TRAINVALTEST))
    vocab = set(classes)
    clips, meta_files = [], [root / METADATA, root / VOCABULARY]
    for k, split in enumerate(names):
        path = root / f"{split}.json"
        meta_files.append(path)
        if not path.is_file():
            raise file_error(path, f"{split}.json", None,
                             f"a split file for split_mode {meta['split_mode']!r} (missing)")
        entries = _json_object(path, "a JSON object {\"file.wav\": [\"label\", ...]}")
        folder = root / str(rate) / split
        for name in sorted(entries):
            labels = entries[name]
            if not isinstance(labels, list) or not labels or not all(
                    isinstance(x, (str, int)) and not isinstance(x, bool) for x in labels):
                raise file_error(path, name, labels, "a non-empty list of label names")
            labels = [str(x) for x in labels]  # labelvocabulary.csv holds names as text: 60 is "60"
            unknown = [x for x in labels if x not in vocab]
            if unknown:
                raise file_error(path, name, unknown[0], f"a label of {VOCABULARY} ({len(classes)} classes)")
            if not multi and len(set(labels)) != 1:
                raise file_error(path, name, labels, "one label (prediction_type is multiclass)")
            target = inside(folder, name, path, "file")
            rel = target.relative_to(root.resolve()).as_posix()
            clips.append(Clip(path=target, rel=rel, labels=tuple(dict.fromkeys(labels)),
                              split=None if kfold else TRAINVALTEST[split], fold=k + 1 if kfold else None))
    if not clips:
        raise TaskFileError(f"{root}: the split files list no clips")
    rule = (f"HEAR folds fold00..fold{meta['nfolds'] - 1:02d} as folds 1..{meta['nfolds']}: fold f test, "
            f"fold (f mod {meta['nfolds']})+1 validation, the others train" if kfold
            else "HEAR's train / valid / test split files")
    return Corpus(root=root, clips=clips, classes=classes, multi=multi, folds=meta["nfolds"] if kfold else None,
                  meta_files=meta_files, clip_seconds=meta["sample_duration"], rule=rule, rate_folder=rate)
