"""Every hub task read from a tiny local copy in its exact hub schema, through the same code path
(`data_dir` / DIFFRES_DATA_DIR), and the offline behaviour without a local copy."""

from __future__ import annotations

import pytest
import torch
from tasks_helpers import wav_bytes, write_parquet

from tasks import FeatureConfig, get_task, load_features
from tasks.data import TaskDataUnavailable, load_split
from tasks.hub import AUDIOSET_MIDS, SPEECHCOMMANDS_WORDS, audioset_is_val, esc50_fold_roles


def _esc50(root, folds=(1, 2, 3, 4, 5), per_fold=2, sr=44100, channels=1):
    """ashraq/esc50's layout: one train split in two shards, data/train-0000{0,1}-of-00002-<hash>.parquet."""
    rows = [(f, k) for f in folds for k in range(per_fold)]
    columns = {
        "filename": [f"{f}-1000{k}-A-{(f * 7 + k) % 50}.wav" for f, k in rows],
        "fold": [f for f, _ in rows],
        "target": [(f * 7 + k) % 50 for f, k in rows],
        "category": ["x"] * len(rows),
        "esc10": [False] * len(rows),
        "src_file": [1000 + k for _, k in rows],
        "take": ["A"] * len(rows),
        "audio": [{"bytes": wav_bytes(0.2, sr, channels, seed=i), "path": f"{i}.wav"} for i in range(len(rows))],
    }
    half = (len(rows) + 1) // 2
    for shard, (start, stop) in enumerate(((0, half), (half, len(rows)))):
        write_parquet(root / "esc50" / "data" / f"train-0000{shard}-of-00002-3b4c5d6e7f809a1b.parquet",
                      {k: v[start:stop] for k, v in columns.items()})
    return rows


def test_esc50_folds_and_labels(tmp_path):
    rows = _esc50(tmp_path)
    for fold in (1, 2, 5):
        roles = esc50_fold_roles(fold)
        seen = set()
        for split in ("train", "val", "test"):
            table, source_id = load_split("esc50", split, fold=fold, data_dir=tmp_path)
            assert source_id.startswith("local:")
            wanted = roles[split] if split == "train" else [roles[split]]
            expected = sorted((f * 7 + k) % 50 for f, k in rows if f in wanted)
            assert sorted(table["label"]) == expected
            assert all(cid.split("-")[0] in map(str, wanted) for cid in table["clip_id"])
            seen |= set(table["clip_id"])
        assert len(seen) == len(rows)  # the three splits partition the data
    assert esc50_fold_roles(5) == {"test": 5, "val": 1, "train": [2, 3, 4]}


def test_esc50_features_resample_and_downmix(tmp_path):
    _esc50(tmp_path, sr=44100, channels=2)
    cfg = FeatureConfig(hop_ms=10.0, n_mels=32)
    fs = load_features("esc50", "test", cfg, fold=1, data_dir=tmp_path)
    item = fs[0]
    assert item["waveform"].shape == (5 * 16000,)
    assert item["logmel"].shape == (cfg.num_frames(5.0), 32) == (501, 32)
    assert item["target"].dtype == torch.long and 0 <= int(item["target"]) < 50
    assert item["waveform"][3200:].abs().max() == 0  # 0.2 s clip zero-padded to 5 s


def _speechcommands_file(path, words, prefix, sr=16000):
    write_parquet(path, {
        "file": [f"{prefix}/{w}/clip{w}.wav" for w in words],
        "audio": [{"bytes": wav_bytes(1.0, sr), "path": f"clip{w}.wav"} for w in words],
        "label": words,
        "is_unknown": [w >= 10 for w in words],
        "speaker_id": ["abc"] * len(words),
        "utterance_id": [0] * len(words),
    }, class_labels={"label": [*SPEECHCOMMANDS_WORDS, "_silence_"]})


