"""Decisions that count clips: runs logged to a real MLflow file store with a ``test_predictions.csv`` artefact
are decided by the seeds × clips bootstrap; without the artefact, by the paired t over seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from report_helpers import Study

from benchmark import report
from benchmark.report import build, predictions, verdicts
from benchmark.tracking import artifacts

N_CLIPS, SEEDS = 200, range(5)


def _correctness(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(avgpool, diffres) per-clip correctness of one seed. DiffRes gets clips 0 and 1 right that avgpool gets
    wrong on every seed, and clip 10 + seed too on odd seeds: per-seed differences 0.01 / 0.015, consistent over
    seeds (the paired t decides), but carried by 2-3 clips of 200 (resampling the clips does not)."""
    rng = np.random.default_rng(seed)
    control = (rng.random(N_CLIPS) < 0.7).astype(int)
    gained = [0, 1] + ([10 + seed] if seed % 2 else [])
    control[gained] = 0
    treatment = control.copy()
    treatment[gained] = 1
    return control, treatment


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow store (SQLite tracking, ``file:`` artifact store in tmp_path): diffres and avgpool at δ = 0.5
    on 5 seeds, each run with its test_predictions.csv logged through the MLflow client."""
    root = tmp_path_factory.mktemp("clips")
    s = Study(root, suite="clips")
    labels = np.random.default_rng(99).integers(0, 4, N_CLIPS)
    clip_ids = [f"clip-{j:03d}" for j in range(N_CLIPS)]
    for seed in SEEDS:
        for fe, correct in zip(("avgpool", "diffres"), _correctness(seed), strict=True):
            preds = np.where(correct == 1, labels, (labels + 1) % 4)
            rid = s.log("t", fe, 10.0, 0.5, seed, accuracy=float(correct.mean()))
            (root / rid).mkdir()
            path = root / rid / artifacts.PREDICTIONS_CSV
            path.write_bytes(artifacts.predictions_csv(clip_ids, labels, preds, np.full(N_CLIPS, 0.5)))
            s.client.log_artifact(rid, str(path))
    return s


def test_load_runs_reads_each_runs_predictions(store):
    runs = report.load_runs("clips", store.uri)
    table = runs.predictions
    assert list(table.columns) == predictions.PREDICTION_TABLE_COLUMNS and len(table) == 10 * N_CLIPS
    assert set(table["config_hash"]) == set(runs.table["config_hash"])
    correct = predictions.correctness(table)
    accuracy = runs.table.set_index("config_hash")["test_metric"]
    assert {h: c.mean() for h, c in correct.items()} == pytest.approx(accuracy.to_dict())


def test_the_decision_switches_from_paired_t_to_the_bootstrap(store):
    runs = report.load_runs("clips", store.uri)
    [claim2] = report.check_claims(runs, report.paper_claims("2"))
    c = claim2.comparisons.iloc[0]
    assert (c["rule"], c["n_clips"], c["n_pairs"]) == (verdicts.RULE_CLIPS, N_CLIPS, 5)
    assert c["mean_diff"] == pytest.approx(0.012)
    # seeds agree (paired t: holds), but 2-3 clips of 200 carry the difference (bootstrap: inconclusive)
    assert (c["verdict_t"], c["verdict"]) == ("holds", "inconclusive")
    assert c["p_verdict_t"] < 0.01 < 0.025 < c["p_verdict"]
    assert c["ci_low_bonferroni"] <= 0.0 < c["ci_high_bonferroni"]  # the percentile interval agrees
    assert c["p_exact"] == pytest.approx(1 / 32)  # 5 positive differences: the sign-flip floor 2^-5

    bare = report.load_runs("clips", store.uri, with_predictions=False)
    [claim2] = report.check_claims(bare, report.paper_claims("2"))
    c = claim2.comparisons.iloc[0]
    assert (c["rule"], c["n_clips"], c["verdict"], c["verdict_t"]) == (verdicts.RULE_T, 0, "holds", "holds")

    one_missing = dataclasses.replace(runs, predictions=runs.predictions[
        runs.predictions["config_hash"] != runs.table["config_hash"].iloc[0]])
    [claim2] = report.check_claims(one_missing, report.paper_claims("2"))
    assert claim2.comparisons.iloc[0]["rule"] == verdicts.RULE_T  # every pair needs its clips

    multi = dataclasses.replace(runs, predictions=runs.predictions.assign(pred=-1))  # mAP tasks log pred = -1
    assert predictions.correctness(multi.predictions) == {}


def test_claims_csv_keeps_its_columns_and_adds_the_clip_ones(store, tmp_path):
    runs = report.load_runs("clips", store.uri)
    assert report.COMPARISON_COLUMNS[-len(verdicts.CLIP_COLUMNS):] == verdicts.CLIP_COLUMNS
    assert report.CONTROL_COLUMNS[-len(verdicts.CLIP_COLUMNS):] == verdicts.CLIP_COLUMNS
    path = build.write_predictions(runs, tmp_path / "predictions.parquet")
    written = pd.read_parquet(path)
    assert list(written.columns) == predictions.PREDICTION_TABLE_COLUMNS and len(written) == 10 * N_CLIPS
