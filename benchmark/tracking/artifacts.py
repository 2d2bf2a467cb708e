"""The run-artefact schema, written and read in one place.

Every finished MLflow run carries, at its artifact root:

- ``config.json``: ``{"config_hash", "config_version", "config": RunConfig.to_dict()}``
- ``per_class.csv``: ``class, metric, support`` (per-class test accuracy or AP; empty when undefined)
- for front-ends with importance scores (DiffRes): ``diffres_examples.npz`` with the arrays
  ``EXAMPLE_KEYS`` (mel ``[N, T, F]``, score ``[N, T]``, merged ``[N, T', F]``, resolution_enc
  ``[N, T', F]``) and ``diffres_examples.png``, the figure :func:`draw_examples` makes of them.
- ``test_predictions.csv``: one row per test clip of the run's result (the best-on-val model, or the
  averaged one): ``clip_id, label, pred, p_label`` — the clip's id in its task, its label and the
  predicted class (single-label tasks; -1 for multi-label ones, whose metric does not split over clips)
  and the predicted probability of the label. The report's clip-level statistics read these
  (:func:`read_predictions`).

Writers return ``name -> bytes`` for ``TrackedRun.log_artifacts``; readers take a local file. The
report draws its DiffRes figure with the same :func:`draw_examples` as the per-run PNG. numpy only at
import time; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFIG_JSON = "config.json"
PER_CLASS_CSV = "per_class.csv"
EXAMPLES_NPZ = "diffres_examples.npz"
EXAMPLES_PNG = "diffres_examples.png"
EXAMPLE_KEYS = ("mel", "score", "merged", "resolution_enc")
PREDICTIONS_CSV = "test_predictions.csv"
PREDICTION_COLUMNS = ("clip_id", "label", "pred", "p_label")


class ArtifactError(ValueError):
    """A run artefact does not follow the schema (names the file and what was expected)."""


# ------------------------------------------------------------------------------------------ writers
def config_json(config: Mapping[str, object], config_hash: str, config_version: str) -> bytes:
    payload = {"config_hash": config_hash, "config_version": config_version, "config": dict(config)}
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def per_class_csv(class_names: Sequence[str], scores: Sequence[float], support: Sequence[int]) -> bytes:
    """Columns: class, metric (per-class accuracy or AP on test; empty when undefined), support."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["class", "metric", "support"])
    for name, score, n in zip(class_names, scores, support):
        writer.writerow([name, "" if score != score else f"{score:.6f}", int(n)])
    return buf.getvalue().encode()


def predictions_csv(clip_ids: Sequence[str], labels: Sequence[int], preds: Sequence[int],
                    p_label: Sequence[float]) -> bytes:
    """``test_predictions.csv`` (module docstring): one row per test clip, in the split's order."""
    if not len(clip_ids) == len(labels) == len(preds) == len(p_label):
        raise ArtifactError(f"{PREDICTIONS_CSV}: columns of unequal length ({len(clip_ids)} clip ids, "
                            f"{len(labels)} labels, {len(preds)} predictions, {len(p_label)} probabilities)")
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(PREDICTION_COLUMNS)
    for row in zip(clip_ids, labels, preds, p_label):
        writer.writerow([row[0], int(row[1]), int(row[2]), f"{float(row[3]):.5f}"])
    return buf.getvalue().encode()


def diffres_examples(mel: np.ndarray, score: np.ndarray, merged: np.ndarray, resolution_enc: np.ndarray,
                     *, title: str = "", hop_ms: float | None = None) -> dict[str, bytes]:
    """``diffres_examples.npz`` and ``diffres_examples.png`` (every clip, drawn by :func:`draw_examples`)."""
    arrays = dict(zip(EXAMPLE_KEYS, (mel, score, merged, resolution_enc), strict=True))
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    png = io.BytesIO()
    fig = draw_examples(arrays, title=title, hop_ms=hop_ms, max_examples=mel.shape[0])
    fig.savefig(png, format="png", dpi=80, metadata={"Software": None})
    return {EXAMPLES_NPZ: npz.getvalue(), EXAMPLES_PNG: png.getvalue()}


# ------------------------------------------------------------------------------------------ readers
def read_examples(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``diffres_examples.npz``; :class:`ArtifactError` when one of EXAMPLE_KEYS is missing."""
    with np.load(path) as npz:
        if not set(EXAMPLE_KEYS) <= set(npz.files):
            raise ArtifactError(f"{EXAMPLES_NPZ} has arrays {sorted(npz.files)}; expected {', '.join(EXAMPLE_KEYS)}")
        return {k: npz[k] for k in EXAMPLE_KEYS}


# ----------------------------------------------------------------------------------------- drawing
def draw_examples(arrays: Mapping[str, np.ndarray], *, title: str = "", hop_ms: float | None = None,
                  max_examples: int = 2) -> Figure:
    """One column per clip: log-mel input, importance score over input frames, merged log-mel,
    resolution encoding. Draws with the caller's matplotlib style (the report's seaborn theme)."""
    from matplotlib.figure import Figure

    n = min(max_examples, arrays["mel"].shape[0])
    fig = Figure(figsize=(5.6 * n, 2.3 * 4 + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(4, n, squeeze=False))
    frame = "input frame" if hop_ms is None else f"input frame (hop {hop_ms:g} ms)"
    for i in range(n):
        mel, score = arrays["mel"][i], np.asarray(arrays["score"][i]).reshape(-1)  # [T, F], [T]
        merged, enc = arrays["merged"][i], arrays["resolution_enc"][i]  # [T', F]
        ax = axes[:, i]
        for a in ax:
            a.grid(False)
        ax[0].imshow(mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax[0].set_title(f"example {i}: log-mel input (T = {mel.shape[0]})")
        ax[0].set_xlabel(frame)
        ax[0].set_ylabel("mel bin")
        ax[1].plot(np.arange(score.size), score, color="tab:blue", linewidth=1.2)
        ax[1].set_xlim(-0.5, score.size - 0.5)
        ax[1].set_ylim(0, max(1.05, float(np.nanmax(score)) * 1.05) if score.size else 1.05)
        ax[1].set_title("importance score")
        ax[1].set_xlabel(frame)
        ax[1].set_ylabel("score")
        ax[2].imshow(merged.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax[2].set_title(f"merged log-mel (T' = {merged.shape[0]})")
        ax[2].set_xlabel("output frame")
        ax[2].set_ylabel("mel bin")
        ax[3].imshow(enc.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        ax[3].set_title("resolution encoding")
        ax[3].set_xlabel("output frame")
        ax[3].set_ylabel("encoding dim")
    if title:
        fig.suptitle(title)
    return fig


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """A run's ``test_predictions.csv`` -> {column: array} (clip_id as str, label / pred int, p_label float)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != PREDICTION_COLUMNS:
        raise ArtifactError(f"{path}: expected the header {','.join(PREDICTION_COLUMNS)}, "
                            f"got {','.join(rows[0]) if rows else 'an empty file'}")
    cols = list(zip(*rows[1:])) if len(rows) > 1 else [(), (), (), ()]
    try:
        return {"clip_id": np.asarray(cols[0], dtype=str), "label": np.asarray(cols[1], dtype=np.int64),
                "pred": np.asarray(cols[2], dtype=np.int64), "p_label": np.asarray(cols[3], dtype=np.float64)}
    except ValueError as err:
        raise ArtifactError(f"{path}: a label, pred or p_label value is not a number ({err})") from None
