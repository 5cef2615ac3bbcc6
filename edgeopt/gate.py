"""The CI gate: compare a current run with a baseline (and absolute budgets); fail only on real regressions.

Latency is noise-aware: each side's relative spread comes from the harness's 95% CI of the median, and a
regression fails the gate only when it exceeds the allowed percentage even after giving both sides the
benefit of that noise (current at its low end, baseline at its high end). A regression that only the point
estimate shows is reported as a warning. Candidates are matched on their stable key (model/recipe/runtime/
device/batch), so a changed recipe parameter still compares against the same slot of the baseline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from xml.etree import ElementTree as ET

from pydantic import BaseModel, Field

from edgeopt.core.errors import InvalidInput
from edgeopt.recommend import Budget, blockers, in_scope
from edgeopt.report.data import ReportData, load_report
from edgeopt.results import Row

Status = Literal["pass", "warn", "fail", "skip"]


class Check(BaseModel):
    candidate: str = Field(description="stable candidate key (model/recipe/runtime/device/bN)")
    check: str = Field(description="accuracy_drop, latency_regression, budget:<limit>, status, missing")
    status: Status
    message: str
    baseline: float | None = None
    current: float | None = None
    threshold: float | None = None


class GateResult(BaseModel):
    checks: list[Check]
    max_accuracy_drop_pt: float | None
    max_latency_regression: float | None
    percentile: str
    budget: Budget | None = None

    @property
    def passed(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"edgeopt gate {verdict}: {self.count('fail')} failed, {self.count('warn')} warnings, "
                f"{self.count('pass')} passed, {self.count('skip')} skipped")

    def markdown(self) -> str:
        icon = {"fail": "❌", "warn": "⚠️", "pass": "✅", "skip": "➖"}
        lines = [f"### {self.summary()}", "",
                 f"Limits: accuracy drop ≤ {_fmt(self.max_accuracy_drop_pt)} pt, latency ({self.percentile}) "
                 f"regression ≤ {_pct(self.max_latency_regression)} beyond measurement noise"
                 + (f"; budget: {self.budget.describe()}" if self.budget else "") + ".", ""]
        shown = [c for c in self.checks if c.status in ("fail", "warn")]
        if shown:
            lines += ["| | candidate | check | baseline | current | detail |", "|---|---|---|---:|---:|---|"]
            for c in sorted(shown, key=lambda c: (c.status != "fail", c.candidate, c.check)):
                lines.append(f"| {icon[c.status]} | `{c.candidate}` | {c.check} | {_fmt(c.baseline)} | "
                             f"{_fmt(c.current)} | {c.message.replace('|', '/')} |")
        else:
            lines.append("No regressions.")
        return "\n".join(lines) + "\n"

    def junit_xml(self) -> str:
        suite = ET.Element("testsuite", name="edgeopt gate", tests=str(len(self.checks)),
                           failures=str(self.count("fail")), skipped=str(self.count("skip")), errors="0")
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=c.candidate, name=c.check)
            if c.status == "fail":
                ET.SubElement(case, "failure", message=c.message, type=c.check).text = c.message
            elif c.status == "skip":
                ET.SubElement(case, "skipped", message=c.message)
            elif c.status == "warn":
                ET.SubElement(case, "system-out").text = "warning: " + c.message
        ET.indent(suite)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def parse_regression(value: str | float | None) -> float | None:
    """'10%' or '0.1' or 0.1 -> 0.1 (a fraction)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise InvalidInput(f"latency regression {value!r}: expected a percentage like 10% or a fraction "
                               "like 0.1") from None
    if number < 0:
        raise InvalidInput(f"latency regression {value!r} must not be negative")
    return number


def _rows(source: str | Path | ReportData | list[Row]) -> list[Row]:
    if isinstance(source, ReportData):
        return source.rows
    if isinstance(source, list):
        return source
    return load_report(source).rows


def _noise(row: Row) -> float:
    """Relative half-width of the median's 95% CI (0 when the harness recorded none)."""
    median = row.latency_ms("median")
    if not median or row.median_ci_low is None or row.median_ci_high is None:
        return 0.0
    return max(0.0, (row.median_ci_high - row.median_ci_low) / 2 / median)


