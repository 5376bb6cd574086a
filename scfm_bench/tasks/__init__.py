"""Tasks: one file per task; each registers itself in TASKS."""

from scfm_bench.tasks._base import CellOutputs, Task, TaskData

__all__ = ["CellOutputs", "Task", "TaskData"]
