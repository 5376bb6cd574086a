"""Exception hierarchy. Every error a user can cause is a ScfmBenchError naming the culprit and the fix.

Configuration/input errors (exit code 2) abort a run before anything is written. Cell-level problems
(a model producing garbage, a missing checkpoint) are raised as CellFailed / CellSkipped and turned
into records by the runner; they never abort the run.
"""

from __future__ import annotations


class ScfmBenchError(Exception):
    """Base class: bad configuration or input. The CLI maps it to exit code 2."""

    exit_code = 2


class ConfigError(ScfmBenchError):
    """A YAML file, CLI flag or environment variable is malformed or inconsistent."""


class UnknownKeyError(ConfigError, KeyError):
    """A registry key (model, task, metric, dataset) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class DuplicateKeyError(ConfigError):
    """Two items were registered under the same key."""


class DataError(ScfmBenchError):
    """A dataset is missing, corrupt, or lacks a required field."""


class ChecksumError(DataError):
    """A downloaded or cached file does not match its recorded sha256."""


class MissingDependencyError(ScfmBenchError):
    """An optional package needed by a model or feature is not installed."""


class RecordsError(ScfmBenchError):
    """A results file is missing, empty, corrupt or of an unsupported schema version."""


class CellError(Exception):
    """Base for problems confined to one (task, dataset, model, seed) cell; never aborts a run."""

    status = "failed"


class CellFailed(CellError):
    """The cell ran and produced something unusable (NaN/constant embedding, wrong shape, ...)."""


class CellSkipped(CellError):
    """The cell cannot run here for a legitimate reason (one batch, missing checkpoint, ...)."""

    status = "skipped"
