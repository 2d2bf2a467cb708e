"""The state of each point and the suite's status, read from the trials of a journal storage."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState
from study_helpers import tiny_suite

from benchmark import study


def test_a_study_not_created_yet_is_all_left(tmp_path: Path) -> None:
    suite, storage, _ = tiny_suite(tmp_path)
    assert study.status(suite, storage) == study.StudyStatus("tiny", total=5, done=0, running=0, failed=0, left=5)


def test_each_point_counts_once_by_its_best_state(tmp_path: Path) -> None:
    suite, storage, _ = tiny_suite(tmp_path)
    grid = optuna.create_study(study_name="tiny", storage=study.open_storage(storage))
    done, running, failed, waiting, _never_tried = suite.keys
    for key, state in ((done, TrialState.FAIL), (done, TrialState.COMPLETE), (running, None),
                       (failed, TrialState.FAIL), (failed, TrialState.FAIL)):
        grid.enqueue_trial({"point": key})
        trial = grid.ask()
        assert trial.suggest_categorical("point", suite.keys) == key
        if state is not None:
            grid.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    grid.enqueue_trial({"point": waiting})  # waiting counts as left
    current = study.status(suite, storage)
    assert current == study.StudyStatus("tiny", total=5, done=1, running=1, failed=1, left=2)
    assert str(current) == "tiny: 1/5 done, 1 running, 1 failed, 2 left" and not current.finished
