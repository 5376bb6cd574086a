"""Few-shot learning curves from records: macro-F1 against labelled cells per class, one line per
model, with a 95 % percentile interval over the draws (and seeds) each point pools. Drawn from the
records' ``per_draw`` values, never recomputed."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from scfm_bench.records import MetricResult


def curve_points(records: list[MetricResult], *, score: str = "macro_f1") -> dict[tuple[str, str, str], dict[str, list]]:
    """(task, dataset, probe) -> model -> sorted [(shots, mean, low, high)] over the ok few-shot records."""
    pooled: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        p = r.params or {}
        if r.status != "ok" or p.get("protocol") != "fewshot" or not r.metric.endswith(f"_{score}"):
            continue
        if r.metric != f"{p['probe']}_fewshot{p['shots']}_{score}":
            continue
        pooled[(r.task, r.dataset, p["probe"])][r.model][p["shots"]] += p["per_draw"][score]
    return {key: {m: [(s, float(np.mean(v)), *map(float, np.percentile(v, [2.5, 97.5]))) for s, v in sorted(shots.items())]
                  for m, shots in models.items()} for key, models in pooled.items()}


def learning_curve(models: dict[str, list], title: str, fmt: str = "png") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scfm_bench.leaderboard.figures import _save

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model, pts in sorted(models.items()):
        shots, mean, low, high = map(np.asarray, zip(*pts))
        ax.plot(shots, mean, marker="o", label=model)
        ax.fill_between(shots, low, high, alpha=0.2)
    ax.set(xscale="log", xlabel="labelled cells per class", ylabel="macro-F1", ylim=(0, 1), title=title)
    ax.legend(fontsize=7)
    return _save(fig, fmt)


def write_learning_curves(records: list[MetricResult], folder) -> list[Path]:
    """One PNG and one SVG per (task, dataset, probe) with few-shot records; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (task, dataset, probe), models in sorted(curve_points(records).items()):
        for fmt in ("png", "svg"):
            path = folder / f"learning_curve_{task}__{dataset}__{probe}.{fmt}"
            path.write_bytes(learning_curve(models, f"{task} · {dataset} · {probe}", fmt))
            written.append(path)
    return written
