"""The one cache of a task: its decoded waveforms, as int16 in a memory-mapped Arrow IPC file.

Decode -> mono -> resample -> crop/pad (clip start) happens once per task and *cache unit*; every hop,
n_mels, window, filterbank and fold reads the same file, and features are computed per batch by the
model's first stage. Nothing is written per hop. A cache unit is one split of a task with official
splits, and the whole task for a k-fold task (ESC-50's five folds read one file: a fold's split is a
list of rows of it, a few KB of JSON beside it, found again by its own key).

    <cache>/features/<task>/waveforms-<unit>-<fp>.arrow   clip_id, label(s), waveform int16 [N]
    <cache>/features/<task>/rows-<split>-f<fold>-<fp>.json rows of a k-fold task's split in that file
    <cache>/features/<task>/waveforms-<unit>-<fp>.fit.json how many clips were cropped / padded (`fit_counts`)
    <cache>/features/<task>/stats-<fp>.json                the train split's log-mel mean / std

Format: int16 at the task's rate, `x = k / 32768`. For PCM-16 sources at the task's rate (the embedded
tasks, Speech Commands, NSynth) that is lossless: libsndfile decodes them to exactly k / 32768. Audio that
is resampled or down-mixed (ESC-50 at 44.1 kHz, AudioSet/FSD50K FLAC) is rounded to the nearest step: white
noise 98 dB below a full-scale sine (about 68 dB below a clip at -30 dBFS RMS), far under any recording's
noise floor. Half the bytes of float32, and a 1 ms hop costs no disk at all.

Writing is atomic: the file is written to `<name>.tmp-<pid>` and renamed when complete, so a killed
build leaves no cache file (its temporary is removed by the next build). A clip that fails to decode
raises `BadClipError` naming the task, split, clip id, its row and, where known, the parquet file and row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.audio import BadClipError, decode_mono, fit_length
from tasks.cache import digest, feature_dir
from tasks.columns import read_column
from tasks.data import load_split, source_identity, split_origin
from tasks.registry import SPLITS, TaskSpec

CODE_VERSION = "waveforms-v2"  # v1 (`features-v1`): float32 waveforms and a log-mel file per hop, keyed per fold
SCALE = 32768.0  # int16 full scale: x = k / SCALE
WRITE_BYTES = 64 * 2**20  # waveform bytes per record batch written (bounded memory for 30 s clips)


def quantise(wave: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 (round to nearest; +1.0 clips to 32767 / 32768)."""
    return np.clip(np.rint(np.asarray(wave, dtype=np.float64) * SCALE), -32768, 32767).astype(np.int16)


def dequantise(k: np.ndarray) -> torch.Tensor:
    """int16 [..., N] -> float32 tensor k / 32768 (exact: both steps are exact in float32)."""
    return torch.from_numpy(np.asarray(k, dtype=np.float32)) / SCALE


def _label_col(spec: TaskSpec) -> str:
    return "label" if spec.label_kind == "single" else "labels"


def cache_unit(spec: TaskSpec, split: str) -> str:
    """The cache file a split reads: its own for official splits, one for all folds of a k-fold task."""
    return "folds" if spec.folds is not None else split


def _unit_fp(spec: TaskSpec, unit: str, sample_rate: int, num_samples: int, source_id: str) -> str:
    return digest(dict(stage="waveforms", source=source_id, task=spec.name, unit=unit, sr=sample_rate,
                       num_samples=num_samples, code=CODE_VERSION))


def _unit_path(spec: TaskSpec, unit: str, fp: str) -> Path:
    return feature_dir(spec.name) / f"waveforms-{unit}-{fp}.arrow"


def _rows_path(spec: TaskSpec, split: str, fold: int | None, unit_fp: str) -> Path:
    return feature_dir(spec.name) / f"rows-{split}-f{fold}-{digest(dict(unit=unit_fp, split=split, fold=fold))}.json"


