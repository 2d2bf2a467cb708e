"""What a task is: a frozen `TaskSpec` per task and the registry that names them.

A task is data (HEAR style): where its clips come from, how they split into train / val / test,
its label kind and metric. The runner never branches on a task's name; everything that differs
lives in the spec. Adding a task is one function returning a `TaskSpec` plus `@register_task`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from diffres.registry import Registry

SPLITS: tuple[str, str, str] = ("train", "val", "test")

# Selects one of train/val/test from the loaded source splits (name -> datasets.Dataset) and returns
# a table with the standard columns: "clip_id" (str), "audio" ({"bytes", "path"}), and "label" (int,
# single-label tasks) or "labels" (list[int], multi-label tasks).
SelectFn = Callable[[Mapping[str, Any], str, "int | None", "TaskSpec"], Any]


@dataclass(frozen=True)
class ParquetSource:
    """Parquet files in one directory tree: a Hugging Face hub repo at a pinned revision, a local
    copy of it (same relative paths), or the cache folder an embedded generator writes to.

    `data_files` maps a source split name to glob patterns relative to the repo root.
    `repo=None` means there is no usable hub copy: a local copy is required.
    """

    repo: str | None
    revision: str
    data_files: Mapping[str, tuple[str, ...]]
    audio_column: str = "audio"
    note: str = ""

    def hub_patterns(self) -> dict[str, list[str]]:
        """`hf://datasets/<repo>@<revision>/<pattern>` for every source split."""
        if self.repo is None:
            raise ValueError("this source has no hub repo; a local copy is required")
        rev = self.revision.replace("/", "%2F")  # refs/convert/parquet must be URL-quoted in hf:// paths
        return {k: [f"hf://datasets/{self.repo}@{rev}/{p}" for p in pats] for k, pats in self.data_files.items()}

    def download_command(self, local_dir: str) -> str:
        """The `hf download` command that copies exactly the files this source reads (not the whole
        repo: AudioSet's unbal_train or the other Speech Commands version are not needed)."""
        if self.repo is None:
            raise ValueError("this source has no hub repo; a local copy is required")
        include = " ".join(f"--include '{p}'" for pats in self.data_files.values() for p in pats)
        return (f"hf download --repo-type dataset {self.repo} --revision {self.revision} {include} "
                f"--local-dir {local_dir}")


@dataclass(frozen=True)
class TaskSize:
    """How big a hub task is, for `diffres-bench plan`: the clips of each split as this registry forms them
    (for a k-fold task: of one fold) and the GB its hub (or local) copy takes on disk. `note` says where the
    numbers come from: they are planning figures, not checked against the data (the loader counts the
    clips it gets and never relies on these)."""

    train: int
    val: int
    test: int
    download_gb: float
    note: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """Everything the runner needs to know about one task.

    `source` is a human-readable description (repo, revision, generator); `protocol` says how
    train/val/test are formed. Model selection uses `val` only; `test` is reported.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    label_kind: Literal["single", "multi"]
    metric: Literal["accuracy", "mAP"]
    sample_rate: int
    clip_seconds: float
    folds: int | None
    source: str
    protocol: str
    parquet: ParquetSource = field(repr=False)
    select: SelectFn = field(repr=False, compare=False)
    embedded: Any = field(default=None, repr=False, compare=False)  # EmbeddedGenerator for embedded tasks
    splits: tuple[str, ...] = SPLITS
    # A control task tests the benchmark itself (tasks/controls.py): "positive" where learned
    # resolution must beat uniform reduction, "negative" where no front-end may beat another.
    control: Literal["positive", "negative"] | None = None
    size: TaskSize | None = field(default=None, compare=False)  # hub tasks: planning figures (`clips`)
    # A user's corpus (tasks/usertask.py): the parquet index of its files, written under its fingerprint
    local: Any = field(default=None, repr=False)
    # The training recipe family (`benchmark.training.recipes`): a paper task's ("esc50", "nsynth", ...), or
    # "quick", the small CPU recipe of the embedded tasks and a user's corpus. Task data: no code branches on
    # a task's name.
    recipe: str = "quick"

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: {len(self.class_names)} class_names for num_classes={self.num_classes}"
            )
        if self.label_kind not in ("single", "multi"):
            raise ValueError(f"task {self.name!r}: label_kind={self.label_kind!r}, expected 'single' or 'multi'")
        if self.control not in (None, "positive", "negative"):
            raise ValueError(f"task {self.name!r}: control={self.control!r}, expected None, 'positive' or 'negative'")

    @property
    def chance_level(self) -> float:
        """Accuracy of guessing uniformly (single-label, balanced classes)."""
        return 1.0 / self.num_classes

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None

    @property
    def is_local(self) -> bool:
        """Nothing to download: an embedded task (generated here) or a user's corpus (read in place)."""
        return self.embedded is not None or self.local is not None

    def clips(self, split: str) -> int | None:
        """Clips in `split` (train / val / test; one fold's): the generator's sizes for an embedded task, the
        registry's planning figure (`size`) for a hub task, None when neither is known."""
        if self.is_local:
            return dict((self.embedded or self.local).sizes)[split]
        return getattr(self.size, split) if self.size is not None else None

    @property
    def download_gb(self) -> float:
        """GB to download before the task can run: 0 for an embedded task (generated here)."""
        return 0.0 if self.is_local or self.size is None else self.size.download_gb

    def check_fold(self, fold: int | None) -> None:
        """k-fold tasks need fold in 1..k; other tasks take no fold."""
        if self.folds is None:
            if fold is not None:
                raise ValueError(f"task {self.name!r} has official splits and no folds: pass fold=None, "
                                 f"got fold={fold!r}")
        elif fold is None or not (1 <= int(fold) <= self.folds):
            raise ValueError(
                f"task {self.name!r} is a {self.folds}-fold task: pass fold in 1..{self.folds}, got fold={fold!r}"
            )


TASKS: Registry[TaskSpec] = Registry("task", "tasks")  # data only: a task's spec is its info


def register_task(fn: Callable[[], TaskSpec]) -> Callable[[], TaskSpec]:
    """Decorator: call `fn()` once and register the returned spec under its name."""
    spec = fn()
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"@register_task function {fn.__name__} must return a TaskSpec, got {type(spec).__name__}")
    TASKS.add(spec.name, spec)
    return fn


def get_task(name: str) -> TaskSpec:
    """A registered task by name, or a user's corpus by a task YAML path or a shorthand such as
    `folder:/path/to/dir` (`tasks.usertask`; its errors name the file, field and value)."""
    if name in TASKS:
        return TASKS.info(name)
    from tasks.taskref import is_user_ref
    from tasks.usertask import user_task

    if is_user_ref(name):
        return user_task(name)
    if Path(name).expanduser().is_dir():
        from tasks.taskref import directory_hint

        raise KeyError(directory_hint(name))
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}; or your own corpus: a task "
                   f"YAML path, hear:DIR, folder:DIR or manifest:FILE (docs/tasks.md)")


def list_tasks() -> list[str]:
    return TASKS.names()
