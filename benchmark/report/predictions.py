"""Per-clip test predictions: read from each run's ``test_predictions.csv`` artefact, and turned into the
seeds × clips correctness-difference matrix of a paired comparison (``clipstats``).

``load_predictions`` reads every kept run's artefact once. A local artefact store (``file://``, what a
suite writes by default) is read in place, with no copy; any other store is downloaded run by run into a
temporary folder. A run without the artefact (logged before it existed, or a failed upload) simply has no
predictions, and its comparisons fall back to the paired t over seeds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from benchmark.tracking import artifacts

PREDICTION_TABLE_COLUMNS = ["config_hash", "clip_id", "label", "pred", "p_label"]


def _local_dir(artifact_uri: str) -> Path | None:
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def _read(run_id: str, artifact_uri: str, tracking_uri: str, tmp: Path) -> dict[str, np.ndarray] | None:
    local = _local_dir(artifact_uri)
    if local is not None:
        path = local / artifacts.PREDICTIONS_CSV
        return artifacts.read_predictions(path) if path.is_file() else None
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifacts.PREDICTIONS_CSV,
                                                   dst_path=str(tmp / run_id), tracking_uri=tracking_uri)
    except Exception:  # noqa: BLE001 - a run without the artefact has no predictions; the report says so
        return None
    return artifacts.read_predictions(Path(path))


def load_predictions(table: pd.DataFrame, tracking_uri: str) -> pd.DataFrame:
    """PREDICTION_TABLE_COLUMNS for every row of ``table`` (columns run_id, config_hash, artifact_uri) whose
    run has a ``test_predictions.csv``; sorted by config hash and clip id."""
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for run_id, config_hash, uri in zip(table["run_id"], table["config_hash"], table["artifact_uri"],
                                            strict=True):
            cols = _read(str(run_id), str(uri), tracking_uri, Path(tmp))
            if cols is not None and len(cols["clip_id"]):
                frames.append(pd.DataFrame({"config_hash": config_hash, **cols}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            PREDICTION_TABLE_COLUMNS, (str, str, "int64", "int64", float), strict=True)})
    return pd.concat(frames, ignore_index=True).sort_values(["config_hash", "clip_id"], kind="mergesort") \
        .reset_index(drop=True)[PREDICTION_TABLE_COLUMNS]


def correctness(predictions: pd.DataFrame | None) -> dict[str, pd.Series]:
    """config hash -> per-clip correctness (1.0 when pred == label), indexed by clip id, sorted; only for runs
    of single-label tasks (a multi-label run logs pred = -1: its metric does not split over clips)."""
    if predictions is None or predictions.empty:
        return {}
    out = {}
    for config_hash, rows in predictions.groupby("config_hash", sort=True):
        if (rows["pred"] < 0).any() or rows["clip_id"].duplicated().any():
            continue
        out[str(config_hash)] = pd.Series((rows["pred"] == rows["label"]).to_numpy(float),
                                          index=rows["clip_id"].to_numpy()).sort_index()
    return out


def clip_matrix(pairs: Sequence[tuple[str, str, float]], correct: Mapping[str, pd.Series]) -> np.ndarray | None:
    """``D [n_pairs, n_clips]``, treatment minus control correctness per clip, row i from pair i ``(treatment
    hash, control hash, ...)``; None unless every run of every pair has predictions on the same clip ids."""
    if not pairs:
        return None
    series = [(correct.get(t), correct.get(c)) for t, c, *_ in pairs]
    if any(s is None for pair in series for s in pair):
        return None
    clips = series[0][0].index
    if any(not s.index.equals(clips) for pair in series for s in pair):
        return None
    return np.stack([t.to_numpy() - c.to_numpy() for t, c in series])
