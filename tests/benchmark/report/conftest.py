"""The report tests share one tiny real study (built once: creating an MLflow store takes seconds), and
register throw-away front-ends and control tasks for one test at a time."""

from __future__ import annotations

import uuid

import pytest
from report_helpers import build_study, registered_tasks


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """(Study, output root, ReportPaths) of the tiny study's report."""
    return build_study(tmp_path_factory.mktemp("study"), tmp_path_factory.mktemp("out"))


@pytest.fixture
def throwaway_frontend():
    """A front-end registered under a fresh name for one test (family given by the test), then removed."""
    from diffres import frontends

    names = []

    def register(family: str, **metadata) -> str:
        name = f"test-only-{uuid.uuid4().hex[:8]}"
        frontends.register_frontend(name, family=family, channels=1, **metadata)(lambda **kw: None)
        names.append(name)
        return name

    yield register
    for name in names:
        frontends.FRONTENDS.remove(name)


@pytest.fixture
def throwaway_task():
    """A control task registered for one test (see ``registered_tasks``)."""
    with registered_tasks() as register:
        yield register
