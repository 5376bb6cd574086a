from __future__ import annotations

from typing import Any

import pytest

from scfm_bench.records import MetricResult, Timings

T0 = "2025-01-01T00:00:00+00:00"


def make_record(
    model: str,
    metric: str,
    value: float | None = None,
    *,
    seed: int = 0,
    status: str = "ok",
    reason: str | None = None,
    family: str | None = "bio",
    higher_is_better: bool = True,
    task: str = "integration",
    dataset: str = "pbmc",
    submetric: str | None = None,
    params: dict[str, Any] | None = None,
    created_at: str = T0,
    **timings: Any,
) -> MetricResult:
    return MetricResult(
        run_id="run",
        task=task,
        dataset=dataset,
        model=model,
        seed=seed,
        metric=metric,
        submetric=submetric,
        value=value,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        family=family,
        higher_is_better=higher_is_better,
        params=params or {},
        timings=Timings(**timings),
        created_at=created_at,
    )


@pytest.fixture
def rec():
    return make_record
