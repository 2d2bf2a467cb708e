"""Studies end to end: grid coverage, resume, retry of failed points, search suites, and the data check
before anything is created."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import TINY, Recorder, tiny_suite, write_suite

from benchmark import study
from benchmark.study import load_suite


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[study.Suite, str, str]:
    return tiny_suite(tmp_path)


def _complete_keys(storage: str, name: str) -> list[str]:
    trials = optuna.load_study(study_name=name, storage=study.open_storage(storage)).get_trials()
    return [t.params["point"] for t in trials if t.state == TrialState.COMPLETE]


def test_grid_covers_every_point_once_and_rerun_trains_nothing(tiny, tmp_path: Path) -> None:
    from collections import Counter

    from mlflow.tracking import MlflowClient

    suite, storage, tracking = tiny  # the real runner, tiny budgets
    final = study.run_study(suite, storage, tracking, progress=False, n_workers=1, checkpoint_dir=tmp_path / "ckpt")
    assert final == study.StudyStatus("tiny", total=5, done=5, running=0, failed=0, left=0)
    assert sorted(_complete_keys(storage, "tiny")) == sorted(suite.keys)
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = client.search_runs([experiment])
    assert Counter(r.data.tags["config_hash"] for r in runs if r.info.status == "FINISHED") == Counter(suite.keys)

    n_trials = len(optuna.load_study(study_name="tiny", storage=study.open_storage(storage)).trials)
    again = study.run_study(suite, storage, tracking, progress=False, n_workers=1, checkpoint_dir=tmp_path / "ckpt")
    assert again.finished
    assert len(optuna.load_study(study_name="tiny", storage=study.open_storage(storage)).trials) == n_trials
    assert len(client.search_runs([experiment])) == len(runs)


def test_failed_points_are_reported_then_retried_on_the_next_start(tiny) -> None:
    suite, storage, tracking = tiny
    bad = suite.keys[1]
    first = study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder(fail={bad}))
    assert (first.done, first.failed, first.finished) == (4, 1, False)
    assert study.status(suite, storage) == first

    retry = Recorder()
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=retry).finished
    assert retry.trained == [bad]


def test_search_suite_runs_n_trials_per_point(tmp_path: Path) -> None:
    path = write_suite(tmp_path, """
base: {task: toy-transients, frontend: avgpool, reduction_rate: 0.5}
grids: [{seed: [0, 1]}]
search:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  batch_size: {type: categorical, choices: [8, 16]}
n_trials: 3
""", name="search")
    storage = str(tmp_path / "optuna.journal")
    runner = Recorder()
    final = study.run_study(path, storage, f"sqlite:///{tmp_path / 'mlflow.db'}", progress=False, n_workers=1,
                            run_fn=runner)
    assert final.finished and final.total == 2
    assert len(runner.trained) == 6
    suite = load_suite(path)
    for key in suite.keys:
        trials = optuna.load_study(study_name=suite.study_name(key), storage=study.open_storage(storage)).trials
        assert len(trials) == 3 and all(1e-4 <= t.params["lr"] <= 1e-2 for t in trials)


def test_search_suite_with_the_real_runner_reports_epochs_to_the_pruner(tmp_path: Path) -> None:
    path = write_suite(tmp_path, """
base: {task: toy-transients, frontend: avgpool, reduction_rate: 0.5, epochs: 2, batch_size: 16,
       max_train_clips: 16, max_eval_clips: 16}
