"""The paper's tasks, read from Hugging Face hub parquet files (no loading scripts, no
trust_remote_code) or from a local copy with the same layout and schema.

Revisions: this file was written on a machine with no access to the hub, so no commit hash could
be read. Each task pins its revision in a named constant; "main" (or a parquet-conversion ref)
is written where the hash is unknown — replace it with the commit hash you verified to make the
data immutable. The cache keys include the revision string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tasks.audio import clip_error
from tasks.audioset_classes import AUDIOSET_MIDS, AUDIOSET_NAMES
from tasks.data import read_column, require_columns
from tasks.registry import ParquetSource, TaskSpec, register_task

ESC50_REPO, ESC50_REVISION = "ashraq/esc50", "main"  # last commit seen on the hub page: e3e2a63 (short hash)
SPEECHCOMMANDS_REPO, SPEECHCOMMANDS_REVISION = "google/speech_commands", "refs/convert/parquet"
NSYNTH_REPO, NSYNTH_REVISION = "jg583/NSynth", "refs/convert/parquet"
AUDIOSET_REPO, AUDIOSET_REVISION = "agkphysics/AudioSet", "main"

ESC50_CLASSES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow", "rain", "sea_waves",
    "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water", "toilet_flush",
    "thunderstorm", "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing",
    "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells",
    "airplane", "fireworks", "hand_saw",
)  # fmt: skip
# HF speech_commands v0.02 ClassLabel order; index 35 is "_silence_", dropped for the 35-word task.
SPEECHCOMMANDS_WORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three",
    "four", "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin",
    "sheila", "tree", "wow", "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
NSYNTH_FAMILIES = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal",
)  # fmt: skip
FSD50K_NUM_CLASSES = 200


def _where(spec: TaskSpec, split: str) -> str:
    return f"task {spec.name!r} split {split!r}"


def standard_single(ds: Any, id_col: str, label_col: str, spec: TaskSpec, split: str) -> Any:
    """Keep (id, audio, label) as (clip_id, audio, label); every label must be in 0..C-1."""
    where = _where(spec, split)
    require_columns(ds, (id_col, spec.parquet.audio_column, label_col), where)
    labels = read_column(ds, label_col).to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= spec.num_classes)) if len(labels) else []
    if len(bad):
        i = int(bad[0])
        raise clip_error(where, str(ds[i][id_col]), label_col,
                         f"label {labels[i]} out of range 0..{spec.num_classes - 1} ({len(bad)} such clip(s))")
    ds = ds.select_columns([id_col, spec.parquet.audio_column, label_col])
    renames = {k: v for k, v in ((id_col, "clip_id"), (spec.parquet.audio_column, "audio"), (label_col, "label"))
               if k != v}
    return ds.rename_columns(renames) if renames else ds


def standard_multi(ds: Any, id_col: str, names_col: str, vocab: Mapping[str, int], spec: TaskSpec, split: str,
                   sep: str | None = None) -> Any:
    """Map a column of class names/MIDs (a list, or a `sep`-joined string) to "labels": list[int]."""
    import datasets

    where = _where(spec, split)
    require_columns(ds, (id_col, spec.parquet.audio_column, names_col), where)

    def to_indices(batch: dict) -> dict:
        out = []
        for clip_id, names in zip(batch[id_col], batch[names_col], strict=True):
            names = names.split(sep) if sep is not None else (names or [])
            unknown = [n for n in names if n not in vocab]
            if unknown:
                raise clip_error(where, str(clip_id), names_col, f"unknown class(es) {unknown[:3]}")
            if not names:
                raise clip_error(where, str(clip_id), names_col, "no labels")
            out.append(sorted({vocab[n] for n in names}))
        return {"labels": out}

    ds = ds.select_columns([id_col, spec.parquet.audio_column, names_col])
    features = datasets.Features({id_col: ds.features[id_col], spec.parquet.audio_column: ds.features[
        spec.parquet.audio_column], "labels": datasets.List(datasets.Value("int64"))})
    ds = ds.map(to_indices, batched=True, remove_columns=[names_col], features=features,
                desc=f"{spec.name}/{split}: labels")
    renames = {k: v for k, v in ((id_col, "clip_id"), (spec.parquet.audio_column, "audio")) if k != v}
    return ds.rename_columns(renames) if renames else ds


def official_select(mapping: Mapping[str, str], standardise):
    """select() for tasks with official train/val/test source splits: mapping split -> source name,
    then `standardise(ds, split, spec)`."""

    def select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
        return standardise(sources[mapping[split]], split, spec)

    return select


# ---------------------------------------------------------------- ESC-50 (5-fold cross-validation)
def esc50_fold_roles(fold: int, folds: int = 5) -> dict[str, int | list[int]]:
    """fold f is test, fold (f mod k) + 1 is validation, the rest train (folds numbered 1..k)."""
    val = fold % folds + 1
    return {"test": fold, "val": val, "train": [f for f in range(1, folds + 1) if f not in (fold, val)]}


def _esc50_select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
    ds = sources["train"]
    require_columns(ds, ("filename", "fold", "target", "audio"), _where(spec, split))
    roles = esc50_fold_roles(int(fold), spec.folds)
    wanted = roles[split] if split == "train" else [roles[split]]
    idx = np.flatnonzero(np.isin(read_column(ds, "fold").to_numpy(), wanted))
    return standard_single(ds.select(idx), "filename", "target", spec, split)


@register_task
def esc50() -> TaskSpec:
    return TaskSpec(
        name="esc50", num_classes=50, class_names=ESC50_CLASSES, label_kind="single", metric="accuracy",
        sample_rate=16000, clip_seconds=5.0, folds=5,
        source=f"hub {ESC50_REPO}@{ESC50_REVISION}: data/train-*.parquet (44.1 kHz WAV, columns filename, fold, "
               "target, category, audio)",
        protocol="5-fold CV on the official folds: fold f test, fold (f mod 5)+1 validation, other 3 train; "
                 "report the mean over f=1..5",
        parquet=ParquetSource(ESC50_REPO, ESC50_REVISION, {"train": ("data/train-*.parquet",)}),
        select=_esc50_select,
    )


# ---------------------------------------------------------------- Speech Commands v0.02 (35 words)
def _speechcommands_standardise(ds: Any, split: str, spec: TaskSpec) -> Any:
    require_columns(ds, ("file", "audio", "label"), _where(spec, split))
    keep = np.flatnonzero(read_column(ds, "label").to_numpy() != len(SPEECHCOMMANDS_WORDS))  # drop "_silence_"
    return standard_single(ds.select(keep), "file", "label", spec, split)


@register_task
def speechcommands() -> TaskSpec:
    return TaskSpec(
        name="speechcommands", num_classes=35, class_names=SPEECHCOMMANDS_WORDS, label_kind="single",
        metric="accuracy", sample_rate=16000, clip_seconds=1.0, folds=None,
        source=f"hub {SPEECHCOMMANDS_REPO}@{SPEECHCOMMANDS_REVISION} (parquet conversion of the script "
               "dataset): v0.02/{train,validation,test}/*.parquet, columns file, audio, label, is_unknown, "
               "speaker_id, utterance_id",
        protocol="official train / validation / test; 35 word classes, '_silence_' (label 35) dropped. "
                 "Caveat: HF's test split is the 4,890-clip v0.02 test archive, not the 11,005-clip "
                 "testing_list.txt the paper's code uses; for that protocol build a local copy in this schema",
        parquet=ParquetSource(
            SPEECHCOMMANDS_REPO, SPEECHCOMMANDS_REVISION,
            {"train": ("v0.02/train/*.parquet",), "validation": ("v0.02/validation/*.parquet",),
             "test": ("v0.02/test/*.parquet",)},
            note="parquet-conversion ref of a script dataset; availability not verified from here",
        ),
        select=official_select({"train": "train", "val": "validation", "test": "test"}, _speechcommands_standardise),
    )


# ---------------------------------------------------------------- NSynth (instrument family, pitch)
def _nsynth_spec(name: str, label_col: str, class_names: tuple[str, ...]) -> TaskSpec:
    return TaskSpec(
        name=name, num_classes=len(class_names), class_names=class_names, label_kind="single",
        metric="accuracy", sample_rate=16000, clip_seconds=4.0, folds=None,
        source=f"hub {NSYNTH_REPO}@{NSYNTH_REVISION}: default/{{train,validation,test}}/*.parquet (16 kHz, "
               f"4 s; columns id, ..., {label_col}, audio)",
        protocol=f"official train / valid / test; label = {label_col}",
        parquet=ParquetSource(
            NSYNTH_REPO, NSYNTH_REVISION,
            {"train": ("default/train/*.parquet",), "validation": ("default/validation/*.parquet",),
             "test": ("default/test/*.parquet",)},
            note="schema from the repo's dataset card; parquet-conversion ref not verified from here",
        ),
        select=official_select(
            {"train": "train", "val": "validation", "test": "test"},
            lambda ds, split, spec: standard_single(ds, "id", label_col, spec, split),
        ),
    )


@register_task
def nsynth_instrument() -> TaskSpec:
    return _nsynth_spec("nsynth-instrument", "instrument_family", NSYNTH_FAMILIES)


@register_task
def nsynth_pitch() -> TaskSpec:
    return _nsynth_spec("nsynth-pitch", "pitch", tuple(f"midi_{p}" for p in range(128)))


# ---------------------------------------------------------------- AudioSet (balanced train / eval)
AUDIOSET_VOCAB = {mid: i for i, mid in enumerate(AUDIOSET_MIDS)}


def audioset_is_val(video_id: str, percent: int = 10) -> bool:
    """Deterministic hold-out of the balanced train set for model selection (AudioSet has no
    official validation split; the paper's code selects on eval, which we avoid)."""
    return int(hashlib.sha1(video_id.encode()).hexdigest(), 16) % 100 < percent


def _audioset_select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
    ds = sources["eval" if split == "test" else "bal_train"]
    require_columns(ds, ("video_id", "audio", "labels"), _where(spec, split))
    if split != "test":
        is_val = np.array([audioset_is_val(v) for v in read_column(ds, "video_id").to_pylist()], dtype=bool)
        ds = ds.select(np.flatnonzero(is_val if split == "val" else ~is_val))
    return standard_multi(ds, "video_id", "labels", AUDIOSET_VOCAB, spec, split)


@register_task
def audioset() -> TaskSpec:
    return TaskSpec(
        name="audioset", num_classes=527, class_names=AUDIOSET_NAMES, label_kind="multi", metric="mAP",
        sample_rate=16000, clip_seconds=10.0, folds=None,
        source=f"hub {AUDIOSET_REPO}@{AUDIOSET_REVISION}: data/bal_train/*.parquet, data/eval/*.parquet "
               "(FLAC bytes; columns video_id, audio, labels = MID list, human_labels)",
        protocol="train = balanced train minus a 10 % hold-out (sha1(video_id) % 100 < 10) used as validation; "
                 "test = eval set. 527 classes in class_labels_indices.csv order",
        parquet=ParquetSource(
            AUDIOSET_REPO, AUDIOSET_REVISION,
            {"bal_train": ("data/bal_train/*.parquet",), "eval": ("data/eval/*.parquet",)},
            note="parquet layout of the repo's later revisions; the hash is not known here",
        ),
        select=_audioset_select,
    )


# ---------------------------------------------------------------- FSD50K (local copy only)
def _fsd50k_select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
    dev, ev = sources["dev"], sources["eval"]
    for name, ds in (("dev", dev), ("eval", ev)):
        require_columns(ds, ("fname", "labels", "audio"), f"task 'fsd50k' source {name!r}")
    require_columns(dev, ("split",), "task 'fsd50k' source 'dev'")
    # vocabulary.csv of FSD50K lists the 200 class names in alphabetical order, so the sorted set of
    # names found in dev + eval (every class occurs in both) reproduces its indices.
    names = sorted({n for ds in (dev, ev) for s in read_column(ds, "labels").to_pylist() for n in s.split(",")})
    if len(names) != FSD50K_NUM_CLASSES:
        raise clip_error("task 'fsd50k'", "*", "labels",
                         f"found {len(names)} distinct class names in dev+eval, expected {FSD50K_NUM_CLASSES}")
    vocab = {n: i for i, n in enumerate(names)}
    if split == "test":
        ds = ev
    else:
        ds = dev.select(np.flatnonzero(read_column(dev, "split").to_numpy(zero_copy_only=False) == split))
    return standard_multi(ds, "fname", "labels", vocab, spec, split, sep=",")


@register_task
def fsd50k() -> TaskSpec:
    return TaskSpec(
        name="fsd50k", num_classes=FSD50K_NUM_CLASSES,
        class_names=tuple(f"fsd50k_{i:03d}" for i in range(FSD50K_NUM_CLASSES)),
        label_kind="multi", metric="mAP", sample_rate=16000, clip_seconds=30.0, folds=None,
        source="local copy only (no verified parquet+audio hub repo; nguyenvulebinh/fsd50k stores mp3 bytes): "
               "<dir>/fsd50k/dev/*.parquet and eval/*.parquet with columns fname, labels (comma-separated "
               "class names as in FSD50K.ground_truth/dev.csv and eval.csv), split (dev: train|val), audio",
        protocol="official dev train / dev val (model selection) / eval; class index = position in "
                 "vocabulary.csv (alphabetical); class_names are those indices",
        parquet=ParquetSource(None, "local", {"dev": ("dev/*.parquet",), "eval": ("eval/*.parquet",)},
                              note="no parquet+audio hub copy was verified"),
        select=_fsd50k_select,
    )

