"""One short training end to end through the console script on a small real corpus of each user source,
and the same clips in two layouts (HEAR, class folders) giving the same cache and the same run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from corpus_helpers import class_folders, hear_task, hub_copy, manifest, task_yaml

from benchmark.cli import main
from tasks import get_task
from tasks.wavecache import load_waveforms

FLAGS = ["--epochs", "1", "--batch-size", "8", "--n-mels", "16", "--no-progress"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'm.db'}"


def _run(capsys, store: str, task: str, tmp_path: Path, *extra: str) -> dict:
    code = main(["run", "--task", task, *FLAGS, *extra, "--tracking-uri", store,
                 "--checkpoint-dir", str(tmp_path / "ckpt")])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["reused"] is False and 0.0 <= result["test_metric"] <= 1.0
    return result


def _multi_manifest(tmp_path: Path) -> str:
    return str(task_yaml(tmp_path / "multi.yaml", name="multi", source="manifest",
                         manifest=str(manifest(tmp_path / "manifest")), label_separator=";"))


def _hub(tmp_path: Path) -> str:
    hub_copy(tmp_path / "data", "hubbirds")
    return str(task_yaml(tmp_path / "hub.yaml", name="hubbirds", source="hub", clip_seconds=0.5,
                         repo="someone/birds@0123456789abcdef0123456789abcdef01234567"))


SOURCES = {  # a small real corpus of each kind -> the reference a user passes to --task
    "folder-splits": lambda tmp: f"folder:{class_folders(tmp / 'split-tree')}",
    "folder-flat": lambda tmp: f"folder:{class_folders(tmp / 'flat-tree', splits=False)}",
    "manifest-multi": _multi_manifest,
    "hear-5fold": lambda tmp: f"hear:{hear_task(tmp / 'hear-5fold', kfold=True)}",
    "hub": _hub,
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_one_short_training_per_source(capsys, tmp_path, store, source):
    task = SOURCES[source](tmp_path)
    extra = ["--fold", "1"] if source == "hear-5fold" else []
    if source == "hub":  # the class names come from the local copy's ClassLabel, found through --data-dir
        extra = ["--data-dir", str(tmp_path / "data")]
    result = _run(capsys, store, task, tmp_path, "--frontend", "avgpool", "--reduction-rate", "0.5", *extra)
    assert "DIFFRES_DATA_DIR" not in os.environ  # --data-dir is the command's, not the process's
    run = mlflow.MlflowClient(store).get_run(result["run_id"])
    assert run.data.tags["metric_name"] == ("mAP" if source == "manifest-multi" else "accuracy")
    assert run.data.params["task"] == task and (source == "hub" or get_task(task).local.ref == task)


def test_a_hub_task_counts_its_cropped_clips_when_its_cache_is_built(tmp_path, monkeypatch):
    import pandas as pd

    from benchmark.report.runs import data_notes
    from tasks.wavecache import fit_counts

    hub_copy(tmp_path / "data", "hubcrop")
    task = str(task_yaml(tmp_path / "hub.yaml", name="hubcrop", source="hub", clip_seconds=0.25,
                         repo="someone/birds@0123456789abcdef0123456789abcdef01234567"))
    monkeypatch.setenv("DIFFRES_DATA_DIR", str(tmp_path / "data"))
    spec = get_task(task)
    assert fit_counts(spec) is None  # nothing measured before the cache exists, and the report says so
    assert "cropped / padded counts: no waveform cache of it here" in data_notes(pd.Series([task]))[0]
    sizes = [len(load_waveforms(spec, split, None, 16000, data_dir=tmp_path / "data")) for split in ("train", "val",
                                                                                                     "test")]
    # every clip of the copy is 0.5 s, longer than the declared 0.25 s: all cropped, none padded
    assert fit_counts(spec) == {"clips": sum(sizes), "cropped": sum(sizes), "padded": 0}
    assert f"waveform cache: {sum(sizes)} of {sum(sizes)} clips longer (cropped), 0 shorter (padded)" in \
        data_notes(pd.Series([task]))[0]


def test_the_same_clips_as_hear_and_class_folders_give_the_same_cache_and_run(capsys, tmp_path, store):
    hear = f"hear:{hear_task(tmp_path / 'as-hear')}"
    folders = f"folder:{class_folders(tmp_path / 'as-folders')}"
    for split in ("train", "val", "test"):
        a = load_waveforms(get_task(hear), split, None, 16000)
        b = load_waveforms(get_task(folders), split, None, 16000)
        assert a.path != b.path and len(a) == len(b) > 0
        assert np.array_equal(a.waveforms(range(len(a))).numpy(), b.waveforms(range(len(b))).numpy())
        assert a.targets.tolist() == b.targets.tolist()
    first = _run(capsys, store, hear, tmp_path, "--frontend", "diffres", "--reduction-rate", "0.75")
    second = _run(capsys, store, folders, tmp_path, "--frontend", "diffres", "--reduction-rate", "0.75")
    assert first["config_hash"] != second["config_hash"]  # two tasks, two identities
    metrics = [mlflow.MlflowClient(store).get_run(r["run_id"]).data.metrics for r in (first, second)]
    for name in ("train_loss", "val_metric", "test_metric"):
        assert metrics[0][name] == metrics[1][name], name


MINI = """
name: mini
base: {backbone: auto, epochs: 2, batch_size: 8, n_mels: 16, lr: 0.003}
grids:
  - frontend: [spec]
    seed: [0, 1]
  - frontend: [diffres, avgpool, diffres-noenc]
    reduction_rate: [0.5]
    seed: [0, 1]
