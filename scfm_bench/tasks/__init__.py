"""Tasks: one file per task; each registers itself in TASKS."""

from scfm_bench.tasks._base import Task, TaskData

__all__ = ["Task", "TaskData"]
