"""The console script: each command end to end on the embedded task, and one clear line with a non-zero
exit (never a stack trace) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.benches.services import free_port
from benchmark.cli import main

TINY = """
name: clitiny
base: {task: toy-transients, epochs: 1, batch_size: 16, max_train_clips: 16, max_eval_clips: 16}
grids:
  - frontend: [spec]
    reduction_rate: [0.0]
  - frontend: [diffres]
    reduction_rate: [0.5]
"""
RUN_FLAGS = ["--task", "toy-transients", "--epochs", "1", "--batch-size", "16", "--max-train-clips", "16",
             "--max-eval-clips", "16", "--no-progress"]


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "clitiny.yaml"
    path.write_text(TINY)
    return path


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffres-bench: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(("flags", "needle"), [
    (["--task", "no-such-task"], "no-such-task"),
    (["--task", "toy-transients", "--frontend", "nope"], "frontend='nope'"),
    (["--task", "toy-transients", "--backbone", "resnet_nope"], "backbone='resnet_nope'"),
    (["--task", "toy-transients", "--reduction-rate", "1.5"], "reduction_rate=1.5"),
    (["--task", "toy-transients", "--reduction-rate", "0"], "reduction_rate=0.0"),
    (["--task", "toy-transients", "--hop-ms", "0"], "hop_ms=0.0"),
    (["--task", "toy-transients", "--hop-ms", "-5"], "hop_ms=-5.0"),
    (["--task", "toy-transients", "--hop-ms", "40"], "<= win_ms=25.0"),
    (["--task", "toy-transients", "--epochs", "two"], "epochs='two'"),
])
def test_run_rejects_bad_configs(capsys, tmp_path: Path, flags: list[str], needle: str) -> None:
    err = _error(capsys, ["run", *flags, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert needle in err


def test_suite_errors(capsys, tmp_path: Path) -> None:
    assert "unknown suite 'nope'" in _error(capsys, ["status", "--suite", "nope"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("grids: [\n")
    assert f"{bad}: malformed YAML" in _error(capsys, ["status", "--suite", str(bad)])
    bad.write_text("base: {task: toy-transients}\ngrids: [{frontend: [diffres], reduction_rate: [2]}]\n")
    assert "grids[0]" in _error(capsys, ["study", "--suite", str(bad)])


def test_unreachable_storage_and_tracking_fail_fast_with_masked_passwords(capsys, suite_file: Path) -> None:
    port = free_port()
    err = _error(capsys, ["status", "--suite", str(suite_file), "--storage",
                          f"postgresql://bench:hunter2@127.0.0.1:{port}/optuna"])
    assert "cannot open Optuna storage" in err and "hunter2" not in err and "bench:***@" in err
    err = _error(capsys, ["worker", "--suite", str(suite_file), "--storage", str(suite_file.with_suffix(".j")),
                          "--tracking-uri", f"http://u:hunter2@127.0.0.1:{port}"])
    assert "cannot reach the MLflow tracking server" in err and "hunter2" not in err


def test_run_trains_once_then_reuses(capsys, tmp_path: Path) -> None:
    flags = [*RUN_FLAGS, "--frontend", "avgpool", "--reduction-rate", "0.5",
             "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(["run", *flags]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["run", *flags]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["reused"] is False and second["reused"] is True
    assert second["run_id"] == first["run_id"] and 0.0 <= first["test_metric"] <= 1.0
    # a leaderboard for single runs: `report --runs` reads the `runs` experiment, no suite file needed
    spec = [*RUN_FLAGS, "--frontend", "spec", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
            "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(["run", *spec]) == 0
    capsys.readouterr()
    assert main(["report", "--runs", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--results-dir",
                 str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("report: ")
    board = (tmp_path / "results" / "runs" / "leaderboard.csv").read_text()
    assert "avgpool" in board and "spec" in board and (tmp_path / "reports" / "runs" / "REPORT.md").is_file()


def test_reproduce_runs_the_study_then_the_report(capsys, tmp_path: Path, suite_file: Path) -> None:
    storage = str(tmp_path / "optuna.journal")
    common = ["--suite", str(suite_file), "--storage", storage]
    tracking = ["--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    assert main(["create", *common, *tracking]) == 0
    assert "created clitiny: 2 points" in capsys.readouterr().out
    assert main(["status", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["left"] == 2

    # --include-stale: the runs are tagged "-dirty" whenever the suite is tested from an uncommitted tree
    assert main(["reproduce", *common, *tracking, "--no-progress", "--checkpoint-dir", str(tmp_path / "ckpt"),
                 "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
                 "--include-stale"]) == 0
    out = capsys.readouterr().out
    assert "clitiny: 2/2 done" in out
    last = out.strip().splitlines()[-1]  # a line for a person, not a repr
    assert last.startswith(f"report: {tmp_path / 'reports' / 'clitiny' / 'REPORT.md'} (") and "ReportPaths" not in last
    assert f"tables in {tmp_path / 'results' / 'clitiny'}/" in last
    assert (tmp_path / "reports" / "clitiny" / "REPORT.md").is_file()
    assert (tmp_path / "results" / "clitiny" / "leaderboard.csv").is_file()
    assert main(["status", *common]) == 0
    assert capsys.readouterr().out.strip() == "clitiny: 2/2 done, 0 running, 0 failed, 0 left"


def test_offline_hub_task_is_named_before_any_mlflow_store_with_a_flag_run_has(capsys, tmp_path: Path,
                                                                              monkeypatch) -> None:
    import re

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DIFFRES_DATA_DIR", raising=False)
    store = tmp_path / "m.db"
    err = _error(capsys, ["run", "--task", "esc50", "--fold", "1", "--tracking-uri", f"sqlite:///{store}"])
    assert "esc50" in err and "--data-dir" in err and not store.exists()
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    usage = capsys.readouterr().out
    told = set(re.findall(r"pass (--[a-z][a-z-]+)", err))  # the other flags belong to the `hf download` hint
    assert told and told <= set(re.findall(r"--[a-z][a-z-]+", usage))
    (tmp_path / "data" / "esc50").mkdir(parents=True)  # the flag reaches the check
    err = _error(capsys, ["run", "--task", "esc50", "--fold", "1", "--tracking-uri", f"sqlite:///{store}",
                          "--data-dir", str(tmp_path / "data")])
    assert "local copy" in err and not store.exists()


def test_read_only_commands_leave_the_directory_as_it_was(capsys, tmp_path: Path, suite_file: Path,
                                                         monkeypatch) -> None:
    """`status` before any study and `report` without a store create no journal, no mlflow.db, no folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DIFFRES_BENCH_STORAGE", raising=False)
    before = sorted(tmp_path.rglob("*"))
    assert main(["status", "--suite", str(suite_file)]) == 0
    assert capsys.readouterr().out.strip() == "clitiny: 0/2 done, 0 running, 0 failed, 2 left"
    assert main(["status", "--suite", str(suite_file), "--storage", f"sqlite:///{tmp_path / 'o.db'}"]) == 0
    err = _error(capsys, ["report", "--suite", str(suite_file)])
    assert f"no MLflow store at {work / 'mlflow.db'}" in err and "diffres-bench study --suite clitiny" in err
    _error(capsys, ["report", "--suite", str(suite_file), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert sorted(tmp_path.rglob("*")) == before


def test_a_run_on_a_bad_clip_creates_no_store(capsys, tmp_path: Path, monkeypatch) -> None:
    import numpy as np
    import soundfile as sf

    for i, (split, label) in enumerate((s, c) for s in ("train", "validation", "test") for c in ("cat", "dog")):
        path = tmp_path / "corpus" / split / label / f"{label}-{split}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.full(8000, 0.01 * (i + 1), dtype=np.float32), 16000)
    bad = tmp_path / "corpus" / "test" / "dog" / "dog-1.wav"
    sf.write(bad, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")  # its header reads well
    monkeypatch.setenv("DIFFRES_CACHE_DIR", str(tmp_path / "cache"))
    store = tmp_path / "m.db"
    assert main(["run", "--task", f"folder:{tmp_path / 'corpus'}", "--epochs", "1", "--no-progress",
                 "--tracking-uri", f"sqlite:///{store}", "--checkpoint-dir", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("diffres-bench: error: ") and "NaN" in err, err
    assert not store.exists() and not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("command", ["study", "reproduce", "create", "worker"])
def test_suite_commands_that_check_data_take_the_data_dir_flag(capsys, command: str) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--data-dir" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["suites"], ["report", "--suite", "nope"],
                                  ["report", "--suite", "quick", "--tracking-uri", "http://127.0.0.1:PORT"]])
def test_help_report_and_suites_do_not_import_optuna(argv: list[str]) -> None:
    """The last one reads the suite, imports the report and fails at the tracking check (no store to make)."""
    argv = [arg.replace("PORT", str(free_port())) for arg in argv]
    code = ("import sys\nfrom benchmark import cli\ntry:\n    code = cli.main(sys.argv[1:])\n"
            "except SystemExit as exit_:\n    code = exit_.code\n"
            "assert 'optuna' not in sys.modules, 'optuna was imported'\nprint('exit', code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] in ("exit 0", "exit 2")


@pytest.mark.parametrize("command", ["run", "study", "reproduce", "create", "worker", "status", "report", "suites",
                                     "clean", "claims", "tasks"])
def test_every_command_has_help(capsys, command: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: diffres-bench {command}")


def test_console_script_lists_commands_and_suites() -> None:
    exe = Path(sys.executable).with_name("diffres-bench")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("run", "study", "reproduce", "create", "worker", "status", "report", "suites", "tasks"):
        assert command in out
    listed = subprocess.run([str(exe), "suites"], capture_output=True, text=True, check=True).stdout
    assert all(name in listed for name in ("quick", "paper", "ablate-rate", "ablate-hop"))
    bad = subprocess.run([str(exe), "status", "--suite", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "unknown suite 'nope'" in bad.stderr


def test_compare_claims_writes_the_side_by_side_decisions(capsys, tmp_path: Path) -> None:
    header = "claim_id,task,backbone,treatment,control,verdict,mean_diff,n_pairs\n"
    (tmp_path / "a.csv").write_text(header + "1,t,b,diffres,spec,holds,0.02,5\n2,t,b,diffres,avgpool,holds,0.03,5\n")
    (tmp_path / "b.csv").write_text(header + "1,t,b,diffres,spec,refuted,-0.02,5\n2,t,b,diffres,avgpool,holds,0.01,5\n")
    out = tmp_path / "both.csv"
    assert main(["compare-claims", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out)]) == 0
    assert ("2 comparisons: 1 decided and agree, 0 undecided in both, 0 decided in one only, 1 flip, 0 not run"
            in capsys.readouterr().out)
    assert out.read_text().splitlines()[1].endswith("holds,refuted,0.02,-0.02,5,5,flip")
    assert main(["compare-claims", str(tmp_path / "a.csv"), str(tmp_path / "none.csv"), "--out", str(out)]) == 2


def test_claims_lists_each_claim_with_its_test_and_arms(capsys) -> None:
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert "| 3 | From a high-resolution input" in out and "| superiority (non-inferiority) |" in out
    assert main(["claims", "--check"]) == 0 and "claims files are current" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly() -> None:
    """`diffres-bench suites | head -1`: rc 0, nothing on stderr."""
    import os

    reader, writer = os.pipe()
    os.close(reader)  # the reader (head) has gone before the first line
    proc = subprocess.run([sys.executable, "-m", "benchmark", "suites"], stdout=writer, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(writer)
    assert (proc.returncode, proc.stderr) == (0, "")
    shell = subprocess.run(f"{sys.executable} -m benchmark suites | head -1", shell=True, capture_output=True,
                           text=True, timeout=120, executable="/bin/bash")
    assert shell.stdout.count("\n") == 1 and shell.stderr == ""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["study", "--help"], ["status", "--help"],
                                  ["study", "--suite", "quick", "--n-workers", "two"], ["suites", "--bogus"]])
def test_help_and_flag_errors_answer_without_importing_torch(argv: list[str]) -> None:
    code = ("import sys\nfrom benchmark import cli\ntry:\n    code = cli.main(sys.argv[1:])\n"
            "except SystemExit as exit_:\n    code = exit_.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('exit', code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] in ("exit 0", "exit 2")


def test_every_run_flag_shows_its_default_and_the_registries_choices(capsys) -> None:
    from dataclasses import MISSING

    from benchmark.config import RunConfig
    from benchmark.model.heads import list_heads
    from benchmark.paths import DATA_DIR_ENV
    from diffres import list_frontends
    from diffres.filterbanks import list_filterbanks
    from tasks import cache

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in RunConfig.__dataclass_fields__.values():
        if f.name != "task":
            flag = f"--{f.name.replace('_', '-')}"
            default = f.default if f.default is not MISSING else None
            assert f"{flag} " in text and f"(default: {default})" in text.split(f"{flag} ", 2)[-1][:400], flag
    assert all(name in text for name in [*list_frontends(), *list_filterbanks(), *list_heads()])
    assert "examples:" in text and DATA_DIR_ENV == cache.DATA_DIR_ENV
    with pytest.raises(SystemExit):
        main(["tasks", "--help"])  # the tasks group is built when it is the command
    assert "inspect" in capsys.readouterr().out


def test_results_dir_moves_the_default_mlflow_store_too(capsys, tmp_path: Path, suite_file: Path,
                                                        monkeypatch) -> None:
    """With --results-dir and no --tracking-uri (nor $MLFLOW_TRACKING_URI), a command's MLflow store is
    DIR/mlflow.db; a read-only command then names that path and creates nothing."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    root.mkdir()
    assert main(["report", "--suite", str(suite_file), "--results-dir", str(root), "--reports-dir",
                 str(tmp_path / "reports")]) == 2
    assert f"no MLflow store at {root.resolve() / 'mlflow.db'}" in capsys.readouterr().err
    assert not (root / "mlflow.db").exists() and not (tmp_path / "mlflow.db").exists()
