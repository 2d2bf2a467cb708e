"""The dirty-tree guard on a real temporary git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.paths import ALLOW_DIRTY_ENV
from benchmark.tracking.provenance import DirtyTreeError, changed_files, git_commit, require_clean_tree


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    for rel in ("diffres/a.py", "tasks/b.py", "benchmark/training/c.py", "benchmark/report/d.py", "docs/e.md",
                "benchmark/cli.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_a_clean_tree_passes_and_names_its_commit(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    assert require_clean_tree(root=repo) == head


@pytest.mark.parametrize("rel", ["diffres/a.py", "tasks/b.py", "benchmark/training/c.py", "benchmark/training/new.py"])
def test_changed_or_untracked_training_code_is_dirty_and_refused(repo, rel):
    (repo / rel).write_text("x = 2\n")
    assert git_commit(repo).endswith("-dirty")
    assert changed_files(repo) == [rel]
    with pytest.raises(DirtyTreeError, match=rel.replace(".", r"\.")):
        require_clean_tree(root=repo)


@pytest.mark.parametrize("rel", ["docs/e.md", "benchmark/report/d.py", "README.md", "benchmark/cli.py"])
def test_changes_outside_the_training_code_keep_a_tree_clean(repo, rel):
    (repo / rel).write_text("y = 3\n")
    assert not git_commit(repo).endswith("-dirty")
    require_clean_tree(root=repo)


def test_a_dirty_tree_is_allowed_when_asked(repo, monkeypatch):
    (repo / "diffres/a.py").write_text("x = 2\n")
    assert require_clean_tree(allow_dirty=True, root=repo).endswith("-dirty")
    monkeypatch.setenv(ALLOW_DIRTY_ENV, "1")
    assert require_clean_tree(root=repo).endswith("-dirty")


def test_outside_git_nothing_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    assert git_commit(tmp_path) == "unknown"
    assert require_clean_tree(root=tmp_path) == "unknown"


def test_study_and_worker_take_allow_dirty():
    parser = cli.build_parser()
    for command in ("study", "reproduce", "worker"):
        assert parser.parse_args([command, "--suite", "quick", "--allow-dirty"]).allow_dirty
        assert not parser.parse_args([command, "--suite", "quick"]).allow_dirty
