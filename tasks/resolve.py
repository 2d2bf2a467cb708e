"""A task by name: a registered task, or a user's corpus named by a task YAML path or a shorthand.

The one place that knows both kinds, above the registry (which holds specs only) and the user-corpus code
(`tasks.taskref`, `tasks.usertask`), and below what loads a task's data (`tasks.data`, `tasks.features`).
"""

from __future__ import annotations

from pathlib import Path

from tasks.registry import TASKS, TaskSpec, list_tasks
from tasks.taskref import directory_hint, is_user_ref
from tasks.usertask import user_task


def get_task(name: str) -> TaskSpec:
    """A registered task by name, or a user's corpus by a task YAML path or a shorthand such as
    `folder:/path/to/dir` (`tasks.usertask`; its errors name the file, field and value)."""
    if name in TASKS:
        return TASKS.info(name)
    if is_user_ref(name):
        return user_task(name)
    if Path(name).expanduser().is_dir():
        raise KeyError(directory_hint(name))
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}; or your own corpus: a task "
                   f"YAML path, hear:DIR, folder:DIR or manifest:FILE (docs/tasks.md)")
