"""The run-artefact schema: writers' bytes, the upload through MLflow, the reader, the one drawing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from benchmark.tracking import artifacts
from benchmark.tracking import store as tracking


def _examples(n: int = 2, t: int = 40, t_out: int = 20, f: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"mel": rng.random((n, t, f)), "score": rng.random((n, t)), "merged": rng.random((n, t_out, f)),
            "resolution_enc": rng.random((n, t_out, f))}


def test_artifacts_are_uploaded(tracking_uri, tmp_path):
    run = tracking.start_run(tracking_uri, "quick", run_name="x", params={}, tags={})
    files = {artifacts.PER_CLASS_CSV: artifacts.per_class_csv(["a", "b"], [0.5, float("nan")], [4, 0])}
    files.update(artifacts.diffres_examples(*_examples().values(), title="t"))
    run.log_artifacts(files)
    run.finish()
    client = MlflowClient(tracking_uri)
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert names == {"per_class.csv", "diffres_examples.npz", "diffres_examples.png"}
    local = Path(client.download_artifacts(run.run_id, "diffres_examples.npz", str(tmp_path)))
    with np.load(local) as npz:
        assert {k: npz[k].shape for k in npz.files} == {"mel": (2, 40, 8), "score": (2, 40), "merged": (2, 20, 8),
                                                        "resolution_enc": (2, 20, 8)}
    rows = list(csv.DictReader(io.StringIO(files["per_class.csv"].decode())))
    assert rows == [{"class": "a", "metric": "0.500000", "support": "4"}, {"class": "b", "metric": "", "support": "0"}]
    assert files["diffres_examples.png"][:8] == b"\x89PNG\r\n\x1a\n"
    arrays = artifacts.read_examples(local)
    assert list(arrays) == list(artifacts.EXAMPLE_KEYS)
    for key, value in _examples().items():
        np.testing.assert_array_equal(arrays[key], value)


def test_per_class_csv_bytes():
    data = artifacts.per_class_csv(["dog", "a,b"], [1.0, 0.25], [3, 1])
    assert data == b'class,metric,support\r\ndog,1.000000,3\r\n"a,b",0.250000,1\r\n'


def test_config_json_round_trips():
    data = artifacts.config_json({"task": "toy", "lr": 0.001}, "abc123abc123", "1")
    assert json.loads(data) == {"config_hash": "abc123abc123", "config_version": "1",
                                "config": {"task": "toy", "lr": 0.001}}
    assert data.endswith(b"}\n")


def test_examples_without_the_schema_arrays_are_rejected(tmp_path):
    path = tmp_path / artifacts.EXAMPLES_NPZ
    np.savez(path, mel=np.zeros((1, 4, 2)), score=np.zeros((1, 4)))
    with pytest.raises(artifacts.ArtifactError, match=r"has arrays \['mel', 'score'\]; expected mel, score, merged"):
        artifacts.read_examples(path)


@pytest.mark.parametrize(("n_clips", "max_examples", "columns"), [(3, 2, 2), (1, 2, 1), (4, 4, 4)])
def test_one_drawing_one_column_per_clip(n_clips, max_examples, columns):
    fig = artifacts.draw_examples(_examples(n_clips), title="run x", hop_ms=5.0, max_examples=max_examples)
    axes = fig.get_axes()
    assert len(axes) == 4 * columns
    assert [ax.get_title() for ax in axes[:4 * columns:columns]] == [
        "example 0: log-mel input (T = 40)", "importance score", "merged log-mel (T' = 20)", "resolution encoding"]
    assert axes[0].get_xlabel() == "input frame (hop 5 ms)"
    assert fig.get_suptitle() == "run x"