grids: [{seed: [0]}]
search: {lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
n_trials: 2
""", name="search-real")
    storage = str(tmp_path / "optuna.journal")
    final = study.run_study(path, storage, f"sqlite:///{tmp_path / 'mlflow.db'}", progress=False, n_workers=1,
                            checkpoint_dir=tmp_path / "ckpt")
    assert final.finished
    suite = load_suite(path)
    trials = optuna.load_study(study_name=suite.study_name(suite.keys[0]), storage=study.open_storage(storage)).trials
    assert len(trials) == 2 and all(sorted(t.intermediate_values) == [0, 1] for t in trials)


def test_a_hub_suite_without_its_data_fails_before_any_trial(tmp_path: Path, monkeypatch) -> None:
    from tasks.data import TaskDataUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DIFFRES_DATA_DIR", raising=False)
    path = write_suite(tmp_path, "name: hubby\nbase: {task: esc50, fold: 1}\ngrids:\n  - frontend: [avgpool, diffres]\n"
                                 "    reduction_rate: [0.5]\n    seed: [0, 1]\n", name="hubby")
    storage = str(tmp_path / "optuna.journal")
    with pytest.raises(TaskDataUnavailable, match=r"esc50.*DIFFRES_DATA_DIR"):
        study.run_study(path, storage, f"sqlite:///{tmp_path / 'mlflow.db'}", n_workers=1, progress=False)
    assert not Path(storage).exists()  # no study was created, so no point failed
    (tmp_path / "data" / "esc50").mkdir(parents=True)  # --data-dir reaches the check
    with pytest.raises(TaskDataUnavailable, match=r"local copy .*data/esc50 has no files"):
        study.run_study(path, storage, f"sqlite:///{tmp_path / 'mlflow.db'}", n_workers=1, progress=False,
                        data_dir=tmp_path / "data")


def test_an_edited_grid_suite_gets_a_fresh_study_and_keeps_the_old_one(tiny, tmp_path: Path) -> None:
    suite, storage, tracking = tiny
    first = Recorder()
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=first).finished
    # one point removed, one added: Optuna cannot widen the old study's `point` choices
    edited = load_suite(write_suite(tmp_path, TINY.replace("seed: [0]\n    zip", "seed: [1]\n    zip")))
    assert set(edited.keys) != set(suite.keys)
    second = Recorder()
    final = study.run_study(edited, storage, tracking, progress=False, n_workers=1, run_fn=second)
    assert final.finished and final.failed == 0
    assert sorted(_complete_keys(storage, "tiny")) == sorted(edited.keys)
    names = [s.study_name for s in optuna.get_all_study_summaries(study.open_storage(storage))]
    archived = [n for n in names if n.startswith("tiny@")]
    assert len(archived) == 1
    assert sorted(_complete_keys(storage, archived[0])) == sorted(suite.keys)


def test_suite_time_counts_each_point_once_across_an_edit(tiny, tmp_path: Path) -> None:
    """bench_suite_time reads the archived study too: a point trained before an edit is counted there, once,
    and the wall time is the sum of the two studies' spans."""
    from benchmark.benches.bench_suite_time import suite_times

    suite, storage, tracking = tiny
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
    edited_path = write_suite(tmp_path, TINY.replace("seed: [0]\n    zip", "seed: [1]\n    zip"))
    edited = load_suite(edited_path)
    finished = set(suite.keys)

    def rerun(cfg, **kwargs):  # what the real runner does: a point finished in MLflow comes back reused
        result = Recorder()(cfg, **kwargs)
        return dataclasses.replace(result, reused=cfg.config_hash in finished)

    assert study.run_study(edited, storage, tracking, progress=False, n_workers=1, run_fn=rerun).finished
    table = suite_times(str(edited_path), storage).set_index("frontend")
    assert table.loc["all", "trials"] == len(edited.keys) and table.loc["all", "studies"] == 2
    assert table.loc["all", "study_wall_s"] > 0


def test_results_dir_holds_the_journal_and_the_checkpoints(tmp_path: Path, monkeypatch, capsys) -> None:
    """One root for a study's state: --results-dir moves the journal and the checkpoints, every command that
    reads the study finds it there from any working directory, and the MLflow tag names the journal absolutely."""
    import json

    from mlflow.tracking import MlflowClient

    from benchmark.cli import main

    suite = load_suite(write_suite(tmp_path, TINY))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    seen: list[Path] = []

    class Where(Recorder):
        def __call__(self, cfg, *, checkpoint_dir, **kw):
            seen.append(Path(checkpoint_dir))
            return super().__call__(cfg, checkpoint_dir=checkpoint_dir, **kw)

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert study.run_study(suite, None, tracking, progress=False, n_workers=1, run_fn=Where(),
                           results_dir=Path("../out")).finished
    journal = tmp_path / "out" / "tiny" / "optuna.journal"
    assert journal.is_file()
    assert set(seen) == {tmp_path / "out" / "tiny" / "checkpoints"}
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # no ./results, no ./checkpoints
    assert MlflowClient(tracking).get_experiment_by_name("tiny").tags["optuna_storage"] == str(journal)
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--suite", str(suite.path), "--results-dir", str(tmp_path / "out"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 5


def test_clean_drops_the_checkpoints_of_finished_points_only(tmp_path: Path, capsys) -> None:
    from benchmark.cli import main

    suite = load_suite(write_suite(tmp_path, TINY))
    root = tmp_path / "out"
    checkpoints = root / "tiny" / "checkpoints"
    for key in suite.keys:
        (checkpoints / key).mkdir(parents=True)
        (checkpoints / key / "last.pt").write_bytes(b"x" * 2**20)
    bad = suite.keys[1]
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    final = study.run_study(suite, None, tracking, progress=False, n_workers=1, run_fn=Recorder(fail={bad}),
                            results_dir=root)
    assert (final.done, final.failed) == (4, 1)
    assert main(["clean", "--suite", str(suite.path), "--results-dir", str(root)]) == 0
    assert "removed the checkpoints of 4 finished point(s), 4.0 MiB" in capsys.readouterr().out
    assert [p.name for p in checkpoints.iterdir()] == [bad]  # a failed point resumes from its checkpoint
    assert main(["clean", "--suite", str(suite.path), "--results-dir", str(tmp_path / "never")]) == 0
    assert "0 finished point(s)" in capsys.readouterr().out and not (tmp_path / "never").exists()


def test_created_study_is_logged_once(tiny, caplog) -> None:
    import logging

    suite, storage, tracking = tiny
    with caplog.at_level(logging.INFO, logger="benchmark.study.workers"):
        assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
        assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
    assert sum("created study tiny" in r.getMessage() for r in caplog.records) == 1