def compare(base: Row, cur: Row, max_accuracy_drop_pt: float | None, max_latency_regression: float | None,
            percentile: str) -> list[Check]:
    key = cur.key
    if not cur.ok:
        status = "fail" if base.ok else "warn"
        return [Check(candidate=key, check="status", status=status,
                      message=f"candidate failed: {(cur.error or '').strip().splitlines()[-1:] or ['?']}")]
    if not base.ok:
        return [Check(candidate=key, check="status", status="pass", message="fixed: failed in the baseline")]
    checks = []
    if max_accuracy_drop_pt is not None:
        if base.accuracy is None or cur.accuracy is None:
            checks.append(Check(candidate=key, check="accuracy_drop", status="skip", message="accuracy not measured"))
        else:
            drop = 100 * (base.accuracy - cur.accuracy)
            failed = drop > max_accuracy_drop_pt + 1e-9
            checks.append(Check(candidate=key, check="accuracy_drop", status="fail" if failed else "pass",
                                baseline=base.accuracy, current=cur.accuracy, threshold=max_accuracy_drop_pt,
                                message=f"accuracy {'dropped' if drop > 0 else 'changed'} {abs(drop):.2f} pt "
                                        f"(limit {max_accuracy_drop_pt:g} pt)"))
    if max_latency_regression is not None:
        old, new = base.latency_ms(percentile), cur.latency_ms(percentile)
        if not old or not new:
            checks.append(Check(candidate=key, check="latency_regression", status="skip",
                                message="latency not measured"))
        else:
            point = new / old - 1
            conservative = new * (1 - _noise(cur)) / (old * (1 + _noise(base))) - 1
            status = ("fail" if conservative > max_latency_regression
                      else "warn" if point > max_latency_regression else "pass")
            noisy = " (harness flagged the run as noisy)" if cur.noisy or base.noisy else ""
            checks.append(Check(
                candidate=key, check="latency_regression", status=status, baseline=old, current=new,
                threshold=max_latency_regression,
                message=f"{percentile} {old:.4g} -> {new:.4g} ms ({point:+.1%}; {conservative:+.1%} after noise, "
                        f"limit {max_latency_regression:+.0%}){noisy}"))
    return checks


def gate(baseline: str | Path | ReportData | list[Row] | None, current: str | Path | ReportData | list[Row], *,
         max_accuracy_drop: float | None = 0.5, max_latency_regression: str | float | None = "10%",
         percentile: str = "median", budget: Budget | None = None, fail_on_missing: bool = False) -> GateResult:
    """Check `current` against `baseline` (either may be a JSON report path) and against `budget`.

    max_accuracy_drop is in percentage points; max_latency_regression a fraction or a percentage string.
    """
    regression = parse_regression(max_latency_regression)
    if percentile not in ("mean", "median", "p90", "p95", "p99", "max"):
        raise InvalidInput(f"percentile {percentile!r}: expected one of mean, median, p90, p95, p99, max")
    current_rows = {r.key: r for r in _rows(current)}
    if not current_rows:
        raise InvalidInput(f"{current}: the current report has no measurements")
    checks: list[Check] = []
    if baseline is not None:
        base_rows = {r.key: r for r in _rows(baseline)}
        for key, base in sorted(base_rows.items()):
            cur = current_rows.get(key)
            if cur is None:
                checks.append(Check(candidate=key, check="missing", status="fail" if fail_on_missing else "skip",
                                    message="in the baseline but not measured in the current run"))
                continue
            checks += compare(base, cur, max_accuracy_drop, regression, percentile)
        for key in sorted(set(current_rows) - set(base_rows)):
            checks.append(Check(candidate=key, check="new", status="pass", message="not in the baseline"))
    if budget is not None:
        for key, row in sorted(current_rows.items()):
            if not in_scope(row, budget) or not row.ok:
                continue
            found = {b.constraint: b for b in blockers(row, budget)}
            for constraint, _, limit in budget.limits():
                problem = found.get(constraint)
                checks.append(Check(candidate=key, check=f"budget:{constraint}", status="fail" if problem else "pass",
                                    current=problem.value if problem else None, threshold=limit,
                                    message=problem.describe() if problem else f"within {constraint} {limit:g}"))
    return GateResult(checks=checks, max_accuracy_drop_pt=max_accuracy_drop, max_latency_regression=regression,
                      percentile=percentile, budget=budget)


def write_outputs(result: GateResult, junit: Path | None = None, markdown: Path | None = None) -> None:
    for path, text in ((junit, result.junit_xml()), (markdown, result.markdown())):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
