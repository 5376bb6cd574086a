"""One self-contained HTML file: inline CSS, a small inline sorter, figures as base64 PNG. No network."""

from __future__ import annotations

import base64
from html import escape

from scfm_bench.leaderboard.figures import heatmap_names, rank_heatmap, results_table
from scfm_bench.leaderboard.formats import TITLE
from scfm_bench.leaderboard.report import Report
from scfm_bench.leaderboard.views import View, footer, sections

_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}td.t,th.t{text-align:left}th{background:#f3f3f3;cursor:pointer}
tr.failed{color:#b00}tr.skipped,tr.incomplete{color:#a60}.note{color:#555;max-width:70em}.warn{color:#a60;font-weight:bold}
footer{color:#777;font-size:12px;border-top:1px solid #ccc;margin-top:2em}img{max-width:100%}"""

# click a header: sort by that column (numbers numerically, "—" last), click again to reverse
_JS = """document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const tb=th.closest('table').tBodies[0],rows=[...tb.rows],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const key=r=>{const t=r.cells[i].textContent.trim(),n=parseFloat(t.replace('[',''));return isNaN(n)?t:n};
rows.sort((a,b)=>{const x=key(a),y=key(b);if(typeof x!==typeof y)return typeof x==='number'?-1:1;
return (x<y?-1:x>y?1:0)*(asc?1:-1)});rows.forEach(r=>tb.appendChild(r))}));"""

_TEXT = {"model", "kind", "status", "reason", "column", "resampled"}


def _img(png: bytes | None, alt: str) -> str:
    return "" if png is None else f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(view: View) -> str:
    cls = ['t' if h in _TEXT else '' for h in view.header]
    head = "".join(f'<th class="{c}">{escape(h)}</th>' for h, c in zip(view.header, cls))
    statuses = view.statuses or ["ok"] * len(view.rows)
    body = "".join(f'<tr class="{escape(s)}">' + "".join(f'<td class="{c}">{escape(v)}</td>' for v, c in zip(row, cls))
                   + "</tr>" for s, row in zip(statuses, view.rows))
    return f'<h3>{escape(view.title)}</h3><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def to_html(report: Report, *, figures: bool = True) -> str:
    parts = [f"<h1>{TITLE}</h1>"] + [f'<p class="warn">Warning: {escape(w)}</p>' for w in report.warnings]
    if figures:
        parts += [_img(rank_heatmap(report, family), f"rank heatmap, {family} tasks") for family in heatmap_names(report)]
    for s in sections(report):
        parts.append(f'<section><h2>{escape(s.title)}</h2>' + "".join(f'<p class="note">{escape(n)}</p>' for n in s.notes))
        parts += [_table(v) for v in s.views]
        if figures and s.key is not None:
            parts.append(_img(results_table(report, s.key), f"results table {s.title}"))
        parts.append("</section>")
    parts.append("<footer>" + "".join(f"<p>{escape(ln)}</p>" for ln in footer(report)) + "</footer>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{TITLE}</title><style>{_CSS}</style>'
            f'</head><body>{"".join(parts)}<script>{_JS}</script></body></html>\n')
