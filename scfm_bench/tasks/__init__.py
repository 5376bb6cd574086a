"""Tasks: one file per task; each registers itself in TASKS as an EmbeddingTask or a DirectTask."""

from scfm_bench.tasks._base import DirectResult, DirectTask, EmbeddingTask, Task, TaskData

__all__ = ["DirectResult", "DirectTask", "EmbeddingTask", "Task", "TaskData"]
