"""The paper's tasks, read from Hugging Face hub parquet files (no loading scripts, no
trust_remote_code) or from a local copy with the same layout and schema.

Revisions are full commit hashes, so the data cannot change under a result. They were NOT read from
the live hub: this project's machines cannot reach it. Each comes from public references found
offline (code and manifests that pin the same repo at that commit, and the repos' own cards); the
note on each constant says which. Before a paper run, on a connected machine, check each one:

    from huggingface_hub import HfApi
    api = HfApi()
    info = api.dataset_info("ashraq/esc50", revision="e3e2a63ffff66b9a9735524551e3818e96af03ee")
    info.sha                                    # the same hash back: the commit exists
    sorted(s.rfilename for s in info.siblings)  # the parquet layout the task's patterns expect

A wrong hash fails loudly (the hub answers 404 and `load_dataset` raises), never silently. The
cache keys include the revision, so changing one re-decodes the clips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tasks.audio import clip_error
from tasks.audioset_classes import AUDIOSET_MIDS, AUDIOSET_NAMES
from tasks.columns import read_column, require_columns
from tasks.registry import ParquetSource, TaskSize, TaskSpec, register_task
from tasks.splits import official_select, split_where, standard_multi, standard_single

# ashraq/esc50: data/train-0000{0,1}-of-00002-*.parquet, one "train" split of 2,000 clips; columns
# filename, fold, target, category, esc10, src_file, take, audio. Pinned at this hash by
# embeddings-benchmark/mteb's ESC-50 tasks; the hub's tree page showed it as main.
ESC50_REPO, ESC50_REVISION = "ashraq/esc50", "e3e2a63ffff66b9a9735524551e3818e96af03ee"
# google/speech_commands: at this commit the main branch itself holds parquet (no refs/convert/parquet):
# v0.02/train-0000{0..5}-of-00006.parquet, v0.02/validation-00000-of-00001.parquet,
# v0.02/test-00000-of-00001.parquet; columns file, audio, label (36 classes with _silence_), is_unknown,
# speaker_id, utterance_id. Seen as the hub-cache snapshot of several public code files.
SPEECHCOMMANDS_REPO, SPEECHCOMMANDS_REVISION = "google/speech_commands", "a751309c0fd613e8a5d30d77900f30e8b42bc2da"
# jg583/NSynth: data/train/batch_{0..34}.parquet, data/validation/validation.parquet, data/test/test.parquet
# (no default/ folder); columns as in the card's dataset_info: id, note, note_str, instrument,
# instrument_str, pitch, velocity, sample_rate, qualities, qualities_str, instrument_family,
# instrument_family_str, instrument_source, instrument_source_str, audio. The repo also ships an NSynth.py
# loading script, so `load_dataset("jg583/NSynth")` fails on datasets >= 4; we read the parquet files
# directly. Hash: main when the public copy of the card was crawled. The least certain pin here: only its
# short form 46ef0a7 ("Update README.md", the card page) could be found twice offline; the full hash
# came from one search of hub pages. Check it first (a wrong hash fails loudly with a 404).
NSYNTH_REPO, NSYNTH_REVISION = "jg583/NSynth", "46ef0a78600b5c7a48b2030fff798b8b2cddc1b7"
# agkphysics/AudioSet: the parquet-conversion commit; data/{bal_train,eval,unbal_train}/NN.parquet with
# columns video_id, audio, labels (MIDs), human_labels. Pinned at this hash by several public projects.
AUDIOSET_REPO, AUDIOSET_REVISION = "agkphysics/AudioSet", "0c609e8302cf139307f639c57652032af0a88041"

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

# Planning figures for `diffres-bench plan` (TaskSpec.size): clips per split as the selects below form them,
# and the GB of the files the task reads. None was measured here (no hub access); each note says its source.
_ESTIMATE = "estimated as clips x the WAV bytes of the stored format; not read from the hub"
SIZES = {
    "esc50": TaskSize(1200, 400, 400, 0.9, "2,000 clips of 5 s (400 per fold); " + _ESTIMATE + " (44.1 kHz 16-bit)"),
    "speechcommands": TaskSize(84_848, 9_982, 4_890, 3.4, "split sizes of HF's v0.02 card before `_silence_` is "
                               "dropped; " + _ESTIMATE + " (16 kHz 16-bit, 1 s)"),
    "nsynth": TaskSize(289_205, 12_678, 4_096, 39.2, "NSynth's official split sizes; " + _ESTIMATE
                       + " (16 kHz 16-bit, 4 s)"),
    "audioset": TaskSize(16_817, 1_868, 17_142, 49.8, "agkphysics/AudioSet card: bal_train 18,685 clips "
                         "(26.0 GB), eval 17,142 (23.8 GB); train / val = the 90 / 10 hold-out"),
    "fsd50k": TaskSize(36_796, 4_170, 10_231, 30.0, "FSD50K's official dev train / dev val / eval sizes; GB "
                       "approximate (the local copy's parquet of its Zenodo audio)"),
}


# ---------------------------------------------------------------- ESC-50 (5-fold cross-validation)
def esc50_fold_roles(fold: int, folds: int = 5) -> dict[str, int | list[int]]:
    """fold f is test, fold (f mod k) + 1 is validation, the rest train (folds numbered 1..k)."""
    val = fold % folds + 1
    return {"test": fold, "val": val, "train": [f for f in range(1, folds + 1) if f not in (fold, val)]}


def _esc50_select(sources: Mapping[str, Any], split: str, fold: int | None, spec: TaskSpec) -> Any:
    ds = sources["train"]
    require_columns(ds, ("filename", "fold", "target", "audio"), split_where(spec, split))
    roles = esc50_fold_roles(int(fold), spec.folds)
    wanted = roles[split] if split == "train" else [roles[split]]
    idx = np.flatnonzero(np.isin(read_column(ds, "fold").to_numpy(), wanted))
    return standard_single(ds.select(idx), "filename", "target", spec, split)


@register_task
def esc50() -> TaskSpec:
    return TaskSpec(
        name="esc50", recipe="esc50", num_classes=50, class_names=ESC50_CLASSES, label_kind="single", metric="accuracy",
        sample_rate=16000, clip_seconds=5.0, folds=5,
        source=f"hub {ESC50_REPO}@{ESC50_REVISION}: data/train-*.parquet (one split, 2,000 clips of 5 s, "
               "44.1 kHz WAV; columns filename, fold, target, category, esc10, src_file, take, audio)",
        protocol="5-fold CV on the official folds: fold f test, fold (f mod 5)+1 validation, other 3 train; "
                 "report the mean over f=1..5",
        parquet=ParquetSource(ESC50_REPO, ESC50_REVISION, {"train": ("data/train-*.parquet",)},
                              note="hash from public references, not checked against the live hub"),
        select=_esc50_select, size=SIZES["esc50"],
    )


# ---------------------------------------------------------------- Speech Commands v0.02 (35 words)
def _speechcommands_standardise(ds: Any, split: str, spec: TaskSpec) -> Any:
    require_columns(ds, ("file", "audio", "label"), split_where(spec, split))
    keep = np.flatnonzero(read_column(ds, "label").to_numpy() != len(SPEECHCOMMANDS_WORDS))  # drop "_silence_"
    return standard_single(ds.select(keep), "file", "label", spec, split)


@register_task
def speechcommands() -> TaskSpec:
    return TaskSpec(
        name="speechcommands", recipe="speechcommands", num_classes=35, class_names=SPEECHCOMMANDS_WORDS,
        label_kind="single",
        metric="accuracy", sample_rate=16000, clip_seconds=1.0, folds=None,
        source=f"hub {SPEECHCOMMANDS_REPO}@{SPEECHCOMMANDS_REVISION} (parquet on the main branch): "
               "v0.02/{train,validation,test}-*.parquet, columns file, audio, label, is_unknown, "
               "speaker_id, utterance_id",
        protocol="official train / validation / test; 35 word classes, '_silence_' (label 35) dropped. "
                 "Caveat: HF's test split is the 4,890-clip v0.02 test archive, not the 11,005-clip "
                 "testing_list.txt the paper's code uses; for that protocol build a local copy in this schema",
        parquet=ParquetSource(
            SPEECHCOMMANDS_REPO, SPEECHCOMMANDS_REVISION,
            {"train": ("v0.02/train-*.parquet",), "validation": ("v0.02/validation-*.parquet",),
             "test": ("v0.02/test-*.parquet",)},
            note="hash from public references, not checked against the live hub",
        ),
        select=official_select({"train": "train", "val": "validation", "test": "test"}, _speechcommands_standardise),
        size=SIZES["speechcommands"],
    )


# ---------------------------------------------------------------- NSynth (instrument family, pitch)
def _nsynth_spec(name: str, label_col: str, class_names: tuple[str, ...]) -> TaskSpec:
    return TaskSpec(
        name=name, recipe="nsynth", num_classes=len(class_names), class_names=class_names, label_kind="single",
        metric="accuracy", sample_rate=16000, clip_seconds=4.0, folds=None,
        source=f"hub {NSYNTH_REPO}@{NSYNTH_REVISION}: data/{{train,validation,test}}/*.parquet (16 kHz, "
               f"4 s; columns id, note, ..., pitch, ..., instrument_family, ..., audio; label {label_col}); "
               "the repo's NSynth.py script is not used",
        protocol=f"official train / valid / test; label = {label_col}",
        parquet=ParquetSource(
            NSYNTH_REPO, NSYNTH_REVISION,
            {"train": ("data/train/*.parquet",), "validation": ("data/validation/*.parquet",),
             "test": ("data/test/*.parquet",)},
            note="hash from public references, not checked against the live hub",
        ),
        select=official_select(
            {"train": "train", "val": "validation", "test": "test"},
            lambda ds, split, spec: standard_single(ds, "id", label_col, spec, split),
        ),
        size=SIZES["nsynth"],
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
    require_columns(ds, ("video_id", "audio", "labels"), split_where(spec, split))
    if split != "test":
        is_val = np.array([audioset_is_val(v) for v in read_column(ds, "video_id").to_pylist()], dtype=bool)
        ds = ds.select(np.flatnonzero(is_val if split == "val" else ~is_val))
    return standard_multi(ds, "video_id", "labels", AUDIOSET_VOCAB, spec, split)


@register_task
def audioset() -> TaskSpec:
    return TaskSpec(
        name="audioset", recipe="audioset", num_classes=527, class_names=AUDIOSET_NAMES, label_kind="multi",
        metric="mAP",
        sample_rate=16000, clip_seconds=10.0, folds=None,
        source=f"hub {AUDIOSET_REPO}@{AUDIOSET_REVISION}: data/bal_train/*.parquet, data/eval/*.parquet "
               "(FLAC bytes; columns video_id, audio, labels = MID list, human_labels)",
        protocol="train = balanced train minus a 10 % hold-out (sha1(video_id) % 100 < 10) used as validation; "
                 "test = eval set. 527 classes in class_labels_indices.csv order",
        parquet=ParquetSource(
            AUDIOSET_REPO, AUDIOSET_REVISION,
            {"bal_train": ("data/bal_train/*.parquet",), "eval": ("data/eval/*.parquet",)},
            note="hash from public references, not checked against the live hub",
        ),
        select=_audioset_select, size=SIZES["audioset"],
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
        name="fsd50k", recipe="fsd50k", num_classes=FSD50K_NUM_CLASSES,
        class_names=tuple(f"fsd50k_{i:03d}" for i in range(FSD50K_NUM_CLASSES)),
        label_kind="multi", metric="mAP", sample_rate=16000, clip_seconds=30.0, folds=None,
        source="local copy only (no verified parquet+audio hub repo; nguyenvulebinh/fsd50k stores mp3 bytes): "
               "<dir>/fsd50k/dev/*.parquet and eval/*.parquet with columns fname, labels (comma-separated "
               "class names as in FSD50K.ground_truth/dev.csv and eval.csv), split (dev: train|val), audio",
        protocol="official dev train / dev val (model selection) / eval; class index = position in "
                 "vocabulary.csv (alphabetical); class_names are those indices",
        parquet=ParquetSource(None, "local", {"dev": ("dev/*.parquet",), "eval": ("eval/*.parquet",)},
                              note="no parquet+audio hub copy was verified"),
        select=_fsd50k_select, size=SIZES["fsd50k"],
    )

