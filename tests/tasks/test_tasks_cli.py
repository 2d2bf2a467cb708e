from __future__ import annotations

import argparse

from tasks_helpers import wav_bytes, write_parquet

from tasks import list_tasks
from tasks.cli import add_parser, main


def test_add_parser_registers_the_group():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tasks", "prepare", "toy-rhythm", "--hop-ms", "1", "2.5", "--data-dir", "/d"])
    assert args.hop_ms == [1.0, 2.5] and args.data_dir == "/d" and callable(args.func)


def test_list_and_info(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_tasks())
    assert main(["tasks", "info", "esc50"]) == 0
    out = capsys.readouterr().out
    assert "ashraq/esc50" in out and "fold (f mod 5)+1 validation" in out
    assert "hf download --repo-type dataset ashraq/esc50 --revision e3e2a63ffff66b9a9735524551e3818e96af03ee" in out


def test_unknown_task_exits_nonzero_with_the_known_names(capsys):
    assert main(["tasks", "info", "nope"]) == 2
    assert "unknown task 'nope'; known tasks: audioset" in capsys.readouterr().err


def test_prepare_from_a_local_copy(tmp_path, capsys):
    write_parquet(tmp_path / "esc50" / "data" / "train-00000-of-00001-0123456789abcdef.parquet", {
        "filename": [f"{f}.wav" for f in range(1, 6)], "fold": [1, 2, 3, 4, 5], "target": [0, 1, 2, 3, 4],
        "category": ["x"] * 5, "esc10": [False] * 5, "src_file": [1000] * 5, "take": ["A"] * 5,
        "audio": [{"bytes": wav_bytes(0.1), "path": "a.wav"} for _ in range(5)],
    })
    assert main(["tasks", "prepare", "esc50", "--fold", "2", "--hop-ms", "10", "--n-mels", "16",
                 "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "esc50 fold=2 train: 3 clips" in out and "esc50 fold=2 test: 1 clips, logmel [501, 16]" in out


def test_offline_prepare_exits_nonzero_with_the_message(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["tasks", "prepare", "speechcommands"]) == 2
    assert "DIFFRES_DATA_DIR" in capsys.readouterr().err
