"""`diffres` stands alone: importing it loads torch and nothing of the benchmark, and its tests need only it."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_diffres_loads_no_benchmark_module():
    code = "import sys, diffres, diffres.reference; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('benchmark', 'tasks', 'mlflow', 'optuna', 'datasets')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_diffres_tests_collect_with_benchmark_unimportable():
    code = ("import sys; sys.modules['benchmark'] = None; sys.modules['tasks'] = None; import pytest; "
            "sys.exit(pytest.main(['-q', '--collect-only', '-p', 'no:cacheprovider', 'tests/diffres']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert re.search(r"\d+ tests? collected", out.stdout) and not re.search(r"\d+ errors?", out.stdout)
