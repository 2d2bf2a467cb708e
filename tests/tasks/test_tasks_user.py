"""User tasks (tasks/usertask.py, tasks/sources/): real corpora written with soundfile in each layout, read
through the same loader as every task; every bad input is a clear error naming file, field and value, and
leaves nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from corpus_helpers import CLASSES, class_folders, hear_task, hub_copy, manifest, task_yaml, tone

from benchmark.config import RunConfig
from benchmark.fields import ConfigError
from benchmark.training.data import load_task_data
from benchmark.validation import validate
from tasks import get_task
from tasks.cli import main
from tasks.columns import read_column
from tasks.data import load_split
from tasks.inspect import inspect_source
from tasks.sources.corpus import TaskFileError
from tasks.usertask import user_task


def _labels(task: str, split: str, fold: int | None = None) -> dict[str, object]:
    table, _ = load_split(task, split, fold)
    column = "label" if "label" in table.column_names else "labels"
    return dict(zip(read_column(table, "clip_id").to_pylist(), read_column(table, column).to_pylist(), strict=True))


def _nothing_written(cache: Path) -> bool:
    return not list(cache.rglob("clips.parquet")) and not list(cache.rglob("meta.json"))


def test_class_folders_with_split_folders_keep_them(tmp_path):
    root = class_folders(tmp_path / "my birds")
    spec = get_task(f"folder:{root}")
    assert (spec.name, spec.class_names, spec.label_kind, spec.folds) == ("my-birds", CLASSES, "single", None)
    assert spec.clip_seconds == 0.5 and spec.sample_rate == 16000 and spec.metric == "accuracy"
    train = _labels(f"folder:{root}", "train")
    assert len(train) == 8 and len(_labels(f"folder:{root}", "val")) == len(_labels(f"folder:{root}", "test")) == 4
    assert train["train/cat/cat-train-0.wav"] == 0 and train["train/dog/dog-train-3.wav"] == 1


def test_class_folders_without_splits_get_a_seeded_stratified_split_written_down(tmp_path, private_cache):
    root = class_folders(tmp_path / "flat", splits=False)
    splits = {s: _labels(f"folder:{root}", s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [12, 2, 2]
    assert all(sorted(set(labels.values())) == [0, 1] for labels in splits.values())  # stratified: both classes
    written = next(private_cache.rglob("split.csv")).read_text().splitlines()
    assert written[0] == "file_name,split" and len(written) == 17
    assert {line.split(",")[0] for line in written[1:] if line.endswith(",val")} == set(splits["val"])
    assert "seeded stratified split (split_seed 0" in get_task(f"folder:{root}").protocol
    other = user_task(str(task_yaml(tmp_path / "seed1.yaml", name="flat1", source="folder", root="flat",
                                    split_seed=1)))
    assert _labels(str(tmp_path / "seed1.yaml"), "val") != splits["val"] and other.clips("val") == 2


def test_manifest_with_multi_label_rows_and_flac(tmp_path):
    path = manifest(tmp_path / "m")
    ref = str(task_yaml(tmp_path / "m.yaml", name="mixed", source="manifest", manifest="m/metadata.csv",
                        label_separator=";"))
    spec = get_task(ref)
    assert spec.label_kind == "multi" and spec.metric == "mAP" and spec.class_names == CLASSES
    train = _labels(ref, "train")
    assert train["audio/cat-train-0.wav"] == [0, 1] and train["audio/cat-train-1.flac"] == [0]
    assert len(train) == 8 and path.is_file()
    with pytest.raises(ConfigError, match="RunConfig.loss='ce'.*multi-label task 'mixed'"):
        validate(RunConfig.for_task(ref, loss="ce"))


def test_hear_trainvaltest_and_kfold(tmp_path):
    tvt = hear_task(tmp_path / "hear-tvt")
    spec = get_task(f"hear:{tvt}")
    assert spec.folds is None and spec.clip_seconds == 0.5 and "HEAR's train / valid / test" in spec.protocol
    assert set(_labels(f"hear:{tvt}", "val")) == {f"16000/valid/{c}-val-{i}.wav" for c in CLASSES for i in range(2)}
    kfold = hear_task(tmp_path / "hear-5fold", kfold=True)
    spec = get_task(f"hear:{kfold}")
    assert spec.folds == 5 and spec.clips("train") == 12
    test, val = _labels(f"hear:{kfold}", "test", fold=2), _labels(f"hear:{kfold}", "val", fold=2)
    assert all("/fold01/" in c for c in test) and all("/fold02/" in c for c in val) and len(test) == 4
    assert not set(_labels(f"hear:{kfold}", "train", fold=2)) & (set(test) | set(val))


def test_the_fingerprint_follows_the_files(tmp_path):
    root = class_folders(tmp_path / "c")
    ref = f"folder:{root}"
    first = user_task(ref, fresh=True)
    cfg = validate(RunConfig.for_task(ref))  # the fingerprint is filled by validate, once
    assert cfg.task_files is not None and RunConfig.for_task(ref).task_files is None
    assert user_task(ref, fresh=True).local.identity() == first.local.identity()
    assert validate(RunConfig.for_task(ref)).config_hash == cfg.config_hash and cfg.task == f"folder:{root}"
    tone(root / "train" / "cat" / "cat-train-0.wav", "cat", 99, seconds=0.4)  # edited: another size
    second = user_task(ref, fresh=True)
    assert second.local.identity() != first.local.identity()
    assert validate(RunConfig.for_task(ref)).config_hash != cfg.config_hash
    assert validate(RunConfig.for_task("toy-transients")).identity().get("task_files") is None
    # the fingerprint is a field: the config rebuilt from its logged params keeps the logged hash, and training it
    # on the corpus as it is now is refused, naming the field
    logged = {k: str(v) for k, v in cfg.to_params().items()}
    rebuilt = RunConfig.from_dict(logged)
    assert rebuilt == cfg and rebuilt.config_hash == cfg.config_hash
    with pytest.raises(ValueError, match=r"RunConfig.task_files=.*has changed since this config was made"):
        load_task_data(rebuilt)


def test_different_lengths_are_cropped_or_padded_and_counted(tmp_path):
    root = class_folders(tmp_path / "c")
    for i in range(3):
        tone(root / "train" / "dog" / f"long-{i}.wav", "dog", 50 + i, seconds=0.8)
    spec = user_task(str(task_yaml(tmp_path / "t.yaml", name="lengths", source="folder", root="c",
                                   clip_seconds=0.6)))
    assert spec.clip_seconds == 0.6 and "3 of 19 longer (cropped), 16 shorter (padded)" in spec.protocol


def _remove(path: Path) -> None:
    path.unlink()


BAD = {
    "missing metadata": (lambda r: hear_task(r), lambda r: _remove(r / "task_metadata.json"),
                         ["task_metadata.json", "missing"]),
    "malformed metadata": (lambda r: hear_task(r), lambda r: (r / "task_metadata.json").write_text("{nope"),
                           ["task_metadata.json", "malformed JSON"]),
    "event task": (lambda r: hear_task(r, meta={"embedding_type": "event"}), lambda r: None,
                   ["embedding_type", "'event'", "out of scope"]),
    "label not in vocabulary": (lambda r: hear_task(r), lambda r: (r / "test.json").write_text(
        json.dumps({"cat-test-0.wav": ["cow"]})), ["test.json", "cat-test-0.wav", "'cow'", "labelvocabulary.csv"]),
    "listed but missing": (lambda r: hear_task(r), lambda r: _remove(r / "16000/train/dog-train-1.wav"),
                           ["dog-train-1.wav: missing"]),
    "unreadable": (lambda r: hear_task(r), lambda r: (r / "16000/test/cat-test-1.wav").write_bytes(b"RIFFjunk"),
                   ["cat-test-1.wav: unreadable"]),
    "empty": (lambda r: class_folders(r), lambda r: (r / "validation/dog/dog-val-0.wav").write_bytes(b""),
              ["dog-val-0.wav: empty (0 bytes)"]),
    "class without training clip": (lambda r: class_folders(r), lambda r: shutil.rmtree(r / "train" / "dog"),
                                    ["class(es) ['dog'] have no training clip"]),
    "split without clip": (lambda r: class_folders(r), lambda r: shutil.rmtree(r / "test"),
                           ["split 'test' has no clip"]),
    "mixed rates in a HEAR rate folder": (lambda r: hear_task(r), lambda r: tone(
        r / "16000/train/cat-train-2.wav", "cat", 7, sr=8000), ["16000", "'sample_rate'", "cat-train-2.wav (8000 Hz)"]),
    "manifest without file_name": (lambda r: manifest(r), lambda r: (r / "metadata.csv").write_text(
        "path,label\naudio/cat-train-0.wav,cat\n"), ["metadata.csv", "'file_name'"]),
    "manifest without the label column": (lambda r: manifest(r), lambda r: (r / "metadata.csv").write_text(
        "file_name,category\naudio/cat-train-0.wav,cat\n"), ["metadata.csv", "'label'", "found columns"]),
    "path escaping the root": (lambda r: manifest(r), lambda r: (r / "metadata.csv").write_text(
        "file_name,label\n../secret.wav,cat\n"), ["metadata.csv line 2", "'file_name'", "'../secret.wav'", "escapes"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_named_and_nothing_is_written(tmp_path, private_cache, case):
    make, spoil, needles = BAD[case]
    root = tmp_path / "corpus"
    made = make(root)
    spoil(root)
    kind = ("manifest" if made.name == "metadata.csv" else "hear" if (root / "labelvocabulary.csv").exists()
            else "folder")
    ref = f"{kind}:{made}"
    with pytest.raises(TaskFileError) as err:
        user_task(ref, fresh=True)
    assert all(n in str(err.value) for n in needles), str(err.value)
    assert _nothing_written(private_cache)
    assert main(["tasks", "info", ref]) == 2  # the CLI: one line, exit 2


def test_corrupt_files_are_listed_then_skipped_on_request(tmp_path, private_cache, capsys):
    root = class_folders(tmp_path / "c")
    (root / "train/cat/cat-train-1.wav").write_bytes(b"not audio")
    _remove(root / "train/dog/dog-train-2.wav")
    (root / "train/dog/dog-train-2.wav").write_bytes(b"")
    with pytest.raises(TaskFileError, match=r"2 of 16 audio file\(s\) cannot be used: .*cat-train-1.wav: unreadable.*"
                                            r"dog-train-2.wav: empty.*on_bad_file: skip"):
        user_task(f"folder:{root}")
    assert _nothing_written(private_cache)
    ref = str(task_yaml(tmp_path / "skip.yaml", name="skipping", source="folder", root="c", on_bad_file="skip"))
    spec = user_task(ref)
    assert "2 unreadable file(s) skipped (on_bad_file: skip): train/cat/cat-train-1.wav" in spec.protocol
    assert len(_labels(ref, "train")) == 6
    assert main(["tasks", "inspect", f"folder:{root}"]) == 2
    out = capsys.readouterr().out
    assert "16 listed, 14 usable, 2 unusable" in out and "problems:     2" in out
    assert "cat-train-1.wav: unreadable" in out


def test_a_shorthand_takes_the_yaml_options_after_a_question_mark(tmp_path, private_cache):
    from tasks.taskref import canonical_ref

    root = class_folders(tmp_path / "c")
    (root / "train/cat/cat-train-1.wav").write_bytes(b"not audio")
    ref = f"folder:{root}?on_bad_file=skip&clip_seconds=0.25"
    # canonical: absolute path, options sorted, so a run's stored reference does not depend on their order
    assert canonical_ref(ref) == f"folder:{root.resolve()}?clip_seconds=0.25&on_bad_file=skip"
    assert canonical_ref(f"folder:{root}?clip_seconds=0.25&on_bad_file=skip") == canonical_ref(ref)
    spec = user_task(ref)
    assert spec.name == "c" and spec.clip_seconds == 0.25  # a YAML scalar: a float, not the text "0.25"
    assert "1 unreadable file(s) skipped (on_bad_file: skip): train/cat/cat-train-1.wav" in spec.protocol
    assert len(_labels(ref, "train")) == 7
    with pytest.raises(TaskFileError, match=r"field 'on_bad_file', value 'ignore'"):
        user_task(f"folder:{root}?on_bad_file=ignore")
    with pytest.raises(TaskFileError, match=r"field 'root'.*an option key=value with key one of"):
        user_task(f"folder:{root}?root=/elsewhere")
    with pytest.raises(TaskFileError, match=r"field 'skip', value None"):
        user_task(f"folder:{root}?skip")


def test_inspect_reports_the_corpus_before_anything_trains(tmp_path, private_cache):
    root = hear_task(tmp_path / "h", kfold=True)
    result = inspect_source(f"hear:{root}")
    assert result.problems == ()
    assert "classes:      2 (single-label): cat, dog" in result.text
    assert "folds:        1: 4, 2: 4, 3: 4, 4: 4, 5: 4" in result.text
    assert "sample rates: 16000 Hz x 20" in result.text and "label balance: 10..10" in result.text
    assert "clip_seconds: 0.5 s (from the metadata): 0 clips cropped, 0 padded" in result.text
    assert not (private_cache / "embedded").exists()  # inspect writes nothing
    bad = inspect_source(str(tmp_path / "none.yaml"))
    assert bad.problems and "does not exist" in bad.problems[0]


def test_inspect_reads_a_hub_dataset_from_its_local_copy(tmp_path, private_cache, capsys):
    from corpus_helpers import hub_copy

    hub_copy(tmp_path / "data", "hubinspect")
    ref = str(task_yaml(tmp_path / "hub.yaml", name="hubinspect", source="hub", clip_seconds=0.4,
                        repo="someone/birds@0123456789abcdef0123456789abcdef01234567"))
    assert main(["tasks", "inspect", ref, "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "classes:      2 (single-label): cat, dog" in out
    assert "splits:       train 8, val 4, test 4  (the hub's splits: train = train, val = validation" in out
    assert "clip_seconds: 0.4 s (declared): 16 clips cropped, 0 padded" in out
    assert "sample rates: 16000 Hz x 16" in out and "label balance: 8..8" in out and "problems:     none" in out


def test_yaml_errors_name_the_file_field_and_value(tmp_path):
    class_folders(tmp_path / "c")
    cases = [({"name": "x", "source": "folder", "root": "c", "clip_secs": 1}, "'clip_secs'"),
             ({"name": "esc50", "source": "folder", "root": "c"}, "field 'name', value 'esc50'"),
             ({"name": "x", "source": "zip", "root": "c"}, "field 'source', value 'zip'"),
             ({"name": "x", "source": "folder", "root": "c", "metric": "f1"}, "field 'metric', value 'f1'"),
             ({"name": "x", "source": "folder", "root": "nope"}, "field 'root'")]
    for fields, needle in cases:
        path = task_yaml(tmp_path / "t.yaml", **fields)
        with pytest.raises(TaskFileError, match=str(path)) as err:
            user_task(str(path), fresh=True)
        assert needle in str(err.value)


def test_tasks_info_and_prepare_take_a_task_yaml(tmp_path, capsys):
    class_folders(tmp_path / "c")
    ref = str(task_yaml(tmp_path / "mine.yaml", name="mine", source="folder", root="c"))
    assert main(["tasks", "info", ref]) == 0
    out = capsys.readouterr().out
    assert "name:         mine" in out and "your corpus (folder)" in out and "fingerprint" in out
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a relative path is accepted and stored absolute
    try:
        assert main(["tasks", "prepare", "mine.yaml", "--n-mels", "16"]) == 0
        assert RunConfig.for_task("mine.yaml").task == ref
    finally:
        os.chdir(cwd)
    assert "mine fold=None test: 4 clips, logmel [51, 16]" in capsys.readouterr().out
    assert np.isclose(get_task(ref).clip_seconds, 0.5)


HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_hub_dataset_by_id_from_a_local_copy_and_offline(tmp_path, monkeypatch, capsys):
    hub_copy(tmp_path / "data", "birds", string_labels=True)
    ref = str(task_yaml(tmp_path / "birds.yaml", name="birds", source="hub", repo=f"someone/birds@{HUB_REVISION}",
                        id_column="file", clip_seconds=0.5))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskFileError, match=r"field 'classes'.*hf download --repo-type dataset someone/birds"):
        user_task(ref, fresh=True)
    monkeypatch.setenv("DIFFRES_DATA_DIR", str(tmp_path / "data"))
    spec = user_task(ref, fresh=True)  # the class names read from the local copy
    assert spec.class_names == CLASSES and spec.parquet.repo == "someone/birds" and spec.local is None
    train = _labels(ref, "train")
    assert len(train) == 8 and train["dog-train-0.wav"] == 1 and train["cat-train-3.wav"] == 0
    monkeypatch.delenv("DIFFRES_DATA_DIR")
    declared = str(task_yaml(tmp_path / "declared.yaml", name="birds2", source="hub",
                             repo=f"someone/birds@{HUB_REVISION}", classes=list(CLASSES), clip_seconds=0.5))
    assert main(["tasks", "prepare", declared]) == 2
    err = capsys.readouterr().err
    assert f"hf download --repo-type dataset someone/birds --revision {HUB_REVISION}" in err and "HF_HUB_OFFLINE" in err
    assert validate(RunConfig.for_task(declared)).identity()["task_files"].startswith("hub-")


def test_an_emptied_cache_is_written_again_from_the_corpus(tmp_path, private_cache):
    root = class_folders(tmp_path / "c")
    spec = user_task(f"folder:{root}", fresh=True)
    shutil.rmtree(private_cache / "embedded")
    assert len(_labels(f"folder:{root}", "test")) == 4 and (spec.local.folder() / "meta.json").is_file()
    shutil.rmtree(private_cache / "embedded")
    tone(root / "test" / "cat" / "cat-test-0.wav", "cat", 98, seconds=0.3)
    with pytest.raises(TaskFileError, match="the corpus changed while this process used it"):
        spec.local.ensure()


def test_a_jsonl_manifest_with_a_fold_column_is_a_k_fold_task(tmp_path):
    rows = []
    for fold in range(4):  # 0-based folds, as HEAR's fold00.. are
        for label in CLASSES:
            name = f"clips/{label}-{fold}.wav"
            tone(tmp_path / "m" / name, label, fold)
            rows.append(json.dumps({"file_name": name, "label": label, "fold": fold}))
    (tmp_path / "m" / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    ref = f"manifest:{tmp_path / 'm' / 'metadata.jsonl'}"
    spec = get_task(ref)
    assert spec.folds == 4 and spec.name == "m" and "the manifest's `fold` column" in spec.protocol
    assert set(_labels(ref, "test", fold=4)) == {"clips/cat-3.wav", "clips/dog-3.wav"}  # fold 4 = the 0-based 3
    assert set(_labels(ref, "val", fold=4)) == {"clips/cat-0.wav", "clips/dog-0.wav"}
    with pytest.raises(ValueError, match="4-fold task"):
        load_split(ref, "test", None)


def test_a_multilabel_hear_task_has_label_lists(tmp_path):
    root = hear_task(tmp_path / "h", kfold=True, multilabel=True)
    spec = get_task(f"hear:{root}")
    assert spec.label_kind == "multi" and spec.metric == "mAP" and spec.folds == 5
    test = _labels(f"hear:{root}", "test", fold=1)
    assert test["16000/fold00/cat-fold00-1.wav"] == [0, 1] and test["16000/fold00/cat-fold00-0.wav"] == [0]


def test_inspect_of_a_bare_directory_suggests_folder_and_bad_input_exits_2(tmp_path, private_cache, capsys):
    root = class_folders(tmp_path / "c")
    assert main(["tasks", "inspect", str(root)]) == 2
    out = capsys.readouterr().out
    assert f"{root} is a directory, not a task: for a corpus of class folders pass folder:{root}" in out
    from benchmark.cli import main as bench

    assert bench(["run", "--task", str(root), "--epochs", "1"]) == 2
    assert f"pass folder:{root}" in capsys.readouterr().err
    assert main(["tasks", "inspect", f"folder:{root}", "--data-dir", str(tmp_path / "nonexistent")]) == 2
    assert f"--data-dir {tmp_path / 'nonexistent'}: no such directory" in capsys.readouterr().err
    assert bench(["run", "--task", "toy-transients", "--data-dir", str(tmp_path / "nonexistent")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["tasks", "inspect", f"folder:{root}"]) == 0


def test_inspect_reads_the_samples_and_names_the_file(tmp_path, private_cache, capsys):
    import soundfile as sf

    root = class_folders(tmp_path / "c")
    nan = root / "train/cat/cat-train-1.wav"
    sf.write(nan, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")  # its header reads well
    silent = root / "train/dog/dog-train-0.wav"
    sf.write(silent, np.zeros(8000, dtype=np.float32), 16000)
    sf.write(root / "train/dog/dog-train-1.wav", np.full(16000 * 30, 0.1, dtype=np.float32), 16000)  # one 30 s clip
    (root / "train/cat/notes.txt").write_text("recorded in the garden")
    (root / "README.md").write_text("my corpus")
    result = inspect_source(f"folder:{root}")
    assert any(str(nan) in p and "NaN or Inf" in p for p in result.problems)
    assert "2 file(s) ignored (.md x 1, .txt x 1; audio is .wav, .flac, .mp3, .ogg inside a class folder" in result.text
    assert f"1 clip(s) silent (all samples zero): {silent}" in result.text
    assert "is padded 60x; declare clip_seconds" in result.text
    assert main(["tasks", "inspect", f"folder:{root}"]) == 2
    assert not (private_cache / "embedded").exists()  # inspect writes nothing
    (root / "test/cat/cat-test-0.wav").write_bytes(b"not audio")
    skipping = inspect_source(f"folder:{root}?on_bad_file=skip")
    assert "on_bad_file=skip: a run drops the 1 unusable file(s) listed under problems" in skipping.text


def test_inspect_names_symlinked_folders_it_does_not_follow(tmp_path, private_cache):
    root = class_folders(tmp_path / "c")
    elsewhere = class_folders(tmp_path / "elsewhere", splits=False)
    (root / "train/cat/more").symlink_to(elsewhere / "cat", target_is_directory=True)  # below a class: not read
    result = inspect_source(f"folder:{root}")
    assert "1 symlinked folder(s) not followed (their audio is not read" in result.text
    assert f"{root / 'train/cat/more'} -> {elsewhere / 'cat'}" in result.text
    linked_class = class_folders(tmp_path / "d")
    (linked_class / "train/cat").rename(tmp_path / "real-cat")
    (linked_class / "train/cat").symlink_to(tmp_path / "real-cat", target_is_directory=True)  # a class folder: read
    assert "symlinked folder" not in inspect_source(f"folder:{linked_class}").text


def test_the_activity_detector_reads_the_share_of_a_clip_that_sounds(tmp_path, private_cache):
    from tasks.inspect import active_share

    rng = np.random.default_rng(0)
    for share in (0.05, 0.15, 0.40):
        power = np.full(500, 1e-4) * rng.uniform(0.5, 1.5, 500)  # a quiet floor, 20 ms frames
        power[100:100 + int(share * 500)] = 1e-1  # a burst 30 dB above it
        assert active_share(power) == pytest.approx(share, abs=0.01)
    assert active_share(np.zeros(10)) == 0.0
    root = class_folders(tmp_path / "c")  # steady tones: no frame stands out from the clip's own floor
    assert "active share: median 0 % of a clip (quartiles 0-0 %)" in inspect_source(f"folder:{root}").text
