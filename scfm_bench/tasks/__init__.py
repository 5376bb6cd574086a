"""Tasks: one file per task; each registers itself in TASKS as an EmbeddingTask or a DirectTask."""

from scfm_bench.tasks._base import CellOutputs, DirectResult, DirectTask, EmbeddingTask, Task, TaskData

__all__ = ["CellOutputs", "DirectResult", "DirectTask", "EmbeddingTask", "Task", "TaskData"]
