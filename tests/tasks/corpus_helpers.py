"""Small real corpora on disk, as a user would have them: audio files written with soundfile in the
layouts of tasks/sources (class folders, a manifest, a HEAR task directory) and a parquet "hub" copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("cat", "dog")  # sorted: class folders and the HEAR vocabulary give the same indices
FREQS = {"cat": 300.0, "dog": 1200.0}
SECONDS = 0.5
PER_SPLIT = {"train": 4, "val": 2, "test": 2}  # clips a class


def tone(path: Path, label: str, index: int, seconds: float = SECONDS, sr: int = 16000, fmt: str | None = None) -> Path:
    """A tone of the class's frequency plus seeded noise: learnable, and different for every clip."""
    rng = np.random.default_rng([sum(map(ord, label)), index])
    t = np.arange(int(round(seconds * sr))) / sr
    wave = 0.3 * np.sin(2 * np.pi * FREQS[label] * t) + 0.05 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, format=fmt)
    return path


def clip_names() -> list[tuple[str, str, str]]:
    """(split, label, file name) of every clip: names unique across the corpus."""
    return [(split, label, f"{label}-{split}-{i}.wav")
            for split, n in PER_SPLIT.items() for label in CLASSES for i in range(n)]


def class_folders(root: Path, splits: bool = True) -> Path:
    """root/{train,validation,test}/<class>/*.wav, or root/<class>/*.wav without split folders."""
    folder = {"train": "train", "val": "validation", "test": "test"}
    for k, (split, label, name) in enumerate(clip_names()):
        tone(root / folder[split] / label / name if splits else root / label / name, label, k)
    return root


def hear_task(root: Path, kfold: bool = False, multilabel: bool = False, sr: int = 16000,
              meta: dict | None = None) -> Path:
    """A HEAR task directory: trainvaltest (the clips of `clip_names`) or 5 folds of 2 clips a class."""
    names = ["fold00", "fold01", "fold02", "fold03", "fold04"] if kfold else ["train", "valid", "test"]
    split_of = {"train": "train", "val": "valid", "test": "test"}
    files: dict[str, dict[str, list[str]]] = {n: {} for n in names}
    if kfold:
        for k, (fold, label, i) in enumerate((f, lab, i) for f in names for lab in CLASSES for i in range(2)):
            name = f"{label}-{fold}-{i}.wav"
            tone(root / str(sr) / fold / name, label, k, sr=sr)
            files[fold][name] = [label, "dog"] if multilabel and i == 1 else [label]
    else:
        for k, (split, label, name) in enumerate(clip_names()):
            tone(root / str(sr) / split_of[split] / name, label, k, sr=sr)
            files[split_of[split]][name] = [label]
    for name, entries in files.items():
        (root / f"{name}.json").write_text(json.dumps(entries))
    (root / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(CLASSES)))
    metadata = {"task_name": root.name, "version": "test", "embedding_type": "scene",
                "prediction_type": "multilabel" if multilabel else "multiclass",
                "split_mode": "new_split_kfold" if kfold else "trainvaltest", "nfolds": 5 if kfold else None,
                "sample_duration": SECONDS, "evaluation": ["top1_acc"], **(meta or {})}
    (root / "task_metadata.json").write_text(json.dumps(metadata))
    return root


def manifest(root: Path, multilabel: bool = True, with_split: bool = True, sep: str = ";") -> Path:
    """root/metadata.csv with file_name, label (several joined by `sep` on some rows) and split."""
    rows = ["file_name,label,split" if with_split else "file_name,label"]
    split_name = {"train": "train", "val": "validation", "test": "test"}
    for k, (split, label, name) in enumerate(clip_names()):
        name = name.replace(".wav", ".flac") if k % 2 else name
        tone(root / "audio" / name, label, k, fmt="FLAC" if k % 2 else "WAV")
        labels = f"{label}{sep}dog" if multilabel and k % 3 == 0 else label
        rows.append(f"audio/{name},{labels}" + (f",{split_name[split]}" if with_split else ""))
    path = root / "metadata.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def task_yaml(path: Path, **fields) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(fields))
    return path


def hub_copy(data_dir: Path, name: str, string_labels: bool = False) -> Path:
    """A local copy of a hub dataset in its parquet schema: data/{train,validation,test}-00000-of-00001.parquet
    with an `audio` column typed as HF Audio (bytes) and `label` a ClassLabel (or the class names as strings)."""
    from tasks_helpers import write_parquet

    hub_split = {"train": "train", "val": "validation", "test": "test"}
    by_split: dict[str, dict[str, list]] = {}
    for k, (split, label, file) in enumerate(clip_names()):
        path = tone(data_dir / ".audio" / file, label, k)
        rows = by_split.setdefault(hub_split[split], {"file": [], "audio": [], "label": []})
        rows["file"].append(file)
        rows["audio"].append({"bytes": path.read_bytes(), "path": file})
        rows["label"].append(label if string_labels else CLASSES.index(label))
    for split, columns in by_split.items():
        write_parquet(data_dir / name / "data" / f"{split}-00000-of-00001.parquet", columns,
                      class_labels=None if string_labels else {"label": list(CLASSES)})
    return data_dir / name
