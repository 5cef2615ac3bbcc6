"""The Markdown summary: short enough for a pull-request comment, with the numbers a reviewer asks for."""
from __future__ import annotations

from edgeopt.results import Row

from .data import ReportData

MAX_ROWS = 40


def _cell(value, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: ReportData, max_rows: int = MAX_ROWS) -> str:
    ok, failed = data.ok_rows, data.failures
    lines = [f"## {data.title}", "",
             f"{len({r.candidate_id for r in data.rows})} candidates, {len(data.rows)} measurements "
             f"(candidate × batch size): {len(ok)} ok, {len(failed)} failed. Generated {data.generated}."]
    prov = data.provenance
    if prov:
        lines.append(f"Machine: {prov.get('cpu_model', '?')}, git {prov.get('git') or '?'}.")
    for note in data.notes:
        lines.append(f"- note: {_escape(note)}")
    rec = data.recommendation
    if rec is not None:
        lines += ["", f"### Recommendation ({_escape(rec.budget.describe())})", ""]
        lines += [f"- **{p.family}**: `{p.row.label}` {p.row.precision} — {_escape(p.reason)}" for p in rec.picks]
        if not rec.picks:
            lines.append("- nothing fits the budget.")
        for miss in rec.near_misses:
            lines.append(f"- near miss `{miss.row.label}`: " + "; ".join(b.describe() for b in miss.blockers))
    smallest = min((g.batch_size for g in data.gains), default=1)
    gains = [g for g in data.gains if g.batch_size == smallest]  # the full set is in the HTML/JSON report
    if gains:
        lines += ["", f"### What each technique bought (vs FP32 torch eager, batch {smallest})", "",
                  "| model | recipe | runtime | device | batch | speedup | accuracy Δ pt | size ×smaller |",
                  "|---|---|---|---|---:|---:|---:|---:|"]
        best = sorted(gains, key=lambda g: (g.model, g.device, -(g.speedup or 0)))
        for g in best[:max_rows]:
            lines.append(f"| {g.model} | {g.recipe} | {g.runtime} | {g.device} | {g.batch_size} | "
                         f"{_cell(g.speedup, '{:.2f}')}× | {_cell(g.accuracy_delta_pt, '{:+.2f}')} | "
                         f"{_cell(g.size_ratio, '{:.2f}')}× |")
    lines += ["", "### Candidates", "",
              "| model | recipe | runtime | precision | device | batch | median ms | p95 ms | accuracy | size MB |"
              " memory MB |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in ok[:max_rows]:
        noisy = " ⚠" if r.noisy else ""
        lines.append(f"| {r.model} | {r.recipe} | {r.runtime} | {r.precision} | {r.device} | {r.batch_size} | "
                     f"{_cell(r.latency_ms('median'))}{noisy} | {_cell(r.latency_ms('p95'))} | "
                     f"{_cell(r.accuracy, '{:.2%}')} | {_cell(r.size_mb)} | {_cell(r.memory_mb, '{:.0f}')} |")
    if len(ok) > max_rows:
        lines.append(f"\n… and {len(ok) - max_rows} more in the HTML/JSON report.")
    if failed:
        lines += ["", "### Failures", ""]
        lines += [f"- `{r.label}` on {r.device} b{r.batch_size}: {_escape(_first_line(r))}" for r in failed]
    return "\n".join(lines) + "\n"


def _first_line(row: Row) -> str:
    return (row.error or "(no error recorded)").strip().splitlines()[-1][:300]