"""


def test_a_suite_on_a_user_task_and_its_report(capsys, tmp_path, store):
    root = class_folders(tmp_path / "c")
    (root / "train/cat/cat-train-3.wav").write_bytes(b"corrupt")
    task = str(task_yaml(tmp_path / "mine.yaml", name="mine", source="folder", root="c", clip_seconds=0.4,
                         on_bad_file="skip"))
    suite = tmp_path / "mini.yaml"
    suite.write_text(MINI)
    common = ["--suite", str(suite), "--task", task, "--storage", str(tmp_path / "optuna.journal")]
    assert main(["plan", "--suite", "yours", "--task", task]) == 0
    assert "plan for suite yours-mine-audiocnn_tiny: 50 points on 1 tasks" in capsys.readouterr().out
    assert main(["reproduce", *common, "--tracking-uri", store, "--n-workers", "1", "--no-progress", "--allow-dirty",
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--results-dir", str(tmp_path / "results"),
                 "--reports-dir", str(tmp_path / "reports"), "--include-stale"]) == 0
    assert "mini-mine-audiocnn_tiny: 8/8 done" in capsys.readouterr().out
    report = (tmp_path / "reports" / "mini-mine-audiocnn_tiny" / "REPORT.md").read_text()
    assert f"your corpus `{task}` (task mine, 0.4 s clips)" in report
    assert "15 longer (cropped), 0 shorter (padded)" in report
    assert "1 unreadable file(s) skipped (on_bad_file: skip): train/cat/cat-train-3.wav" in report
    for claim in ("### Claim 1 ", "### Claim 2 ", "### Claim 5b "):
        assert claim in report


def test_a_suite_yaml_names_a_task_yaml_beside_it(tmp_path, monkeypatch):
    from benchmark.study import load_suite

    class_folders(tmp_path / "c")
    task_yaml(tmp_path / "mine.yaml", name="mine", source="folder", root="c")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nbase: {task: mine.yaml, epochs: 1}\ngrids: [{frontend: [spec, avgpool], "
                     "reduction_rate: [0.5]}]\n")
    monkeypatch.chdir(tmp_path.parent)  # the task YAML is found beside the suite, not in the working directory
    loaded = load_suite(suite)
    assert [cfg.task for cfg in loaded.configs] == [str(tmp_path / "mine.yaml")] * 2
    assert len({cfg.config_hash for cfg in loaded.configs}) == 2


@pytest.mark.parametrize("command", ["plan", "create", "worker", "status", "study", "reproduce", "report"])
def test_every_suite_command_takes_a_task(command):
    from benchmark.cli import build_parser

    args = build_parser().parse_args([command, "--suite", "yours", "--task", "folder:/data/birds"])
    assert args.task == "folder:/data/birds"
