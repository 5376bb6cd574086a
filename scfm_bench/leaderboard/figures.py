"""Report figures (matplotlib, Agg): the scIB-style results table and the rank heatmap, as PNG or SVG bytes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from scfm_bench.leaderboard.report import Report


def _save(fig, fmt: str) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def rank_heatmap(report: Report, fmt: str = "png") -> bytes | None:
    """Models × (task · dataset) ranks; None when fewer than one ranked table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(report.tables.values())
    models = list(report.overall["model"])
    if not tables or not models:
        return None
    ranks = np.full((len(models), len(tables)), np.nan)
    for j, t in enumerate(tables):
        for row in t.frame.itertuples(index=False):
            if not pd.isna(row.rank):
                ranks[models.index(row.model), j] = float(row.rank)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(tables), 0.8 + 0.35 * len(models)))
    im = ax.imshow(ranks, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(tables)), [f"{t.task}\n{t.dataset}" for t in tables], fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    for (i, j), v in np.ndenumerate(ranks):
        ax.text(j, i, "—" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(im, ax=ax, label="rank (1 = best)")
    ax.set_title("Rank per task and dataset")
    return _save(fig, fmt)


def results_table(report: Report, key: tuple[str, str], fmt: str = "png") -> bytes | None:
    """scIB-style figure: one row per model, circles for min-max-scaled metrics, bars for aggregates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = report.tables[key]
    s = report.scores[(report.scores["task"] == key[0]) & (report.scores["dataset"] == key[1])]
    if s.empty or not t.columns:
        return None
    models, cols = list(t.frame["model"]), [c.id for c in t.columns]
    val = s.pivot_table(index="model", columns="column", values="min_max", dropna=False).reindex(index=models, columns=cols)
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(cols), 0.8 + 0.4 * len(models)))
    cmap = plt.get_cmap("PRGn")
    for j, c in enumerate(t.columns):
        for i, m in enumerate(models):
            v = val.loc[m, c.id]
            if np.isnan(v):
                ax.text(j, i, "—", ha="center", va="center", fontsize=8)
            elif c.is_aggregate:
                ax.barh(i, 0.8 * v, left=j - 0.4, height=0.6, color=cmap(v))
            else:
                ax.scatter(j, i, s=60 + 340 * v, color=cmap(v), edgecolors="k", linewidths=0.3)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_title(f"{key[0]} · {key[1]} (min-max-scaled; bars = aggregates)", fontsize=9)
    return _save(fig, fmt)


def write_figures(report: Report, folder) -> list:
    """Every figure as PNG and SVG files in ``folder``; returns the paths written."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [("rank_heatmap", lambda fmt: rank_heatmap(report, fmt))]
    figures += [(f"results_{task}__{dataset}", lambda fmt, k=(task, dataset): results_table(report, k, fmt))
                for task, dataset in report.tables]
    written = []
    for name, draw in figures:
        for fmt in ("png", "svg"):
            data = draw(fmt)
            if data is not None:
                path = folder / f"{name}.{fmt}"
                path.write_bytes(data)
                written.append(path)
    return written
