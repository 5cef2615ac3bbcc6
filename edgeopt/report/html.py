"""The HTML report: one self-contained file (inline CSS, inline SVG plots, a few lines of inline JS to sort).

It opens on the answer (per family: the pick, its figures against the budget, what it costs against the FP32
model, where the artifact is), then the plots with the budget drawn on them, then every figure.
"""
from __future__ import annotations

import json
from html import escape

from edgeopt.benchmarks.latency import NOISY_EXPLANATION
from edgeopt.recommend import Budget, Pick, pareto
from edgeopt.results import Row

from .data import ACCURACY_LOSS_PT, Answer, Gain, ReportData, limit_name
from .svg import ORDER_COLOURS, Point, bars, colours_for, scatter

FIDELITY = "agreement with the FP32 model of the same architecture"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;color:#222;max-width:1352px;
padding:0 16px} h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #ddd;padding:3px 5px;text-align:left;
vertical-align:top} th{background:#f4f4f4;position:sticky;top:0} table.sortable th{cursor:pointer}
table.sortable th[aria-sort=ascending]::after{content:" ▲"} table.sortable th[aria-sort=descending]::after{content:" ▼"}
table.wide{width:100%} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.steps{min-width:190px} td.wrap{max-width:130px} small{color:#666}
tr.failed td{background:#fff0f0} tr.noisy td.lat{color:#a60} .muted{color:#777} .good{color:#176e1a}
.bad{color:#b00020} .plots{display:flex;flex-wrap:wrap;gap:12px} svg.plot{background:#fff;border:1px solid #eee}
svg.plot text{font-size:11px;fill:#333} svg.plot text.title{font-size:13px;font-weight:600}
svg.plot text.pick{font-weight:700} svg.plot text.limit{fill:#b00020}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:8px 12px}
.card b{font-size:20px;display:block} pre{background:#f7f7f7;padding:8px;overflow:auto;white-space:pre-wrap}
.answers{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}
.answer{border:2px solid #176e1a;border-radius:8px;padding:10px 14px} .answer.none{border-color:#b00020}
.answer h3{margin:0 0 6px;font-size:16px} .answer table{width:100%;margin:6px 0} .answer code{font-size:12px;
overflow-wrap:anywhere} .legend{font-size:12px;color:#444} .legend dt{font-weight:600;display:inline}
.legend dd{display:inline;margin:0 14px 0 4px}
"""
# Each table sorts by its own columns (th.cellIndex is the column within that table's row).
SORT_SCRIPT = """
function cellValue(row, col){
  var cell = row.cells[col];
  return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
}
function sortTable(table, th){
  var col = th.cellIndex, body = table.tBodies[0];
  var asc = th.getAttribute('aria-sort') !== 'ascending';
  table.tHead.querySelectorAll('th').forEach(function(h){ h.removeAttribute('aria-sort'); });
  th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function(a, b){
    var x = cellValue(a, col), y = cellValue(b, col);
    if (x === '' || y === '') return (x === '') - (y === '');  /* missing values last either way */
    var nx = Number(x), ny = Number(y);
    var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(function(r){ body.appendChild(r); });
}
document.querySelectorAll('table.sortable').forEach(function(table){
  table.tHead.querySelectorAll('th').forEach(function(th){
    th.addEventListener('click', function(){ sortTable(table, th); });
  });
});
"""


def _num(value, fmt: str = "{:.3g}", suffix: str = "", css: str = "num") -> str:
    if value is None:
        return f'<td class="{css}" data-v="">-</td>'
    return f'<td class="{css}" data-v="{value}">{escape(fmt.format(value))}{suffix}</td>'


def _text(value, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<td{attr}>{escape('' if value is None else str(value))}</td>"


def _table(headers: list[str], body: list[str], css: str = "sortable", titles: dict[str, str] | None = None) -> str:
    titles = titles or {}
    head = "".join((f'<th title="{escape(titles[h])}">' if h in titles else "<th>") + f"{escape(h)}</th>"
                   for h in headers)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _compact(value: int | None) -> str:
    """12345678 -> 12.3M: parameter and MAC counts without widening the table."""
    if value is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def _delta_css(delta: float | None) -> str:
    """The one colour rule for an accuracy change: green = nothing lost, red = more than ACCURACY_LOSS_PT lost."""
    if delta is None:
        return ""
    return "good" if delta >= 0 else "bad" if delta < -ACCURACY_LOSS_PT else ""


def _delta(gain: Gain | None) -> str:
    """Accuracy change in points with its 95% interval, coloured by the one rule."""
    if gain is None or gain.accuracy_delta_pt is None:
        return "-"
    ci = gain.accuracy_delta_ci_pt
    interval = f" <small>(95% CI {ci[0]:+.1f} to {ci[1]:+.1f})</small>" if ci else ""
    return f'<span class="{_delta_css(gain.accuracy_delta_pt)}">{gain.accuracy_delta_pt:+.2f} pt</span>{interval}'


def _accuracy(row: Row, separator: str = " ") -> str:
    if row.accuracy is None:
        return "-"
    ci = row.accuracy_ci
    return ("agreement " if row.agreement else "") + f"{row.accuracy:.2%}" + (
        f"{separator}<small>({ci[0]:.1%}–{ci[1]:.1%})</small>" if ci else "")


def _parent_names(rows: list[Row]) -> dict[str, str]:
    """sha256 -> a readable name of that artifact, for the parent column."""
    return {r.sha256: f"{r.model}/{r.recipe} {r.format} {r.precision}" for r in rows if r.sha256}


def _made_from(row: Row) -> str:
    """A parent that was not measured itself, named by what made it: `cnn after export → prune`."""
    earlier = [step.split("(")[0] for step in row.steps[:-1]]
    return f"{row.model} after {' → '.join(earlier)}" if earlier else f"{row.model} (trained model)"


def _candidates_table(rows: list[Row]) -> str:
    headers = ["model", "recipe and steps", "format", "runtime", "device", "batch", "median ms (95% CI)", "p95 ms",
               "cv", "throughput/s", "accuracy (95% CI)", "fidelity", "size MB", "memory MB", "params", "MACs",
               "parent", "status"]
    titles = {"fidelity": f"fidelity: {FIDELITY}", "cv": "coefficient of variation of the latency samples",
              "parent": "the artifact this one was made from"}
    parents = _parent_names(rows)
    body = []
    for r in rows:
        css = "failed" if not r.ok else ("noisy" if r.noisy else "")
        ci = (f"<br><small>{r.median_ci_low:.3g}–{r.median_ci_high:.3g}</small>" if r.median_ci_low is not None
              and r.median_ci_high is not None else "")
        median = r.latency_ms("median")
        status = ("noisy" if r.noisy else "ok") if r.ok else "failed"
        steps = "<br><small>" + escape(" → ".join(r.steps)) + "</small>" if r.steps else ""
        parent = parents.get(r.parent or "", _made_from(r) if r.parent else "—")
        body.append(
            f'<tr class="{css}" title="{escape(r.candidate_id)}">' + _text(r.model)
            + f'<td class="steps" data-v="{escape(r.recipe)}">{escape(r.recipe)}{steps}</td>'
            + _text(f"{r.format} {r.precision}") + _text(r.runtime)
            + _text(r.device + (" (emulated)" if r.emulated else "")) + _num(r.batch_size, "{}")
            + f'<td class="num lat" data-v="{"" if median is None else median}">{_fmt(median)}{ci}</td>'
            + _num(r.latency_ms("p95"), css="num lat") + _num(r.latency_ms("cv"), "{:.1%}")
            + _num(r.throughput, "{:,.0f}")
            + f'<td class="num" data-v="{"" if r.accuracy is None else r.accuracy}">{_accuracy(r, "<br>")}</td>'
            + _num(r.fidelity, "{:.2%}") + _num(r.size_mb, "{:.3g}") + _num(r.memory_mb, "{:.0f}")
            + f'<td class="num" data-v="{r.params or ""}">{_compact(r.params)}</td>'
            + f'<td class="num" data-v="{r.macs or ""}">{_compact(r.macs)}</td>'
            + f'<td class="wrap" title="{escape(r.parent or "")}">{escape(parent)}</td>' + _text(status) + "</tr>")
    return _table(headers, body, css="sortable wide", titles=titles)


def _gains_table(data: ReportData) -> str:
    if not data.gains:
        return '<p class="muted">No FP32 torch reference measured, so no gains to compute.</p>'
    headers = ["model", "recipe", "runtime", "device", "batch", "speedup vs FP32 torch", "accuracy Δ (pt)",
               "Δ 95% CI (pt)", "size ×smaller", "memory ×smaller"]
    body = []
    for g in sorted(data.gains, key=lambda g: (g.model, g.device, g.batch_size, -(g.speedup or 0))):
        delta, ci = g.accuracy_delta_pt, g.accuracy_delta_ci_pt
        body.append("<tr>" + _text(g.model) + _text(g.recipe) + _text(g.runtime) + _text(g.device)
                    + _num(g.batch_size, "{}") + _num(g.speedup, "{:.2f}", "×")
                    + _num(delta, "{:+.2f}", css=f"num {_delta_css(delta)}")
                    + _text(f"{ci[0]:+.1f} to {ci[1]:+.1f}" if ci else "-", "num")
                    + _num(g.size_ratio, "{:.2f}", "×") + _num(g.memory_ratio, "{:.2f}", "×") + "</tr>")
    return _table(headers, body)


def _statistic(data: ReportData) -> str:
    """The latency statistic the plots show: the one the budget's limit applies to."""
    return data.budget.percentile if data.budget else "median"


def _in_budget_scope(data: ReportData, device: str, batch: int) -> bool:
    budget = data.budget
    return budget is not None and budget.device in (None, device) and budget.batch in (None, batch)


def _family_plot(data: ReportData, rows: list[Row], family: str, device: str, batch: int, cost: str) -> str:
    """Accuracy against one cost (a latency statistic or memory_mb) for one family on one device and batch."""
    budget: Budget | None = data.budget if _in_budget_scope(data, device, batch) else None
    statistic = _statistic(data)
    value = (lambda r: r.memory_mb) if cost == "memory" else (lambda r: r.latency_ms(statistic))
    group = [r for r in rows if r.family == family and r.accuracy is not None and value(r)]
    if not group:
        return ""
    picks = {p.row.candidate_id for p in data.recommendation.picks} if budget and data.recommendation else set()
    frontier = {id(r) for model in {r.model for r in group}
                for r in pareto([g for g in group if g.model == model],
                                "memory_mb" if cost == "memory" else f"latency:{statistic}")}
    points = [Point(value(r), 100 * r.accuracy, f"{r.model}/{r.recipe} {r.runtime}", r.model, id(r) in frontier,
                    pick=r.candidate_id in picks) for r in group]
    axis = "peak memory (MB)" if cost == "memory" else f"{statistic} latency (ms)"
    limit = (budget.max_memory_mb if cost == "memory" else budget.max_latency_ms) if budget else None
    return scatter(points, f"{family}: accuracy vs {axis.split(' (')[0]} — {device}, batch {batch}", axis,
                   "accuracy (%)", log_x=True, colours=colours_for([r.model for r in data.rows]), x_max=limit,
                   y_min=100 * budget.min_accuracy if budget and budget.min_accuracy is not None else None)


def _plots(data: ReportData) -> str:
    """The budget's device and batch first (with its limits drawn); other devices and batches collapsed."""
    shown, other = [], []
    families = sorted({r.family for r in data.ok_rows})
    for device, batch in data.groups():
        rows = [r for r in data.ok_rows if r.device == device and r.batch_size == batch]
        in_scope = _in_budget_scope(data, device, batch)
        for family in families:
            plots = [_family_plot(data, rows, family, device, batch, "latency")]
            if in_scope:
                plots.append(_family_plot(data, rows, family, device, batch, "memory"))
            (shown if in_scope or data.budget is None else other).extend(p for p in plots if p)
    if not shown and not other:
        return '<p class="muted">no data</p>'
    html = f'<div class="plots">{"".join(shown)}</div>'
    if other:
        html += (f"<details><summary>Other devices and batch sizes ({len(other)} plots)</summary>"
                 f'<div class="plots">{"".join(other)}</div></details>')
    return html


def _size_chart(data: ReportData) -> str:
    sizes = {f"{r.model}/{r.recipe} {r.format} {r.precision}": r.size_mb for r in data.ok_rows
             if r.size_mb is not None}
    return bars(sorted(sizes.items(), key=lambda kv: -kv[1]), "model file size", "MB")


def _check_rows(pick: Pick, budget: Budget) -> str:
    """Each budget limit against the pick: measured, limit, met."""
    cells = []
    for margin in pick.margins:
        name, sign = limit_name(margin.constraint, budget)
        if margin.constraint == "min_accuracy":
            value, limit = _accuracy(pick.row), f"{margin.limit:.1%}"
        else:
            value = "-" if margin.value is None else f"{margin.value:.3g} {margin.unit}"
            limit = f"{margin.limit:g} {margin.unit}"
        mark = '<span class="good">✓</span>' if margin.ok else '<span class="bad">✗</span>'
        cells.append(f"<tr><td>{escape(name)}</td><td>{value}</td><td>{sign} {limit}</td><td>{mark}</td></tr>")
    return "".join(cells)


def _cost_rows(gain: Gain | None) -> str:
    if gain is None:
        return '<tr><td colspan="2" class="muted">no FP32 torch reference measured on this device and batch</td></tr>'
    return (f"<tr><td>speed-up</td><td>{_times(gain.speedup, 'faster')}</td></tr>"
            f"<tr><td>accuracy change</td><td>{_delta(gain)}</td></tr>"
            f"<tr><td>model file</td><td>{_times(gain.size_ratio, 'smaller')}</td></tr>"
            f"<tr><td>peak memory</td><td>{_times(gain.memory_ratio, 'less')}</td></tr>")


def _times(ratio: float | None, word: str) -> str:
    return "-" if ratio is None else f"{ratio:.2f}× {word}"


def _answer_card(answer: Answer, budget: Budget) -> str:
    if answer.pick is None:
        misses = "".join(f"<li>{escape(m.row.label)} {escape(m.row.precision)}: "
                         f"{escape('; '.join(b.describe() for b in m.blockers))}</li>" for m in answer.misses)
        return (f'<div class="answer none"><h3>{escape(answer.family)}: nothing fits the budget</h3>'
                + (f"<p>Nearest misses, and the limit that would admit each:</p><ul>{misses}</ul>" if misses else "")
                + "</div>")
    row = answer.pick.row
    path = row.artifact_path
    where = (f"<p><b>Artifact</b>: <code>{escape(str(path))}</code><br>Deploy: copy that folder (model file + "
             f"manifest with inputs and preprocessing); try it with <code>edgeopt predict {escape(str(path))} "
             f"--sample 0</code>; it runs on <b>{escape(row.runtime)}</b>.</p>" if path else
             f"<p><b>Artifact</b>: sha256 <code>{escape(row.sha256[:16])}…</code> in the run's cache folder; "
             f"it runs on <b>{escape(row.runtime)}</b>.</p>")
    reference = f"the FP32 {escape(row.model)} model on torch ({escape(row.device)}, batch {row.batch_size})"
    return (f'<div class="answer"><h3>{escape(answer.family)}: {escape(row.model)}/{escape(row.recipe)} on '
            f"{escape(row.runtime)} <small>{escape(row.format)} {escape(row.precision)}</small></h3>"
            f"<table><tr><th>against the budget</th><th>measured</th><th>limit</th><th></th></tr>"
            f"{_check_rows(answer.pick, budget)}</table>"
            f"<table><tr><th colspan=2>against {reference}</th></tr>{_cost_rows(answer.gain)}</table>"
            f"{where}</div>")


def _answers(data: ReportData) -> str:
    rec = data.recommendation
    if rec is None:
        return ('<p class="muted">No budget in the config, so no recommendation: add a <code>budget:</code> '
                "section (device, batch, latency/memory/size limits, minimum accuracy) or run "
                "<code>edgeopt recommend</code>.</p>")
    summary = (f"<p>Budget: <b>{escape(rec.budget.describe())}</b>. {rec.considered} candidates considered, "
               f"{len(rec.feasible)} fit" + (f", {rec.failed} failed" if rec.failed else "") + ".</p>")
    cards = "".join(_answer_card(answer, rec.budget) for answer in data.answers())
    return summary + f'<div class="answers">{cards}</div>'


def _legend() -> str:
    return ('<dl class="legend">'
            f'<dt class="good">+0.40 pt</dt><dd>accuracy change: green when nothing was lost,</dd>'
            f'<dt class="bad">−1.50 pt</dt><dd>red when more than {ACCURACY_LOSS_PT:g} pt was lost '
            "(95% CI: Wilson interval of the accuracy on its test samples);</dd>"
            f'<dt>noisy</dt><dd>(amber latency) {escape(NOISY_EXPLANATION.removeprefix("noisy: "))};</dd>'
            f"<dt>fidelity</dt><dd>{escape(FIDELITY)};</dd>"
            '<dt>★</dt><dd>recommended pick; ringed: Pareto frontier per model; red shading: outside the budget.</dd>'
            "</dl>")


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
    if "memory_bytes" in prov:
        prov["memory MB"] = f"{prov.pop('memory_bytes') / 2**20:,.0f}"
    items = "".join(f"<tr><th>{escape(str(k))}</th>"
                    f"<td>{escape(json.dumps(v) if isinstance(v, (list, dict)) else str(v))}</td></tr>"
                    for k, v in prov.items())
    items += "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in sorted(versions.items()))
    return f'<table class="kv">{items}</table>' if items else '<p class="muted">none recorded</p>'


def trials_plot(trials: list[tuple[int, float, float, str, bool]], budget: Budget, pick: int | None = None) -> str:
    """A search's trials (number, latency ms, accuracy, label, on the frontier): accuracy vs latency, darker =
    later, the budget's limits drawn, the frontier ringed and the pick starred."""
    if not trials:
        return '<p class="muted">no trial was trained and measured</p>'
    last = max(t[0] for t in trials)
    size = max(1, -(-(last + 1) // len(ORDER_COLOURS)))  # trials per colour, in order
    group = {t[0]: f"trials {t[0] // size * size}-{t[0] // size * size + size - 1}" for t in trials}
    colours = {group[t[0]]: ORDER_COLOURS[t[0] // size] for t in trials}
    points = [Point(latency, 100 * accuracy, f"#{n} {label}", group[n], frontier, pick=n == pick)
              for n, latency, accuracy, label, frontier in trials]
    return scatter(points, f"search trials: accuracy vs {budget.percentile} latency — {budget.device}, batch "
                   f"{budget.batch}", f"{budget.percentile} latency (ms)", "accuracy (%)", log_x=True,
                   colours=colours, x_max=budget.max_latency_ms,
                   y_min=None if budget.min_accuracy is None else 100 * budget.min_accuracy)


def render_html(data: ReportData, sections: str = "") -> str:
    """The report page; `sections` (HTML) follows the answer, e.g. a search's trials plot."""
    ok, failed = len(data.ok_rows), len(data.failures)
    models = sorted({r.model for r in data.rows})
    devices = sorted({r.device for r in data.rows})
    best = max((g for g in data.gains if g.speedup and data.accuracy_ok(g)), key=lambda g: g.speedup, default=None)
    candidates = len({r.candidate_id for r in data.rows})
    cards = [("candidates", str(candidates)), ("measurements (× batch sizes)", str(len(data.rows))),
             ("ok", str(ok)), ("failed", str(failed)),
             ("models", ", ".join(models) or "-"), ("devices", ", ".join(devices) or "-")]
    if best:
        within = "the accuracy budget" if data.budget and data.budget.min_accuracy is not None else \
            f"{ACCURACY_LOSS_PT:g} pt of its FP32 accuracy"
        cards.append((f"best speedup vs FP32 torch within {within}",
                      f"{best.speedup:.1f}× ({best.model}/{best.recipe} {best.runtime})"))
    notes = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
    distillations = "".join(f"<li>{escape(line)}</li>" for line in data.distillations())
    agreement = "".join(f"<li>{escape(line)}</li>" for line in data.agreement_notes())
    config = json.dumps(data.config, indent=2, default=str) if data.config else ""
    statistic = _statistic(data)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(data.title)}</title><style>{STYLE}</style></head><body>
<h1>{escape(data.title)}</h1><p class="muted">generated {escape(data.generated)}</p>
<h2>Which model fits</h2>{_answers(data)}
{f"<h2>Without labels: agreement, not accuracy</h2><ul>{agreement}</ul>" if agreement else ""}
{sections}
<div class="cards" style="margin-top:14px">{"".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>'
                                                     for k, v in cards)}</div>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<h2>Accuracy vs {escape(statistic)} latency and memory (budget limits dashed, ★ the pick)</h2>{_plots(data)}
{_legend()}
<h2>What each technique bought (vs the FP32 torch-eager model, same device and batch)</h2>{_gains_table(data)}
{f"<h2>Distillation: with the teacher vs the same student alone</h2><ul>{distillations}</ul>" if distillations else ""}
<h2>Model size</h2><div class="plots">{_size_chart(data)}</div>
<h2>Every candidate (click a header to sort)</h2>{_candidates_table(data.rows)}
<h2>Failures</h2>{_failures(data.failures)}
<h2>Provenance</h2>{_provenance(data)}
{f"<details><summary>Config</summary><pre>{escape(config)}</pre></details>" if config else ""}
<script>{SORT_SCRIPT}</script>
</body></html>
"""
