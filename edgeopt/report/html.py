"""The HTML report: one self-contained file (inline CSS, inline SVG plots, a few lines of inline JS to sort)."""
from __future__ import annotations

import json
from html import escape

from edgeopt.recommend import Recommendation, pareto
from edgeopt.results import Row

from .data import ReportData
from .svg import Point, bars, colours_for, scatter

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #ddd;padding:3px 6px;text-align:left}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fff0f0} tr.noisy td.lat{color:#a60} .muted{color:#777} .good{color:#176e1a}
.bad{color:#b00020} .plots{display:flex;flex-wrap:wrap;gap:12px} svg.plot{background:#fff;border:1px solid #eee}
svg.plot text{font-size:11px;fill:#333} svg.plot text.title{font-size:13px;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:8px 12px}
.card b{font-size:20px;display:block} pre{background:#f7f7f7;padding:8px;overflow:auto;white-space:pre-wrap}
"""
SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v !== undefined ? a.cells[col].dataset.v : a.cells[col].textContent;
      var y = b.cells[col].dataset.v !== undefined ? b.cells[col].dataset.v : b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _num(value, fmt: str = "{:.3g}", suffix: str = "") -> str:
    if value is None:
        return '<td class="num" data-v="">-</td>'
    return f'<td class="num" data-v="{value}">{escape(fmt.format(value))}{suffix}</td>'


def _text(value) -> str:
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(headers: list[str], body: list[str], css: str = "sortable") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _candidates_table(rows: list[Row]) -> str:
    headers = ["model", "recipe", "steps", "format", "precision", "runtime", "device", "batch", "median ms",
               "p95 ms", "median 95% CI", "cv", "throughput/s", "accuracy", "fidelity", "size MB", "memory MB",
               "params", "MACs", "parent", "status"]
    body = []
    for r in rows:
        css = "failed" if not r.ok else ("noisy" if r.noisy else "")
        ci = (f"{r.median_ci_low:.3g}–{r.median_ci_high:.3g}" if r.median_ci_low is not None
              and r.median_ci_high is not None else "-")
        status = "ok" + (" (noisy)" if r.noisy else "") if r.ok else "failed"
        body.append(
            f'<tr class="{css}" title="{escape(r.candidate_id)}">' + _text(r.model) + _text(r.recipe)
            + _text(" → ".join(r.steps) or "—") + _text(r.format) + _text(r.precision) + _text(r.runtime)
            + _text(r.device + (" (emulated)" if r.emulated else "")) + _num(r.batch_size, "{}")
            + _num(r.latency_ms("median")).replace("num", "num lat", 1)
            + _num(r.latency_ms("p95")).replace("num", "num lat", 1) + _text(ci)
            + _num(r.latency_ms("cv"), "{:.1%}") + _num(r.throughput, "{:,.0f}")
            + _num(r.accuracy, "{:.2%}") + _num(r.fidelity, "{:.2%}") + _num(r.size_mb, "{:.3g}")
            + _num(r.memory_mb, "{:.0f}") + _num(r.params, "{:,}") + _num(r.macs, "{:,}")
            + _text((r.parent or "")[:12] or "—") + _text(status) + "</tr>")
    return _table(headers, body)


def _gains_table(data: ReportData) -> str:
    if not data.gains:
        return '<p class="muted">No FP32 torch reference measured, so no gains to compute.</p>'
    headers = ["model", "recipe", "runtime", "device", "batch", "speedup vs FP32 torch", "accuracy Δ (pt)",
               "size ×smaller", "memory ×smaller"]
    body = []
    for g in sorted(data.gains, key=lambda g: (g.model, g.device, g.batch_size, -(g.speedup or 0))):
        delta = g.accuracy_delta_pt
        delta_cell = (f'<td class="num {"bad" if delta < -1 else "good" if delta >= 0 else ""}" data-v="{delta}">'
                      f"{delta:+.2f}</td>") if delta is not None else _num(None)
        body.append("<tr>" + _text(g.model) + _text(g.recipe) + _text(g.runtime) + _text(g.device)
                    + _num(g.batch_size, "{}") + _num(g.speedup, "{:.2f}", "×") + delta_cell
                    + _num(g.size_ratio, "{:.2f}", "×") + _num(g.memory_ratio, "{:.2f}", "×") + "</tr>")
    return _table(headers, body)


def _pareto_plots(data: ReportData) -> str:
    plots = []
    colours = colours_for([r.model for r in data.rows])
    for device, batch in data.groups():
        group = [r for r in data.ok_rows if r.device == device and r.batch_size == batch and r.accuracy is not None
                 and r.latency_ms("median")]
        frontier = {id(r) for model in {r.model for r in group}
                    for r in pareto([g for g in group if g.model == model], "latency:median")}
        points = [Point(r.latency_ms("median"), 100 * r.accuracy, f"{r.label} {r.precision}", r.model,
                        id(r) in frontier) for r in group]
        plots.append(scatter(points, f"accuracy vs median latency — {device}, batch {batch}", "median latency (ms)",
                             "accuracy (%)", log_x=True, colours=colours))
    return '<div class="plots">' + "".join(plots) + "</div>" if plots else '<p class="muted">no data</p>'


def _resource_charts(data: ReportData) -> str:
    sizes = {}
    for r in data.ok_rows:
        if r.size_mb is not None:
            sizes[f"{r.model}/{r.recipe} {r.format} {r.precision}"] = r.size_mb
    size_chart = bars(sorted(sizes.items(), key=lambda kv: -kv[1]), "model file size", "MB")
    memory_charts = []
    for device in sorted({r.device for r in data.ok_rows}):
        batch = min(r.batch_size for r in data.ok_rows if r.device == device)
        items = [(r.label, r.memory_mb) for r in data.ok_rows
                 if r.device == device and r.batch_size == batch and r.memory_mb is not None]
        memory_charts.append(bars(sorted(items, key=lambda kv: -kv[1]), f"peak memory — {device}, batch {batch}",
                                  "MB"))
    return '<div class="plots">' + size_chart + "".join(memory_charts) + "</div>"


def _recommendation(rec: Recommendation | None) -> str:
    if rec is None:
        return ""
    parts = [f"<h2>Recommendation</h2><p>Budget: {escape(rec.budget.describe())}. {rec.considered} candidates "
             f"considered, {len(rec.feasible)} feasible.</p>"]
    if rec.picks:
        parts.append("<ul>" + "".join(f"<li><b>{escape(p.family)}</b>: {escape(p.row.label)} "
                                      f"({escape(p.row.precision)}) — {escape(p.reason)}</li>" for p in rec.picks)
                     + "</ul>")
    if rec.near_misses:
        parts.append("<p>Nearest misses (what to relax):</p><ul>" + "".join(
            f"<li>{escape(m.row.label)} ({escape(m.row.family)}): "
            f"{escape('; '.join(b.describe() for b in m.blockers))}</li>" for m in rec.near_misses) + "</ul>")
    return "".join(parts)


def _failures(rows: list[Row]) -> str:
    if not rows:
        return '<p class="good">No failures.</p>'
    body = ["<tr class='failed'>" + _text(r.model) + _text(r.recipe) + _text(r.runtime) + _text(r.device)
            + _num(r.batch_size, "{}") + f"<td><pre>{escape(r.error or '(no error recorded)')}</pre></td></tr>"
            for r in rows]
    return _table(["model", "recipe", "runtime", "device", "batch", "error"], body)


def _provenance(data: ReportData) -> str:
    prov = dict(data.provenance)
    versions = prov.pop("versions", {})
    items = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v) if isinstance(v, (list, dict)) else str(v))}"
                    f"</td></tr>" for k, v in prov.items())
    items += "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in sorted(versions.items()))
    return f'<table class="kv">{items}</table>' if items else '<p class="muted">none recorded</p>'


def render_html(data: ReportData) -> str:
    ok, failed = len(data.ok_rows), len(data.failures)
    models = sorted({r.model for r in data.rows})
    devices = sorted({r.device for r in data.rows})
    best = max((g for g in data.gains if g.speedup), key=lambda g: g.speedup, default=None)
    candidates = len({r.candidate_id for r in data.rows})
    cards = [("candidates", str(candidates)), ("measurements (× batch sizes)", str(len(data.rows))),
             ("ok", str(ok)), ("failed", str(failed)),
             ("models", ", ".join(models) or "-"), ("devices", ", ".join(devices) or "-")]
    if best:
        cards.append(("best speedup vs FP32 torch", f"{best.speedup:.1f}× ({best.model}/{best.recipe} "
                                                     f"{best.runtime})"))
    notes = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
    config = json.dumps(data.config, indent=2, default=str) if data.config else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(data.title)}</title><style>{STYLE}</style></head><body>
<h1>{escape(data.title)}</h1><p class="muted">generated {escape(data.generated)}</p>
<div class="cards">{"".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in cards)}</div>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
{_recommendation(data.recommendation)}
<h2>Accuracy vs latency (Pareto frontier per model ringed)</h2>{_pareto_plots(data)}
<h2>What each technique bought (vs the FP32 torch-eager model, same device and batch)</h2>{_gains_table(data)}
<h2>Size and memory</h2>{_resource_charts(data)}
<h2>Every candidate (click a header to sort)</h2>{_candidates_table(data.rows)}
<h2>Failures</h2>{_failures(data.failures)}
<h2>Provenance</h2>{_provenance(data)}
{f"<h2>Config</h2><pre>{escape(config)}</pre>" if config else ""}
<script>{SORT_SCRIPT}</script>
</body></html>
"""
