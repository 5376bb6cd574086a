"""Regression gate: match two sets of records by (task, dataset, model, metric, seed) and classify each cell.

A cell regresses when its direction-signed change is below -tolerance (absolute) or when it was ok
and is now failed/skipped; it is missing when the baseline has it and the new records do not.
Provenance changes (dataset hash, Cell Ontology version, package versions) are listed, never gating;
package versions live in the run manifests, so without a manifest on both sides they are not compared
(and the result says so rather than listing every package as changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from scfm_bench.leaderboard.build import column_id
from scfm_bench.records import MetricResult, RunManifest, latest_per_key

GATING = ("regression", "missing")


@dataclass(frozen=True)
class CellChange:
    task: str
    dataset: str
    model: str
    metric: str
    seed: int
    status: str  # regression / improvement / unchanged / missing / new
    baseline: float | None
    new: float | None
    delta: float | None  # new - baseline (raw, not signed)
    note: str = ""


@dataclass(frozen=True)
class CompareResult:
    cells: tuple[CellChange, ...]
    provenance: tuple[str, ...]
    tolerance: float
    not_compared: tuple[str, ...] = ()  # provenance that could not be compared, and why

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.cells)

    @property
    def failed(self) -> bool:
        return any(c.status in GATING for c in self.cells)


def _index(records: list[MetricResult], metrics: set[str] | None) -> dict[tuple, MetricResult]:
    out = {}
    for r in latest_per_key(sorted(records, key=lambda r: r.created_at)):
        col = column_id(r.metric, r.submetric)
        if metrics is None or col in metrics or r.metric == "*":
            out[(r.task, r.dataset, r.model, col, r.seed)] = r
    return out


def _classify(key: tuple, b: MetricResult | None, n: MetricResult | None, tol: float) -> CellChange:
    if n is None:
        return CellChange(*key, "missing", b.value, None, None, "in the baseline, not in the new records")
    if b is None:
        return CellChange(*key, "new", None, n.value, None, n.reason or "")
    if b.status == "ok" and n.status != "ok":
        return CellChange(*key, "regression", b.value, None, None, f"now {n.status}: {n.reason}")
    if b.status != "ok" and n.status == "ok":
        return CellChange(*key, "improvement", None, n.value, None, f"was {b.status}: {b.reason}")
    if b.status != "ok":
        return CellChange(*key, "unchanged", None, None, None, f"still {n.status}: {n.reason}")
    delta = n.value - b.value
    signed = delta if n.higher_is_better else -delta
    status = "regression" if signed < -tol else "improvement" if signed > tol else "unchanged"
    return CellChange(*key, status, b.value, n.value, delta, "" if n.higher_is_better else "lower is better")


def _provenance(base: list[MetricResult], new: list[MetricResult], bm: list[RunManifest],
                nm: list[RunManifest]) -> list[str]:
    def per(records, attr):
        return {d: sorted({str(v) for r in records if r.dataset == d and (v := attr(r))})
                for d in sorted({r.dataset for r in records})}

    out = []
    for what, attr in (("dataset sha256", lambda r: r.dataset_sha256), ("CL version", lambda r: r.params.get("ontology_version"))):
        b, n = per(base, attr), per(new, attr)
        out += [f"{d}: {what} {b[d]} -> {n[d]}" for d in sorted(set(b) & set(n)) if b[d] != n[d]]

    def packages(ms):
        out: dict[str, str | None] = {}
        for m in sorted(ms, key=lambda m: m.created_at):
            out |= m.packages | {"scfm-bench": m.package_version}
        return out

    if bm and nm:
        pb, pn = packages(bm), packages(nm)
        out += [f"package {k}: {pb.get(k)} -> {pn.get(k)}" for k in sorted(set(pb) | set(pn)) if pb.get(k) != pn.get(k)]
    return out


def _cell_key(key: tuple) -> tuple:
    """(task, dataset, model, seed) of a (task, dataset, model, metric, seed) key."""
    return key[:3] + key[4:]


def compare_records(base: list[MetricResult], new: list[MetricResult], *, tolerance: float = 0.01,
                    metrics: list[str] | None = None, base_manifests: list[RunManifest] = (),
                    new_manifests: list[RunManifest] = ()) -> CompareResult:
    wanted = set(metrics) if metrics else None
    b, n = _index(base, wanted), _index(new, wanted)
    # a whole-cell failure ("*") in the new records stands for every metric that cell had in the baseline
    whole = {_cell_key(k): r for k, r in n.items() if k[3] == "*"}
    covered = {_cell_key(k) for k in b if k not in n and _cell_key(k) in whole}
    keys = [k for k in sorted(set(b) | set(n)) if k in b or not (k[3] == "*" and _cell_key(k) in covered)]
    cells = tuple(_classify(k, b.get(k), n.get(k) or whole.get(_cell_key(k)), tolerance) for k in keys)
    missing = [side for side, ms in (("baseline", base_manifests), ("new", new_manifests)) if not ms]
    not_compared = (f"package versions not compared: no run manifest (manifest.json) beside the {' and '.join(missing)} "
                    "records",) if missing else ()
    return CompareResult(cells, tuple(_provenance(base, new, base_manifests, new_manifests)), tolerance, not_compared)


def to_junit(result: CompareResult) -> str:
    """One testcase per cell: regressions and missing cells fail; provenance changes go to system-out."""
    suite = ET.Element("testsuite", name="scfm-bench compare", tests=str(len(result.cells)),
                       failures=str(sum(c.status in GATING for c in result.cells)), errors="0", skipped="0")
    for c in result.cells:
        case = ET.SubElement(suite, "testcase", classname=f"{c.task}.{c.dataset}.{c.model}", name=f"{c.metric}[seed={c.seed}]")
        text = f"{c.status}: baseline {c.baseline} new {c.new} delta {c.delta} (tolerance {result.tolerance}) {c.note}".strip()
        if c.status in GATING:
            ET.SubElement(case, "failure", message=f"{c.status}: {c.note or text}", type=c.status).text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.SubElement(suite, "system-out").text = "\n".join(result.provenance + result.not_compared) or "provenance unchanged"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
