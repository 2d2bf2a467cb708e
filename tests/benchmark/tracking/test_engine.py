"""The engine digest: prose and layout do not move it, code does; the installed library versions."""

from __future__ import annotations

from pathlib import Path

from benchmark.tracking import engine

CODE = '''"""A module docstring."""

def scale(x):
    """Twice x."""
    # a comment
    return 2 * x
'''


def _engine(root: Path, text: str) -> Path:
    for rel in engine.ENGINE:
        path = root / rel
        if rel.endswith(".py"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("X = 1\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
    (root / "benchmark/training/loop.py").write_text(text)
    return root


def test_docstrings_comments_and_layout_leave_the_digest_alone(tmp_path):
    before = engine.engine_digest(_engine(tmp_path / "a", CODE))
    prose = CODE.replace("Twice x.", "Doubles x, as the paper does.").replace("# a comment", "# another comment")
    assert engine.engine_digest(_engine(tmp_path / "b", prose + "\n\n# trailing note\n")) == before
    assert engine.engine_digest(_engine(tmp_path / "c", CODE.replace("return 2 * x", "return (2 * x)"))) == before


def test_an_arithmetic_edit_moves_the_digest(tmp_path):
    before = engine.engine_digest(_engine(tmp_path / "a", CODE))
    assert engine.engine_digest(_engine(tmp_path / "b", CODE.replace("2 * x", "2.0 * x"))) != before
    root = _engine(tmp_path / "c", CODE)
    (root / "tasks/new_module.py").write_text("Y = 2\n")  # a new engine file counts too
    assert engine.engine_digest(root) != before


def test_the_tasks_cli_is_not_engine(tmp_path):
    root = _engine(tmp_path / "a", CODE)
    before = engine.engine_digest(root)
    (root / "tasks/cli.py").write_text("print('hello')\n")
    assert engine.engine_digest(root) == before


def test_the_repo_engine_is_what_training_code_names():
    files = {f.relative_to(engine.REPO_ROOT).as_posix() for f in engine.engine_files()}
    assert "benchmark/training/train.py" in files and "diffres/functional.py" in files
    assert "tasks/cli.py" not in files and not any(f.startswith("benchmark/report/") for f in files)


def test_dependency_versions_and_their_comparison():
    versions = engine.dependency_versions()
    assert set(versions) == {"torch_version", "torchaudio_version", "timm_version", "numpy_version"}
    assert engine.same_version("2.14.1+cu130", versions["torch_version"])
    assert not engine.same_version("2.13.0", versions["torch_version"])
    assert engine.same_version("", "1.0")  # a run logged before the tag: no evidence


def test_a_relative_root_gives_the_digest_of_its_absolute_form(monkeypatch):
    from benchmark.paths import REPO_ROOT
    from benchmark.tracking.engine import engine_digest

    monkeypatch.chdir(REPO_ROOT)
    assert engine_digest(Path(".")) == engine_digest(REPO_ROOT)
