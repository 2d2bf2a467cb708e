"""Suites and studies: YAML validation, grid coverage, resume, recovery of failed and orphaned trials."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark import study
from benchmark.study import SuiteError, SuiteNotFoundError, load_suite, mask_url


def write_suite(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


TINY = """
name: tiny
base: {task: toy-transients, epochs: 1, max_train_clips: 16, max_eval_clips: 16, batch_size: 16}
grids:
  - frontend: [spec]
    reduction_rate: [0.0, 0.5]     # spec ignores δ: one point
    seed: [0]
  - frontend: [avgpool, diffres]
    seed: [0]
    zip:
      - {hop_ms: 10.0, reduction_rate: 0.5}
      - {hop_ms: 5.0, reduction_rate: 0.5}
"""


# ------------------------------------------------------------------------------------------ suites
@pytest.mark.parametrize("name", study.list_suites())
def test_shipped_suites_load(name: str) -> None:
    suite = load_suite(name)
    assert suite.name == name and suite.configs
    assert len(set(suite.keys)) == len(suite.keys)


def test_quick_suite_covers_every_frontend_rate_hop_and_seed() -> None:
    from diffres import list_frontends

    configs = load_suite("quick").configs
    assert {c.task for c in configs} == {"toy-transients", "toy-rhythm"}
    assert {c.frontend for c in configs} == set(list_frontends())
    assert len({c.reduction_rate for c in configs if c.frontend != "spec"}) >= 3
    assert len({c.hop_ms for c in configs}) >= 2
    assert len({c.seed for c in configs}) >= 3
    assert {c.reduction_rate for c in configs if c.frontend == "spec"} == {0.0}


def test_paper_suite_uses_the_paper_recipe() -> None:
    configs = load_suite("paper").configs
    assert {c.task for c in configs} == {"audioset", "fsd50k", "esc50", "speechcommands", "nsynth-instrument"}
    assert {c.backbone for c in configs} == {"efficientnet_b2"}
    assert {c.seed for c in configs} == {21195, 1234, 98736}
    assert {c.fold for c in configs if c.task == "esc50"} == {1, 2, 3, 4, 5}
    esc = next(c for c in configs if c.task == "esc50")
    assert (esc.lr, esc.batch_size, esc.epochs) == (2.5e-4, 48, 80)


def test_sub_grids_expand_zip_and_deduplicate(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, TINY))
    got = sorted((c.frontend, c.hop_ms, c.reduction_rate) for c in suite.configs)
    assert got == [("avgpool", 5.0, 0.5), ("avgpool", 10.0, 0.5), ("diffres", 5.0, 0.5),
                   ("diffres", 10.0, 0.5), ("spec", 10.0, 0.0)]


@pytest.mark.parametrize(("text", "needle"), [
    ("grids: [\n  - task: [toy", "malformed YAML"),
    ("- 1\n- 2", "expected a mapping"),
    ("grid: []", "unknown key 'grid'"),
    ("grids: []", "grids: expected a non-empty list"),
    ("base: {task: toy-transients, colour: red}\ngrids: [{seed: [0]}]", "unknown RunConfig field 'colour'"),
    ("base: {task: toy-transients}\ngrids: [{speed: [1, 2]}]", "grids[0]: unknown axis 'speed'"),
    ("base: {task: toy-transients}\ngrids: [{seed: 3}]", "seed=3: expected a non-empty list"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [diffres], reduction_rate: [1.5]}]",
     "reduction_rate=1.5"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [diffres], hop_ms: [0]}]", "hop_ms=0"),
    ("base: {task: toy-transients}\ngrids: [{frontend: [nope]}]", "frontend='nope'"),
    ("base: {task: toy-transients}\ngrids: [{backbone: [not_a_net]}]", "backbone='not_a_net'"),
    ("grids: [{task: [no-such-task]}]", "task='no-such-task'"),
    ("grids: [{seed: [0]}]", "no task"),
    ("base: {task: toy-transients}\ngrids: [{zip: [{hop_ms: 5, colour: 1}]}]", "zip: unknown axis 'colour'"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nsearch: {lr: {type: float, low: 1, high: 0}}\n"
     "n_trials: 2", "search.lr: low=1, high=0"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nsearch: {lr: {type: float, low: 0.1, high: 1}}",
     "n_trials=None"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0]}]\nn_trials: 3", "without a search space"),
    ("base: {task: toy-transients}\ngrids: [{seed: [0], lr: [0.1]}]\n"
     "search: {lr: {type: float, low: 0.1, high: 1}}\nn_trials: 2", "also a grid axis"),
])
def test_bad_suites_name_file_key_and_value(tmp_path: Path, text: str, needle: str) -> None:
    path = write_suite(tmp_path, text, name="bad")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_unknown_suite_lists_known_ones() -> None:
    with pytest.raises(SuiteNotFoundError, match="known suites.*quick"):
        load_suite("no-such-suite")


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://bench:s3cr3t@db:5432/optuna") == "postgresql://bench:***@db:5432/optuna"
    assert mask_url("error at http://u:p@x/ y") == "error at http://u:***@x/ y"
    assert mask_url("sqlite:///results/x.db") == "sqlite:///results/x.db"
    assert mask_url("results/quick/optuna.journal") == "results/quick/optuna.journal"


# ------------------------------------------------------------------------------------------ studies
@dataclass(frozen=True)
class _Result:
    val_metric: float
    test_metric: float
    run_id: str
    reused: bool = False


class Recorder:
    """A run function that records which configs it was asked to train (the real runner is exercised
    end to end in test_scaleout.py and test_cli.py)."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.trained: list[str] = []
        self.fail = set(fail)

    def __call__(self, cfg, *, tracking_uri, experiment, checkpoint_dir, trial, progress):
        if cfg.config_hash in self.fail:
            raise RuntimeError(f"boom {cfg.config_hash}")
        self.trained.append(cfg.config_hash)
        return _Result(val_metric=cfg.seed + cfg.reduction_rate, test_metric=0.5, run_id=f"run-{cfg.config_hash}")


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[study.Suite, str, str]:
    suite = load_suite(write_suite(tmp_path, TINY))
    return suite, str(tmp_path / "optuna.journal"), f"sqlite:///{tmp_path / 'mlflow.db'}"


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


