"""A Report laid out as sections of plain-text tables: what every text format (terminal, Markdown,
LaTeX, HTML) shows, decided once. Renderers only change the markup."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from scfm_bench.leaderboard.build import EFFICIENCY, REFERENCE_KINDS, Table
from scfm_bench.leaderboard.export import MISSING, caption, display_header, display_rows, header
from scfm_bench.leaderboard.report import Report, best_baseline
from scfm_bench.bootstrap import MIN_UNITS

LEAK = "†"
EXCLUDED = "⊘"
REFERENCE_NOTE = "ref: a control or ceiling (declared kind), shown for reference and never ranked."


@dataclass(frozen=True)
class View:
    title: str
    header: list[str]
    rows: list[list[str]]
    statuses: list[str] = field(default_factory=list)  # per row: ok / partial / skipped / failed
    emphasis: frozenset[str] = frozenset()  # headers shown bold (aggregates)


@dataclass(frozen=True)
class Section:
    title: str
    notes: list[str]
    views: list[View]
    key: tuple[str, str] | None = None  # (task, dataset) for per-dataset sections


def _num(v: float, fmt: str = "{:.3f}") -> str:
    return MISSING if v is None or math.isnan(v) else fmt.format(v)


def _ci(lo: float, hi: float) -> str:
    return MISSING if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def sections(report: Report) -> list[Section]:
    out = [overall_section(report, family) for family in report.overall]
    return out + [dataset_section(report, key, t) for key, t in report.tables.items()]


def overall_title(report: Report, family: str) -> str:
    return "Overall" if len(report.overall) == 1 else f"Overall · {family}"


def overall_section(report: Report, family: str) -> Section:
    f = report.overall[family]
    labels = [c for c in f.columns if c not in ("model", "kind", "mean_rank", "ranked_in")]
    datasets = {lab: lab.split(" · ", 1)[1] for lab in labels}
    rows = [[r["model"], r["kind"], *(EXCLUDED if (r["model"], datasets[lab]) in report.excluded else _num(r[lab])
                                      for lab in labels), _num(r["mean_rank"], "{:.2f}"), str(r["ranked_in"])]
            for _, r in f.iterrows()]
    notes = ["Each dataset column is the score that ranks that table; mean rank is over the tables a model is ranked in."]
    if report.excluded:
        notes.append(f"{EXCLUDED} unseen-only view: left out because the dataset is in the model's pretraining corpus "
                     "(datasets.yaml in_pretraining); ranks use only the datasets each model has not seen.")
    if len(report.overall) > 1:
        notes.append(f"Only {family} tasks: models of different task families are never ranked against each other.")
    if any(k in REFERENCE_KINDS for k in f["kind"]):
        notes.append(REFERENCE_NOTE)
    title = overall_title(report, family)
    return Section(title, notes, [View(title, ["model", "kind", *labels, "mean rank", "ranked in"], rows)])


def dataset_section(report: Report, key: tuple[str, str], table: Table) -> Section:
    task, dataset = key
    scores = report.scores[(report.scores["task"] == task) & (report.scores["dataset"] == dataset)]
    by_cell = {(r.model, r.column): r for r in scores.itertuples(index=False)}
    paired = [c for c in report.comparisons if (c.task, c.dataset) == key]
    comps = {c.model: c for c in paired if c.column == table.ranked_by}  # the "vs baseline" column
    base = best_baseline(table, report.kinds)
    leaks = {m for m in table.frame["model"] if (m, dataset) in report.leakage}

    head = display_header(table)
    n_cols = len(table.columns)
    ranked = table.ranked_by if any(c.id == table.ranked_by for c in table.columns) else None
    extra = ([f"{ranked} 95% CI"] if ranked else []) + ([f"vs {base}"] if comps else [])
    head = head[:2 + n_cols] + extra + head[2 + n_cols:]
    rows, statuses = [], []
    for status, cells in display_rows(table):
        model = cells[1]
        add = []
        if ranked:
            s = by_cell.get((model, ranked))
            add.append(_ci(s.ci_low, s.ci_high) if s is not None else MISSING)
        if comps:
            c = comps.get(model)
            add.append("baseline" if model == base else f"{c.diff:+.3f} {c.marker}" if c else MISSING)
        cells[1] = model + (f" {LEAK}" if model in leaks else "")
        rows.append(cells[:2 + n_cols] + add + cells[2 + n_cols:])
        statuses.append(status)
    rows, footnotes = _footnote_reasons(rows, head.index("reason"))
    aggregates = frozenset(header(c) for c in table.columns if c.is_aggregate)
    main = View("Scores (mean ± sd over seeds)", head, rows, statuses, aggregates)
    views = [main]

    order = list(table.frame["model"])
    for attr, title in (("min_max", "Min-max-scaled (0 = worst, 1 = best model here)"),
                        ("control_scaled", "Control-scaled (0 = negative controls, 1 = ceilings)")):
        values = {k: getattr(v, attr) for k, v in by_cell.items()}
        scaled = [c for c in table.columns if not c.is_count]  # counts are never scaled
        if any(not math.isnan(v) for v in values.values()):
            views.append(View(title, ["model", *(header(c) for c in scaled)],
                              [[m, *(_num(values.get((m, c.id), math.nan)) for c in scaled)] for m in order],
                              emphasis=aggregates))
    if paired:
        views.append(View(f"Paired comparison with the best baseline ({base})",
                          ["model", "column", "Δ vs baseline", "95% CI", "n", "resampled", "sig"],
                          [[c.model, c.column, f"{c.diff:+.3f}", _ci(c.ci_low, c.ci_high), str(c.n), c.unit, c.marker]
                           for c in paired]))

    notes = [caption(table)]
    if table.references:
        notes.append(REFERENCE_NOTE)
    notes += [f"{m}: embedding computed in {where}; embed_s and cells_per_s are not measured for it (—)."
              for m, where in table.untimed.items()]
    if report.weights.get(key):
        notes.append(report.weights[key])
    if ranked:
        notes.append(f"95% CI: percentile bootstrap of the mean over seeds ({report.n_boot} resamples, seeded); "
                     f"shown only with at least {MIN_UNITS} seeds.")
    if paired:
        notes.append(f"Δ: direction-signed difference of the means (positive = better than {base}), with the 95% "
                     "percentile interval of that same statistic from a paired bootstrap of the units named under "
                     "'resampled': the metric's cells, labels or perturbations (values stored beside the records), "
                     f"else seeds. ▲/▼ the interval excludes 0; ≈ it covers 0; ? fewer than {MIN_UNITS} units "
                     "(no interval is made up).")
    if leaks:
        notes.append(f"{LEAK} the model's pretraining corpus contains this dataset (datasets.yaml in_pretraining): "
                     "its scores may be inflated.")
    notes += [w for w in report.warnings if f"dataset {dataset!r}" in w]
    notes += footnotes
    return Section(f"{task} · {dataset}", notes, views, key=key)


_REASON = re.compile(r"^(\S+?): (.+)$", re.S)  # "<metric id>: <why>", as the metric evaluation writes them


def _footnote_reasons(rows: list[list[str]], col: int) -> tuple[list[list[str]], list[str]]:
    """A reason shared by several rows (e.g. a missing input skipping the same metrics for every model)
    becomes one numbered note naming the metrics; the rows point to it with [n]."""
    parsed = []
    for row in rows:
        parts = [] if row[col] == MISSING else row[col].split("; ")
        parsed.append([(m.group(1), m.group(2)) if (m := _REASON.match(p)) else (None, p) for p in parts])
    seen: dict[str, set[int]] = {}
    for i, parts in enumerate(parsed):
        for metric, why in parts:
            if metric is not None:  # only per-metric reasons; others (incomplete seeds) stay in their row
                seen.setdefault(why, set()).add(i)
    shared = [why for why, where in seen.items() if len(where) > 1]
    if not shared:
        return rows, []
    number = {why: k for k, why in enumerate(shared, 1)}
    out = []
    for row, parts in zip(rows, parsed):
        kept = [f"[{number[why]}]" if metric is not None and why in number else p
                for p, (metric, why) in zip(row[col].split("; "), parts)]
        out.append(row[:col] + ["; ".join(dict.fromkeys(kept)) or MISSING] + row[col + 1:])
    notes = []
    for why in shared:
        ids = dict.fromkeys(i for parts in parsed for i, w in parts if w == why and i)
        notes.append(f"[{number[why]}] {', '.join(ids)}: {why}")
    return out, notes


def footer(report: Report) -> list[str]:
    p = report.provenance

    def join(values) -> str:
        return ", ".join(values) or "not recorded"

    suites = ", ".join(f"{n} v{v}" for n, v in p.suites.items()) or "not recorded"
    return [
        f"scfm-bench {join(p.package_versions)} · git {join(c[:12] for c in p.git_commits)}",
        f"Cell Ontology: {join(p.cl_versions)} · metric suites: {suites}",
        f"Runs ({len(p.run_ids)}): {join(p.run_ids)}",
        f"Efficiency columns: {', '.join(EFFICIENCY)} (mean over seeds).",
    ]
