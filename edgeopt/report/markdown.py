"""The Markdown summary for a pull-request comment: the picks, the failures and the gains first; then every
candidate, truncated per family (accuracies of different families are never read against each other)."""
from __future__ import annotations

from edgeopt.benchmarks.latency import NOISY_EXPLANATION
from edgeopt.recommend import Budget
from edgeopt.results import Row

from .data import Answer, ReportData, limit_name

ROWS_PER_FAMILY = 15


def _cell(value, fmt: str = "{:.3g}") -> str:
    return "-" if value is None else fmt.format(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _answer(answer: Answer, budget: Budget) -> list[str]:
    if answer.pick is None:
        lines = [f"- **{answer.family}**: nothing fits the budget. Nearest misses:"]
        return lines + [f"  - `{m.row.label}` {m.row.precision}: " + "; ".join(b.describe() for b in m.blockers)
                        for m in answer.misses]
    row = answer.pick.row
    checks = []
    for margin in answer.pick.margins:
        name, sign = limit_name(margin.constraint, budget)
        value = (_cell(margin.value, "{:.2%}") if margin.unit == "pt" else f"{_cell(margin.value)} {margin.unit}")
        limit = f"{margin.limit:.1%}" if margin.unit == "pt" else f"{margin.limit:g} {margin.unit}"
        checks.append(f"{name} {value} {sign} {limit}")
    lines = [f"- **{answer.family}**: `{row.label}` {row.format} {row.precision} — " + ", ".join(checks)]
    gain = answer.gain
    if gain is not None:
        ci = gain.accuracy_delta_ci_pt
        delta = _cell(gain.accuracy_delta_pt, "{:+.2f} pt") + (f" (95% CI {ci[0]:+.1f} to {ci[1]:+.1f})" if ci else "")
        lines.append(f"  - vs FP32 {row.model} on torch: {_cell(gain.speedup, '{:.2f}')}× faster, accuracy {delta}, "
                     f"{_cell(gain.size_ratio, '{:.2f}')}× smaller file, {_cell(gain.memory_ratio, '{:.2f}')}× less "
                     "memory")
    path = row.artifact_path
    if path:
        lines.append(f"  - artifact: `{path}` (try it: `edgeopt predict {path} --sample 0`)")
    return lines


def _candidates(rows: list[Row], per_family: int) -> list[str]:
    lines = ["| model | recipe | runtime | precision | device | batch | median ms | p95 ms | accuracy | size MB |"
             " memory MB |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    left_out = []
    for family in sorted({r.family for r in rows}):
        members = [r for r in rows if r.family == family]
        for r in members[:per_family]:
            noisy = " ⚠" if r.noisy else ""
            accuracy = ("agreement " if r.agreement else "") + _cell(r.accuracy, "{:.2%}")
            lines.append(f"| {r.model} | {r.recipe} | {r.runtime} | {r.precision} | {r.device} | {r.batch_size} | "
                         f"{_cell(r.latency_ms('median'))}{noisy} | {_cell(r.latency_ms('p95'))} | "
                         f"{accuracy} | {_cell(r.size_mb)} | {_cell(r.memory_mb, '{:.0f}')} |")
        if len(members) > per_family:
            left_out.append(f"{len(members) - per_family} {family}")
    if left_out:
        lines.append(f"\n… {', '.join(left_out)} row(s) left out here; every row is in report.html and report.json.")
    if any(r.noisy for r in rows):
        lines.append(f"\n⚠ {NOISY_EXPLANATION}.")
    return lines


def render_markdown(data: ReportData, per_family: int = ROWS_PER_FAMILY) -> str:
    ok, failed = data.ok_rows, data.failures
    lines = [f"## {data.title}", "",
             f"{len({r.candidate_id for r in data.rows})} candidates, {len(data.rows)} measurements "
             f"(candidate × batch size): {len(ok)} ok, {len(failed)} failed. Generated {data.generated}."]
    prov = data.provenance
    if prov:
        lines.append(f"Machine: {prov.get('cpu_model', '?')}, git {prov.get('git') or '?'}.")
    rec = data.recommendation
    if rec is not None:
        lines += ["", f"### Which model fits ({_escape(rec.budget.describe())})", ""]
        for answer in data.answers():
            lines += _answer(answer, rec.budget)
        if not data.answers():
            lines.append("- no successful measurement to choose from.")
    if failed:
        lines += ["", "### Failures", ""]
        lines += [f"- `{r.label}` on {r.device} b{r.batch_size}: {_escape(_last_line(r))}" for r in failed]
    smallest = min((g.batch_size for g in data.gains), default=1)
    gains = [g for g in data.gains if g.batch_size == smallest]  # the full set is in the HTML/JSON report
    if gains:
        lines += ["", f"### What each technique bought (vs FP32 torch eager, batch {smallest})", "",
                  "| model | recipe | runtime | device | batch | speedup | accuracy Δ pt | size ×smaller |",
                  "|---|---|---|---|---:|---:|---:|---:|"]
        for g in sorted(gains, key=lambda g: (g.model, g.device, -(g.speedup or 0))):
            lines.append(f"| {g.model} | {g.recipe} | {g.runtime} | {g.device} | {g.batch_size} | "
                         f"{_cell(g.speedup, '{:.2f}')}× | {_cell(g.accuracy_delta_pt, '{:+.2f}')} | "
                         f"{_cell(g.size_ratio, '{:.2f}')}× |")
    if data.agreement_notes():
        lines += ["", "### Without labels: agreement, not accuracy", ""]
        lines += [f"- {_escape(line)}" for line in data.agreement_notes()]
    if data.distillations():
        lines += ["", "### Distillation: with the teacher vs the same student alone", ""]
        lines += [f"- {_escape(line)}" for line in data.distillations()]
    if data.notes:
        lines += ["", "### Notes", ""] + [f"- {_escape(note)}" for note in data.notes]
    lines += ["", "### Candidates", ""] + _candidates(ok, per_family)
    return "\n".join(lines) + "\n"


def _last_line(row: Row) -> str:
    return (row.error or "(no error recorded)").strip().splitlines()[-1][:300]