def test_speechcommands_drops_silence(tmp_path):
    """google/speech_commands at the pinned commit: parquet on main, v0.02/<split>-0000N-of-0000M.parquet."""
    words = [0, 5, 34, 35]  # 35 = "_silence_"
    root = tmp_path / "speechcommands"
    for shard in range(2):  # two of the six train shards
        _speechcommands_file(root / "v0.02" / f"train-0000{shard}-of-00006.parquet", words, f"train{shard}")
    _speechcommands_file(root / "v0.02" / "validation-00000-of-00001.parquet", words, "validation")
    _speechcommands_file(root / "v0.02" / "test-00000-of-00001.parquet", words, "test")
    _speechcommands_file(root / "v0.01" / "test-00000-of-00001.parquet", [1, 2], "v1")  # other version: unread
    train, _ = load_split("speechcommands", "train", data_dir=tmp_path)
    assert train["label"] == [0, 5, 34] * 2
    assert sorted({c.split("/")[0] for c in train["clip_id"]}) == ["train0", "train1"]
    for split, source in (("val", "validation"), ("test", "test")):
        table, _ = load_split("speechcommands", split, data_dir=tmp_path)
        assert table["label"] == [0, 5, 34]
        assert all(c.startswith(source + "/") for c in table["clip_id"])
    fs = load_features("speechcommands", "test", FeatureConfig(n_mels=16, hop_ms=10.0), data_dir=tmp_path)
    assert fs.targets.tolist() == [0, 5, 34] and fs.clip_ids[0] == "test/0/clip0.wav"


@pytest.mark.parametrize("name,column", [("nsynth-instrument", "instrument_family"), ("nsynth-pitch", "pitch")])
def test_nsynth(tmp_path, name, column):
    """jg583/NSynth: data/train/batch_N.parquet, data/validation/validation.parquet, data/test/test.parquet
    beside the repo's NSynth.py loading script (never run)."""
    root = tmp_path / name
    files = {"train": ["data/train/batch_0.parquet", "data/train/batch_1.parquet"],
             "validation": ["data/validation/validation.parquet"], "test": ["data/test/test.parquet"]}
    for s, source in enumerate(("train", "validation", "test")):
        for b, rel in enumerate(files[source]):
            n = 3
            write_parquet(root / rel, {
                "id": [f"{source}_{b}_{i}" for i in range(n)], "note": list(range(n)), "note_str": ["n"] * n,
                "instrument": [1] * n, "instrument_str": ["i"] * n, "pitch": [60 + s + i for i in range(n)],
                "velocity": [100] * n, "sample_rate": [16000] * n, "qualities": [[0, 1]] * n,
                "qualities_str": [["bright"]] * n, "instrument_family": [(s + i) % 11 for i in range(n)],
                "instrument_family_str": ["f"] * n, "instrument_source": [0] * n, "instrument_source_str": ["a"] * n,
                "audio": [{"bytes": wav_bytes(0.3), "path": f"{i}.wav"} for i in range(n)],
            })
    (root / "NSynth.py").write_text("raise RuntimeError('a loading script must never run')\n")
    for s, split in enumerate(("train", "val", "test")):
        table, _ = load_split(name, split, data_dir=tmp_path)
        expected = [60 + s + i for i in range(3)] if column == "pitch" else [(s + i) % 11 for i in range(3)]
        assert table["label"] == expected * (2 if split == "train" else 1)