def test_trial_of_a_dead_worker_is_failed_and_retried(tiny) -> None:
    suite, storage, tracking = tiny
    study.create(suite, storage, tracking)
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    orphan = journal.ask()  # a worker that claimed a point and was killed (SIGKILL) before finishing
    orphan.suggest_categorical("point", suite.keys)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    import socket

    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    assert study.status(suite, storage).running == 1

    runner = Recorder()
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=runner).finished
    assert sorted(runner.trained) == sorted(suite.keys)
    states = {t.number: t.state for t in journal.get_trials()}
    assert states[orphan.number] == TrialState.FAIL


def test_a_point_finished_elsewhere_steps_aside(tiny) -> None:
    suite, storage, tracking = tiny
    assert study.run_study(suite, storage, tracking, progress=False, n_workers=1, run_fn=Recorder()).finished
    journal = optuna.load_study(study_name="tiny", storage=study.open_storage(storage))
    journal.enqueue_trial({"point": suite.keys[0]})  # a second worker that got the same point
    runner = Recorder()
    objective = study._Objective(suite, tracking, Path("unused"), runner)
    journal.optimize(objective, n_trials=1)
    last = journal.get_trials()[-1]
    assert last.state == TrialState.PRUNED and "duplicate_of" in last.user_attrs
    assert runner.trained == []


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


def test_create_makes_the_experiment_once_with_a_masked_storage_tag(tiny) -> None:
    from mlflow.tracking import MlflowClient

    suite, _, tracking = tiny
    secret = "postgresql://bench:hunter2@127.0.0.1:1/optuna"
    first = study.ensure_experiment(tracking, "tiny", tags={"optuna_storage": mask_url(secret)})
    assert study.ensure_experiment(tracking, "tiny") == first
    tags = MlflowClient(tracking).get_experiment(first).tags
    assert "hunter2" not in str(tags) and tags["optuna_storage"].startswith("postgresql://bench:***@")


def test_unreachable_storage_fails_fast_with_a_masked_url() -> None:
    from benchmark.services import free_port

    url = f"postgresql://bench:hunter2@127.0.0.1:{free_port()}/optuna"
    with pytest.raises(study.UnreachableError) as err:
        study.open_storage(url)
    assert "hunter2" not in str(err.value) and "bench:***@127.0.0.1" in str(err.value)


def test_unreachable_tracking_server_fails_fast() -> None:
    from benchmark.services import free_port

    with pytest.raises(study.UnreachableError, match="MLflow tracking server"):
        study.check_tracking_uri(f"http://user:pw@127.0.0.1:{free_port()}", timeout_s=2)


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
