"""Tasks: what a task is (registry), where its clips come from (hub parquet, local copy, embedded
generator), and how audio becomes cached, normalised log-mel tensors."""

from tasks import controls, embedded, family, hub  # noqa: F401  (registers the tasks)
from tasks.features import FeatureConfig, FeatureSet, LogMel, load_features
from tasks.registry import TaskSpec, list_tasks, register_task
from tasks.resolve import get_task

__all__ = ["FeatureConfig", "FeatureSet", "LogMel", "TaskSpec", "get_task", "list_tasks", "load_features",
           "register_task"]