class WaveformSet:
    """One split's clips from a waveform cache: `waveforms(pos)` -> float32 [B, N], `targets`, `clip_ids`.

    Reads are zero-copy views of the memory-mapped file; pickling keeps only the path and rows, so
    DataLoader workers reopen the file (the pages are shared through the OS cache, not copied)."""

    def __init__(self, spec: TaskSpec, split: str, fold: int | None, path: Path, rows: np.ndarray | None,
                 fingerprint: str):
        self.spec, self.split, self.fold, self.path, self.fingerprint = spec, split, fold, Path(path), fingerprint
        self._open()
        self.rows = np.arange(self._n_file) if rows is None else np.asarray(rows, dtype=np.int64)
        self.num_samples = int(self._views[0].shape[1]) if self._views else 0
        table = self._table
        self.clip_ids: list[str] = [table.column("clip_id")[int(r)].as_py() for r in self.rows] \
            if rows is not None else table.column("clip_id").to_pylist()
        if spec.label_kind == "single":
            self.targets = torch.tensor(table.column("label").to_numpy()[self.rows], dtype=torch.long)
        else:
            self.targets = torch.zeros(len(self.rows), spec.num_classes)
            labels = table.column("labels").to_pylist()
            for i, r in enumerate(self.rows):
                self.targets[i, labels[int(r)]] = 1.0

    def _open(self) -> None:
        import pyarrow as pa

        self._table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        self._views, starts = [], [0]
        for chunk in self._table.column("waveform").chunks:  # fixed_size_list<int16>[N]: one flat view per chunk
            self._views.append(chunk.flatten().to_numpy(zero_copy_only=True).reshape(len(chunk), -1))
            starts.append(starts[-1] + len(chunk))
        self._starts, self._n_file = np.asarray(starts), starts[-1]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_table", "_views")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return len(self.rows)

    def waveforms(self, positions: Any) -> torch.Tensor:
        """Clips at `positions` (0..len-1) as float32 [B, N]."""
        rows = self.rows[np.asarray(positions, dtype=np.int64).reshape(-1)]
        chunk = np.searchsorted(self._starts, rows, side="right") - 1
        out = np.empty((len(rows), self.num_samples), dtype=np.int16)
        for k, (c, r) in enumerate(zip(chunk, rows, strict=True)):
            out[k] = self._views[c][r - self._starts[c]]
        return dequantise(out)


# ------------------------------------------------------------------------------------------ building
def _remove_stale_temporaries(path: Path) -> None:
    """Temporaries of builds that were killed (their process is gone): a restart begins clean."""
    for tmp in path.parent.glob(path.name + ".tmp-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def unit_schema(spec: TaskSpec, num_samples: int) -> Any:
    """The Arrow schema of a cache file: clip_id, label (int) or labels (list of int), waveform int16 [N]."""
    import pyarrow as pa

    label_type = pa.int64() if spec.label_kind == "single" else pa.list_(pa.int64())
    return pa.schema([("clip_id", pa.string()), (_label_col(spec), label_type),
                      ("waveform", pa.list_(pa.int16(), num_samples))])


def unit_batch(schema: Any, ids: list[str], labels: list, waves: np.ndarray) -> Any:
    """One record batch of a cache file: `waves` int16 [k, N] beside their ids and labels."""
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(waves).reshape(-1), type=pa.int16())
    return pa.record_batch([pa.array(ids, pa.string()), pa.array(labels, schema.field(1).type),
                            pa.FixedSizeListArray.from_arrays(flat, waves.shape[1])], schema=schema)


def _write_unit(path: Path, spec: TaskSpec, tables: list[tuple[str, Any, Any]], sample_rate: int,
                num_samples: int) -> None:
    """Decode every clip of `tables` ([(split, table, origin)]) into `path`, atomically."""
    import pyarrow as pa

    label_col = _label_col(spec)
    schema = unit_schema(spec, num_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    rows_per_batch = max(1, WRITE_BYTES // (2 * num_samples))
    fit = {"task": spec.name, "sample_rate": sample_rate, "num_samples": num_samples, "clips": 0, "cropped": 0,
           "padded": 0}
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for split, table, origin in tables:
                where = f"task {spec.name!r} split {split!r}"
                ids = read_column(table, "clip_id").to_pylist()
                labels = read_column(table, label_col).to_pylist()
                audio = table.select_columns(["audio"]).with_format("arrow")
                for start in range(0, len(ids), rows_per_batch):
                    stop = min(start + rows_per_batch, len(ids))
                    column = audio[start:stop]["audio"].to_pylist()
                    waves = np.empty((stop - start, num_samples), dtype=np.int16)
                    for k, clip in enumerate(column):
                        i = start + k
                        try:
                            wave = decode_mono(clip, str(ids[i]), sample_rate, where=where)
                        except BadClipError as err:
                            raise BadClipError(f"{err} [row {i} of the split; {origin(i)}]") from None
                        fit["clips"] += 1
                        fit["cropped"] += wave.shape[-1] > num_samples
                        fit["padded"] += wave.shape[-1] < num_samples
                        waves[k] = quantise(fit_length(wave, num_samples).numpy())
                    writer.write_batch(unit_batch(schema, ids[start:stop], labels[start:stop], waves))
        _fit_path(path).write_text(json.dumps(fit))  # before the cache file: a cache never lacks its counts
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fit_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".arrow") + ".fit.json")


