"""How a user names a corpus: a task YAML or a shorthand, turned into a checked declaration.

    name: birds                  # names cache folders (letters, digits, '-', '_', '.')
    source: folder               # folder | manifest | hear | hub (tasks/sources/)
    root: data/birds             # relative paths are relative to the YAML's folder
    clip_seconds: 5              # optional: HEAR's sample_duration, else the longest clip
    sample_rate: 16000           # optional (16000)
    metric: accuracy             # optional: accuracy for single-label, mAP for multi-label tasks
    split_seed: 0                # optional: the seeded stratified split of a corpus without splits
    on_bad_file: refuse          # refuse (default: an error lists them) | skip (the report states it)

Shorthands: `folder:/path/to/dir`, `hear:/path/to/dir`, `manifest:/path/to/metadata.csv` (the name is
the folder's or file's name). A shorthand takes the YAML's optional fields after a `?`, joined by `&`:
`folder:/data/birds?on_bad_file=skip&clip_seconds=5` (values read as YAML scalars). The reference a run
stores is canonical: the YAML's absolute path, or `<source>:<absolute path>` with its options sorted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from tasks.sources import SOURCES, folder, hear, hubid, manifest  # noqa: F401  (register the readers)
from tasks.sources.corpus import TaskFileError, file_error, shorthands

DEFAULT_SAMPLE_RATE = 16000
KEYS = {"name", "source", "root", "manifest", "label_column", "label_separator", "classes", "clip_seconds",
        "sample_rate", "metric", "split_seed", "on_bad_file", "repo", "audio_column", "splits", "data_files",
        "multi_label", "id_column"}
OPTION_KEYS = KEYS - {"source", "root", "manifest"}  # what a shorthand may set after '?'
BAD_FILE_POLICIES = ("refuse", "skip")


def _shorthand(text: str) -> tuple[str, str, str] | None:
    """(kind, path, options) of a shorthand reference; None for anything else."""
    kind, sep, rest = str(text).partition(":")
    if not sep or kind not in shorthands():
        return None
    path, _, options = rest.partition("?")
    return kind, path, options


def is_user_ref(ref: str) -> bool:
    text = str(ref)
    return text.endswith((".yaml", ".yml")) or _shorthand(text) is not None


def _options(ref: str, text: str) -> dict[str, Any]:
    """`key=value&...` after a shorthand's '?', each key one of OPTION_KEYS, each value a YAML scalar."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key not in OPTION_KEYS:
            raise file_error(ref, key or item, value or None,
                             f"an option key=value with key one of {sorted(OPTION_KEYS)}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise file_error(ref, key, value, "a YAML scalar") from None
    return out


def canonical_ref(ref: str, base_dir: str | os.PathLike | None = None) -> str:
    """The absolute form of a reference; relative paths are taken from `base_dir` (default: the working
    directory; a suite YAML passes its own folder). A shorthand's options come back sorted by key."""
    parts = _shorthand(str(ref))
    path = parts[1] if parts else str(ref)
    absolute = (Path(base_dir or ".") / Path(path).expanduser()).resolve()
    if not parts:
        return str(absolute)
    options = "&".join(sorted(filter(None, parts[2].split("&"))))
    return f"{parts[0]}:{absolute}" + (f"?{options}" if options else "")


def directory_hint(path: str | os.PathLike) -> str:
    """What to write for a corpus given as a bare directory (a task is a YAML file or a shorthand)."""
    return (f"{path} is a directory, not a task: for a corpus of class folders pass folder:{path} (or hear:{path} "
            f"for a HEAR task directory; a manifest is manifest:FILE; docs/tasks.md)")


def declaration(ref: str) -> dict[str, Any]:
    """The task's declared fields, checked, with paths made absolute; `_file` names where they came from."""
    ref = canonical_ref(ref)
    parts = _shorthand(ref)
    if parts:
        kind, path, options = parts
        target = Path(path)
        field_name = shorthands()[kind]  # a folder is named after itself, a manifest after its folder
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", target.name if target.is_dir() else target.parent.name or target.stem)
        decl = {"name": name.lstrip(".-_") or "corpus", "source": kind, field_name: path, **_options(ref, options),
                "_file": ref}
    else:
        file = Path(ref)
        if file.is_dir():
            raise TaskFileError(directory_hint(file))
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
    check(decl)
    return decl


def check(decl: dict[str, Any]) -> None:
    """Each declared field's type and range; raises TaskFileError naming the file, field and value."""
    from tasks.registry import TASKS

    file = decl["_file"]
    name = decl.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise file_error(file, "name", name, "letters, digits, '.', '-' or '_' (it names cache folders)")
    if name in TASKS:
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
