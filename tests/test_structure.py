"""The tree's shape (STYLE: rooms of one concern): no import cycle between the repo's modules — imports inside
functions count like any other (a lazy import hides a cycle, it does not remove it) — and no module over ~350
lines except data tables."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("diffres", "tasks", "benchmark")
MAX_LINES = 350
DATA_TABLES = {"tasks/audioset_classes.py"}  # AudioSet's 527 class names and their ids: a table, not logic


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The repo modules a module imports anywhere, at import time or inside a function (TYPE_CHECKING blocks
    excluded: they never run); `from a import b` is module a.b when that is a module, else a."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module:
                found |= {f"{sub.module}.{a.name}" if f"{sub.module}.{a.name}" in known else sub.module
                          for a in sub.names}
    return found & known


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text()), set(modules)) - {name} for name, path in modules.items()}


def test_no_import_cycle_between_modules():
    assert _cycles(_graph()) == []


def test_a_function_level_import_that_closes_a_cycle_is_found():
    """Planted: a module-level edge one way and an import inside a function the other way is a cycle."""
    lower = ast.parse("import benchmark.upper\n")
    upper = ast.parse("def f():\n    from benchmark.lower import x\n    return x\n")
    known = {"benchmark.lower", "benchmark.upper"}
    graph = {"benchmark.lower": _imports(lower, known), "benchmark.upper": _imports(upper, known)}
    assert _cycles(graph) == [["benchmark.lower", "benchmark.upper"]]
    assert _cycles({**_graph(), **graph}) == [["benchmark.lower", "benchmark.upper"]]


def test_no_module_over_the_room_size():
    long = {str(path.relative_to(ROOT)): n for path in _modules().values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= DATA_TABLES, long


def test_the_registry_and_the_claims_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, diffres.registry, benchmark.report.claims as c\n"
            "assert len(c.paper_claims()) == 6 and 'torch' not in sys.modules, sorted(sys.modules)\n"
            "from diffres import DiffRes\nassert 'torch' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
