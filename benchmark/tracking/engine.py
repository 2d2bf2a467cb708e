"""The engine: the code that can move a number, and its digest.

The engine is what a run executes to turn clips into a test metric: the front-ends and filterbanks
(`diffres/`), the tasks' decoding, generation, splits and features (`tasks/`, less its CLI and `inspect`),
the model and the training loop (`benchmark/model`, `benchmark/training`) and the run's config with its field coercion
(`benchmark/config.py`, `benchmark/fields.py`). Everything else — CLI, study, tracking, report, plan,
benches — schedules, records or reads runs and cannot move a number.

`engine_digest()` hashes the engine's Python files after parsing them and dropping docstrings (comments
never reach the syntax tree): an edit of prose or layout leaves it unchanged, any change of code changes it.
Every run is tagged with it (`engine_digest`), and the report counts a run current when its digest is the
checkout's (`benchmark.report.provenance`): a commit that leaves the digest unchanged needs no declaration.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from benchmark.paths import REPO_ROOT, TRAINING_CODE

# TRAINING_CODE as paths: what is included, and what is excluded (the tasks CLI and `tasks inspect` only read and print)
ENGINE = tuple(p for p in TRAINING_CODE if not p.startswith(":"))
NOT_ENGINE = tuple(p.split(")", 1)[1] for p in TRAINING_CODE if p.startswith(":(exclude)"))


def engine_files(root: Path = REPO_ROOT) -> list[Path]:
    """The engine's Python files under `root`, sorted by their path relative to it."""
    files: list[Path] = []
    for entry in ENGINE:
        path = Path(root) / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    skip = {Path(root) / p for p in NOT_ENGINE}
    return sorted((f for f in files if f not in skip and "__pycache__" not in f.parts),
                  key=lambda f: f.relative_to(root).as_posix())


def normalised_source(text: str, name: str = "<source>") -> str:
    """`text` as the syntax tree sees it: docstrings dropped, comments and layout gone (ast.unparse)."""
    tree = ast.parse(text, filename=name)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def engine_digest(root: Path = REPO_ROOT) -> str:
    """A 16-hex digest of the engine's normalised sources (module docstring)."""
    root = Path(root).resolve()  # a relative root (".") names the same files as its absolute form
    return _digest(str(root), tuple((f, f.stat().st_mtime_ns) for f in engine_files(root)))


@functools.lru_cache(maxsize=8)
def _digest(root: str, files: tuple[tuple[Path, int], ...]) -> str:
    h = hashlib.sha256()
    for path, _ in files:
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + normalised_source(path.read_text(), rel).encode() + b"\0")
    return h.hexdigest()[:16]


DEPENDENCIES = ("torch", "torchaudio", "timm", "numpy")  # the libraries whose version can move a number


def dependency_versions() -> dict[str, str]:
    """{"<package>_version": installed version} of DEPENDENCIES (package metadata: nothing is imported);
    "missing" for a package that is not installed."""
    from importlib import metadata

    out = {}
    for name in DEPENDENCIES:
        try:
            out[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"{name}_version"] = "missing"
    return out


def same_version(logged: str, installed: str) -> bool:
    """Equal releases; a local build label (torch's "+cu130") is not compared, an empty tag (a run logged
    before the tag existed) is not evidence either way."""
    return not logged or logged.split("+")[0] == installed.split("+")[0]
