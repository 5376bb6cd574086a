"""Report exporters: Markdown, LaTeX, long-format CSV and JSON (HTML in html.py, terminal in terminal.py)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from scfm_bench.leaderboard.export import json_table, num
from scfm_bench.leaderboard.report import SCORE_COLUMNS, Report
from scfm_bench.leaderboard.views import View, footer, sections

TITLE = "scfm-bench report"


def _md_escape(text: str) -> str:
    # a pipe would end the cell and a newline the row
    return " ".join(text.replace("|", r"\|").split())


def _md_table(view: View) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(_md_escape(c) for c in cells) + " |"

    return [f"**{view.title}**", "", row(view.header), row(["---"] * len(view.header)), *map(row, view.rows), ""]


def to_markdown(report: Report) -> str:
    lines = [f"# {TITLE}", ""] + [f"> **Warning:** {w}\n" for w in report.warnings]
    for s in sections(report):
        lines += [f"## {s.title}", ""]
        lines += [n for note in s.notes for n in (note, "")]
        lines += [ln for v in s.views for ln in _md_table(v)]
    lines += ["---", ""] + [f"{ln}  " for ln in footer(report)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "—": "--", "†": r"$^\dagger$", "▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$",
        "≈": r"$\approx$", "Δ": r"$\Delta$", "·": r"$\cdot$", "≥": r"$\geq$", "−": "-"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(report: Report) -> str:
    """A LaTeX fragment (booktabs; \\blacktriangle needs amssymb) to \\input into a paper."""
    out = [f"% {TITLE}: needs \\usepackage{{booktabs,amssymb}}"]
    for s in sections(report):
        out.append(f"\\subsection*{{{tex_escape(s.title)}}}")
        for v in s.views:
            spec = "l" * 2 + "r" * (len(v.header) - 2)
            out += [
                "\\begin{table}[htbp]\\centering\\small",
                f"\\caption{{{tex_escape(v.title)}. {tex_escape(' '.join(s.notes))}}}",
                f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(tex_escape(h) for h in v.header) + r" \\", "\\midrule",
                *(" & ".join(tex_escape(c) for c in row) + r" \\" for row in v.rows),
                "\\bottomrule", "\\end{tabular}", "\\end{table}",
            ]
    out += [f"% {ln}" for ln in footer(report)] + ["% " + w for w in report.warnings]
    return "\n".join(out) + "\n"


def to_csv(report: Report, path_or_buf: str | Path | IO[str]) -> None:
    """Long format: one row per task, dataset, model and column, every number of the report."""
    report.scores[list(SCORE_COLUMNS)].to_csv(path_or_buf, index=False)


def _scored_table(report: Report, key: tuple[str, str]) -> dict[str, Any]:
    out = json_table(report.tables[key])
    scores = report.scores[(report.scores["task"] == key[0]) & (report.scores["dataset"] == key[1])]
    by_cell = {(r.model, r.column): r for r in scores.itertuples(index=False)}
    for row in out["rows"]:
        row["kind"] = report.kinds.get(row["model"])
        row["in_pretraining"] = (row["model"], key[1]) in report.leakage
        for cid, cell in row["values"].items():
            s = by_cell.get((row["model"], cid))
            if cell is not None and s is not None:
                cell |= {"ci95": None if math.isnan(s.ci_low) else [float(s.ci_low), float(s.ci_high)],
                         "min_max": num(s.min_max), "control_scaled": num(s.control_scaled)}
    out["aggregate_weights"] = report.weights.get(key)
    return out


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def to_json(report: Report) -> str:
    # NaN -> null, numpy -> JSON numbers
    overall = {f: json.loads(frame.to_json(orient="records")) for f, frame in report.overall.items()}
    doc = {
        "tables": [_scored_table(report, k) for k in report.tables],
        "comparisons": [_json_safe(asdict(c) | {"significant": c.significant, "marker": c.marker})
                        for c in report.comparisons],
        "overall": overall,
        "warnings": list(report.warnings),
        "provenance": asdict(report.provenance),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
