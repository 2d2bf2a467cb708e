"""A folder of class folders, the `datasets` `audiofolder` layout:

    root/{train,validation,test}/<class>/*.wav|flac|mp3|ogg     official splits (`valid`, `val` also read)
    root/<class>/*.wav|flac|mp3|ogg                            no splits: a seeded stratified split

Class index = position of the class folder name in sorted order. Files in nested folders below a class
folder belong to that class; other files (a README, a metadata.csv) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.sources.corpus import (
    AUDIO_SUFFIXES,
    SPLIT_NAMES,
    Clip,
    Corpus,
    TaskFileError,
    audio_files,
    file_error,
    register_source,
    relative,
)


@register_source("folder", required="root")
def read_folder(decl: Mapping[str, Any]) -> Corpus:
    root = Path(decl["root"])
    if not root.is_dir():
        raise file_error(decl["_file"], "root", str(root), "an existing directory of class folders")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in top if p.name.lower() in SPLIT_NAMES]
    clips: list[Clip] = []
    if split_dirs:
        others = [p.name for p in top if p not in split_dirs]
        if others:
            raise file_error(root, "split folder", others[0], f"one of {sorted(SPLIT_NAMES)} beside the split "
                             f"folders {[p.name for p in split_dirs]} (a tree has split folders or class folders, "
                             f"not both)")
        for split_dir in split_dirs:
            clips += _class_clips(root, split_dir, SPLIT_NAMES[split_dir.name.lower()])
        rule = "the corpus's split folders (" + ", ".join(p.name for p in split_dirs) + ")"
    else:
        clips = _class_clips(root, root, None)
        rule = ""
    if not clips:
        raise TaskFileError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in class folders "
                            f"(expected root/<class>/*.wav or root/{{train,validation,test}}/<class>/*.wav)")
    classes = tuple(sorted({c.labels[0] for c in clips}))
    return Corpus(root=root, clips=clips, classes=classes, multi=False, rule=rule)


def _class_clips(root: Path, parent: Path, split: str | None) -> list[Clip]:
    loose = [p for p in parent.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
    if loose:
        raise file_error(relative(loose[0], root), "class", "(none)",
                         f"an audio file inside a class folder of {parent} (files directly in it have no class)")
    clips = []
    for class_dir in sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in audio_files(class_dir):
            clips.append(Clip(path=path, rel=relative(path, root), labels=(class_dir.name,), split=split))
    return clips