def fit_counts(spec: TaskSpec, sample_rate: int | None = None) -> dict[str, int] | None:
    """How many of a task's cached clips were longer (cropped) or shorter (padded) than its clip length, summed
    over its cache units (the newest cache of each, at `sample_rate`, default the task's); None when no waveform
    cache of the task has been built here. Counted as the cache is built, on the decoded, resampled clip."""
    rate = sample_rate or spec.sample_rate
    num_samples = int(round(spec.clip_seconds * rate))
    newest: dict[str, tuple[float, dict]] = {}
    for file in feature_dir(spec.name).glob("waveforms-*.fit.json"):
        fit = json.loads(file.read_text())
        unit = file.name.removeprefix("waveforms-").rsplit("-", 1)[0]
        if (fit.get("sample_rate"), fit.get("num_samples")) != (rate, num_samples):
            continue
        if not file.with_name(file.name.removesuffix(".fit.json") + ".arrow").is_file():
            continue  # the cache it counted was deleted
        mtime = file.stat().st_mtime
        if unit not in newest or mtime > newest[unit][0]:
            newest[unit] = (mtime, fit)
    if not newest:
        return None
    return {k: sum(int(f[k]) for _, f in newest.values()) for k in ("clips", "cropped", "padded")}


def load_waveforms(spec: TaskSpec, split: str, fold: int | None, sample_rate: int,
                   data_dir: str | os.PathLike | None = None) -> WaveformSet:
    """The cached waveforms of one split (built on first use; see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec.check_fold(fold)
    num_samples = int(round(spec.clip_seconds * sample_rate))
    unit = cache_unit(spec, split)
    source_id = source_identity(spec, data_dir)
    if source_id is not None:  # fast path: no parquet opened when the cache (and the fold's rows) exist
        fp = _unit_fp(spec, unit, sample_rate, num_samples, source_id)
        path, rows_path = _unit_path(spec, unit, fp), _rows_path(spec, split, fold, fp)
        if path.is_file() and (spec.folds is None or rows_path.is_file()):
            rows = None if spec.folds is None else np.asarray(json.loads(rows_path.read_text())["rows"])
            return WaveformSet(spec, split, fold, path, rows, fp)
    members = [(s, fold if spec.folds is None else 1) for s in (SPLITS if spec.folds is not None else (split,))]
    tables = {}
    for s, f in members:
        table, source_id = load_split(spec, s, f, data_dir)
        tables[s] = (table, split_origin(spec, table, data_dir))
    fp = _unit_fp(spec, unit, sample_rate, num_samples, source_id)
    path = _unit_path(spec, unit, fp)
    if not path.is_file():
        _write_unit(path, spec, [(s, t, o) for s, (t, o) in tables.items()], sample_rate, num_samples)
    if spec.folds is None:
        return WaveformSet(spec, split, fold, path, None, fp)
    return WaveformSet(spec, split, fold, path, _fold_rows(spec, split, fold, path, fp, data_dir), fp)


def _fold_rows(spec: TaskSpec, split: str, fold: int | None, path: Path, fp: str,
               data_dir: str | os.PathLike | None) -> np.ndarray:
    """Rows of the k-fold task's cache that form `split` of `fold`, by clip id; stored beside the cache."""
    import pyarrow as pa

    rows_path = _rows_path(spec, split, fold, fp)
    if rows_path.is_file():
        return np.asarray(json.loads(rows_path.read_text())["rows"])
    ids = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all().column("clip_id").to_pylist()
    where = {clip: i for i, clip in enumerate(ids)}
    if len(where) != len(ids):
        dup = next(c for c in ids if ids.count(c) > 1)
        raise BadClipError(f"task {spec.name!r}: clip id {dup!r} occurs more than once across its folds; "
                           f"a k-fold task's clips are found by id")
    table, _ = load_split(spec, split, fold, data_dir)
    wanted = read_column(table, "clip_id").to_pylist()
    missing = [c for c in wanted if c not in where]
    if missing:
        raise BadClipError(f"task {spec.name!r} split {split!r} fold {fold}: clip(s) {missing[:3]} are not in "
                           f"the task's waveform cache {path} (the folds do not cover the same clips)")
    rows = [where[c] for c in wanted]
    tmp = rows_path.with_name(f"{rows_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"task": spec.name, "split": split, "fold": fold, "rows": rows}))
    os.replace(tmp, rows_path)
    return np.asarray(rows)