def test_audioset_multilabel_and_holdout(tmp_path):
    ids = [f"vid{i:04d}" for i in range(40)]
    labels = [[AUDIOSET_MIDS[i % 527], AUDIOSET_MIDS[(i * 3) % 527]] for i in range(40)]
    def shard(path, rows):  # agkphysics/AudioSet: data/<split>/NN.parquet
        write_parquet(path, {
            "video_id": [ids[i] for i in rows],
            "audio": [{"bytes": wav_bytes(0.2, 48000), "path": f"{ids[i]}.flac"} for i in rows],
            "labels": [labels[i] for i in rows], "human_labels": [["x"] * len(labels[i]) for i in rows],
        })

    shard(tmp_path / "audioset" / "data" / "bal_train" / "00.parquet", range(0, 25))
    shard(tmp_path / "audioset" / "data" / "bal_train" / "01.parquet", range(25, 40))
    shard(tmp_path / "audioset" / "data" / "eval" / "00.parquet", range(40))
    shard(tmp_path / "audioset" / "data" / "unbal_train" / "00.parquet", range(3))  # not part of the protocol
    val_ids = {v for v in ids if audioset_is_val(v)}
    assert 0 < len(val_ids) < len(ids)
    train, _ = load_split("audioset", "train", data_dir=tmp_path)
    val, _ = load_split("audioset", "val", data_dir=tmp_path)
    test, _ = load_split("audioset", "test", data_dir=tmp_path)
    assert set(val["clip_id"]) == val_ids and set(train["clip_id"]) == set(ids) - val_ids
    assert len(train) + len(val) == len(test) == len(ids)  # unbal_train is not read
    i = test["clip_id"].index("vid0005")
    assert test["labels"][i] == sorted({5, 15})
    fs = load_features("audioset", "val", FeatureConfig(n_mels=16, hop_ms=10.0), data_dir=tmp_path)
    target = fs[0]["target"]
    assert target.shape == (527,) and target.dtype == torch.float32 and 1 <= target.sum() <= 2


def test_fsd50k_local_copy(tmp_path):
    names = [f"Class_{i:03d}" for i in range(200)]
    dev_labels = [",".join(names[i * 20 : (i + 1) * 20]) for i in range(10)]
    write_parquet(tmp_path / "fsd50k" / "dev" / "0.parquet", {
        "fname": [str(i) for i in range(10)], "labels": dev_labels, "mids": ["/m/x"] * 10,
        "split": ["train"] * 7 + ["val"] * 3,
        "audio": [{"bytes": wav_bytes(0.2, 44100), "path": f"{i}.wav"} for i in range(10)],
    })
    write_parquet(tmp_path / "fsd50k" / "eval" / "0.parquet", {
        "fname": ["e0", "e1"], "labels": ["Class_000,Class_199", "Class_050"], "mids": ["/m/x"] * 2,
        "audio": [{"bytes": wav_bytes(0.2, 44100), "path": f"e{i}.wav"} for i in range(2)],
    })
    assert len(load_split("fsd50k", "train", data_dir=tmp_path)[0]) == 7
    assert load_split("fsd50k", "val", data_dir=tmp_path)[0]["clip_id"] == ["7", "8", "9"]
    test, _ = load_split("fsd50k", "test", data_dir=tmp_path)
    assert test["labels"] == [[0, 199], [50]]


def test_data_dir_from_environment(tmp_path, monkeypatch):
    _esc50(tmp_path, per_fold=1)
    monkeypatch.setenv("DIFFRES_DATA_DIR", str(tmp_path))
    table, source_id = load_split("esc50", "test", fold=3)
    assert source_id.startswith("local:") and table["label"] == [21]


@pytest.mark.parametrize("name", ["esc50", "speechcommands", "nsynth-instrument", "nsynth-pitch", "audioset"])
def test_offline_hub_task_fails_fast_with_instructions(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = get_task(name)
    with pytest.raises(TaskDataUnavailable) as err:
        load_split(name, "test", fold=1 if spec.folds else None)
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "DIFFRES_DATA_DIR" in message and spec.parquet.repo in message
    # the download command names the pinned commit and only the files the task reads
    assert f"--revision {spec.parquet.revision}" in message
    assert all(f"--include '{p}'" in message for ps in spec.parquet.data_files.values() for p in ps)


def test_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: connection refused at once
    with pytest.raises(TaskDataUnavailable, match="cannot reach 127.0.0.1:9"):
        load_split("esc50", "train", fold=1)


def test_fsd50k_without_local_copy_says_where_to_put_it():
    with pytest.raises(TaskDataUnavailable, match=r"no usable hub copy.*fsd50k/.*DIFFRES_DATA_DIR"):
        load_split("fsd50k", "train")


def test_local_copy_with_wrong_layout(tmp_path):
    (tmp_path / "esc50").mkdir()
    with pytest.raises(TaskDataUnavailable, match=r"no files matching esc50/data/train-\*\.parquet"):
        load_split("esc50", "train", fold=1, data_dir=tmp_path)
