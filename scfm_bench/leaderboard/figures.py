"""Report figures (matplotlib, Agg): the scIB-style results table and the rank heatmap, as PNG or SVG bytes."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from scfm_bench.leaderboard.build import Table
from scfm_bench.leaderboard.report import Report


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=110)
    _plt().close(fig)
    return buf.getvalue()


def _family_tables(report: Report, family: str) -> list[Table]:
    return [t for t in report.tables.values() if t.family == family]


def heatmap_names(report: Report) -> dict[str, str]:
    """family -> figure name: one rank heatmap per task family (their models are never ranked together)."""
    families = sorted({t.family for t in report.tables.values()})
    return {f: "rank_heatmap" if len(families) == 1 else f"rank_heatmap__{f}" for f in families}


def rank_heatmap(report: Report, family: str, fmt: str = "png") -> bytes | None:
    """Ranked models × (task · dataset) of one task family; None when no model is ranked there.
    Reference rows (controls, ceilings) are never ranked and so never appear."""
    plt = _plt()
    tables = _family_tables(report, family)
    ranks = pd.DataFrame({f"{t.task}\n{t.dataset}": t.frame.set_index("model")["rank"].astype(float) for t in tables})
    ranks = ranks.dropna(how="all")
    if ranks.empty:
        return None
    ranks = ranks.loc[ranks.mean(axis=1).sort_values(kind="stable").index]
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * ranks.shape[1], 1.2 + 0.35 * len(ranks)))
    im = ax.imshow(ranks.to_numpy(), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(ranks.shape[1]), list(ranks.columns), rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(ranks)), list(ranks.index), fontsize=8)
    worst = np.nanmax(ranks.to_numpy())
    for (i, j), v in np.ndenumerate(ranks.to_numpy()):
        # viridis_r: light (yellow) for the best ranks, dark for the worst
        ax.text(j, i, "—" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=7,
                color="white" if not np.isnan(v) and v > (1 + worst) / 2 else "black")
    fig.colorbar(im, ax=ax, label="rank (1 = best)")
    ax.set_title(f"Rank per task and dataset ({family} tasks; controls and ceilings are not ranked)", fontsize=9)
    return _save(fig, fmt)


def results_table(report: Report, key: tuple[str, str], fmt: str = "png") -> bytes | None:
    """scIB-style figure: one row per model; metrics as circles (size and colour = min-max-scaled
    value, the raw value printed below), aggregates as bars (raw value beside), counts as numbers;
    columns grouped under their family (bio / batch / ontology ...), aggregates last."""
    plt = _plt()
    from matplotlib.lines import Line2D

    t = report.tables[key]
    s = report.scores[(report.scores["task"] == key[0]) & (report.scores["dataset"] == key[1])]
    if s.empty or not t.columns:
        return None
    groups: dict[str, list] = {}
    for c in sorted(t.columns, key=lambda c: c.is_aggregate):
        groups.setdefault("aggregate" if c.is_aggregate else c.family or "other", []).append(c)
    cols = [c for cs in groups.values() for c in cs]
    models = list(t.frame["model"])
    by = s.set_index(["model", "column"])
    cmap = plt.get_cmap("PRGn")
    fig, ax = plt.subplots(figsize=(2.0 + 0.95 * len(cols), 1.6 + 0.45 * len(models)))
    for j, c in enumerate(cols):
        for i, m in enumerate(models):
            raw, v = (by.loc[(m, c.id), ["mean", "min_max"]] if (m, c.id) in by.index else (math.nan, math.nan))
            label = "—" if math.isnan(raw) else f"{raw:.0f}" if c.is_count else f"{raw:.2f}"
            if c.is_count or math.isnan(v):
                ax.text(j, i, label, ha="center", va="center", fontsize=7)
            elif c.is_aggregate:
                ax.barh(i, 0.55 * v, left=j - 0.45, height=0.55, color=cmap(v))
                ax.text(j - 0.42 + 0.55 * v, i, label, ha="left", va="center", fontsize=6.5)
            else:
                ax.scatter(j, i - 0.08, s=30 + 220 * v, color=cmap(v), edgecolors="k", linewidths=0.3, zorder=2)
                ax.text(j, i + 0.33, label, ha="center", va="center", fontsize=6)
    start = 0
    for name, cs in groups.items():  # group header above its columns
        ax.annotate("", xy=(start - 0.4, -0.85), xytext=(start + len(cs) - 0.6, -0.85), annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "lw": 0.8})
        ax.text(start + (len(cs) - 1) / 2, -1.0, name, ha="center", va="bottom", fontsize=8, fontweight="bold")
        start += len(cs)
    ax.set_xticks(range(len(cols)), [c.id for c in cols], rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(models)), [m + (" (ref)" if m in t.references else "") for m in models], fontsize=8)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylim(len(models) - 0.4, -0.6)
    ax.tick_params(length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1)), ax=ax, fraction=0.03, pad=0.02,
                 label="min-max-scaled (0 = worst, 1 = best here)")
    sizes = [Line2D([], [], ls="", marker="o", markersize=math.sqrt(30 + 220 * v), markerfacecolor=cmap(v),
                    markeredgecolor="k", markeredgewidth=0.3, label=f"{v:g}") for v in (0.0, 0.5, 1.0)]  # floats: an int indexes the LUT
    ax.legend(handles=sizes, title="scaled", loc="upper left", bbox_to_anchor=(1.12, 1.0), fontsize=7, title_fontsize=7,
              frameon=False, labelspacing=1.2)
    what = ["circles: metrics (raw value below)"]
    if any(c.is_aggregate for c in cols):
        what.append("bars: aggregates (raw value beside)")
    if any(c.is_count for c in cols):
        what.append("plain numbers: counts (not scaled)")
    ax.set_title(f"{key[0]} · {key[1]}\n" + "; ".join(what), fontsize=9, pad=42)
    return _save(fig, fmt)


def write_figures(report: Report, folder) -> list:
    """Every figure as PNG and SVG files in ``folder``; returns the paths written."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [(name, lambda fmt, f=family: rank_heatmap(report, f, fmt)) for family, name in heatmap_names(report).items()]
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
