"""The CI gate: compare a current run with a baseline (and absolute budgets); fail only on real regressions.

Both rules are noise-aware. Latency: each side's relative spread comes from the harness's 95% CI of the median,
and a regression fails only when it exceeds the allowed percentage after giving both sides the benefit of that
noise (current at its low end, baseline at its high end). Accuracy: a drop fails only when it exceeds the allowed
points beyond the 95% interval of the difference (the two Wilson intervals). A regression only the point
estimate shows is a warning. Latency is compared only between measurements taken on the same host class (CPU
model, cores, ISA, GPUs): timings from another machine say nothing about this change.

Candidates are matched on their stable key (model/recipe/runtime/device/batch), so a changed recipe parameter
still compares against the same slot of the baseline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

from pydantic import BaseModel, Field

from edgeopt.core.errors import InvalidInput
from edgeopt.recommend import Budget, Margin, accuracy_noise_pt, check_device, in_scope, margins
from edgeopt.report.data import ReportData, load_report
from edgeopt.results import Row

Status = Literal["pass", "warn", "fail", "skip"]
PERCENTILES = ("mean", "median", "p90", "p95", "p99", "max")
HOST_CLASS_KEYS = ("cpu_model", "logical_cores", "isa", "gpus")
ACROSS_HOSTS_FLAG = "--compare-across-hosts"


class Check(BaseModel):
    """One rule applied to one candidate: pass, warn (shown, does not fail), fail or skip, with the figures."""

    candidate: str = Field(description="stable candidate key (model/recipe/runtime/device/bN)")
    check: str = Field(description="status, missing, new, accuracy_drop, latency_regression, budget:<limit>")
    status: Status
    message: str
    baseline: float | None = None
    current: float | None = None
    threshold: float | None = None
    unit: str = Field("", description="unit of baseline/current: % (accuracy), ms or MB; the threshold of an "
                                      "accuracy_drop is in pt, of a latency_regression a fraction")


class GateResult(BaseModel):
    """Every check of a gate run; `passed`/`exit_code` for CI, `markdown()` for a PR comment, `junit_xml()`."""

    checks: list[Check]
    max_accuracy_drop_pt: float | None
    max_latency_regression: float | None
    percentile: str
    budget: Budget | None = None
    runs: dict[str, str] = Field(default_factory=dict, description="baseline/current -> host and commit")
    notes: list[str] = Field(default_factory=list)

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
        """For a PR comment: the verdict, the limits, where each run was measured, then every check that did not
        pass (latency checks skipped across hosts are summed up in a note instead)."""
        icon = {"fail": "❌", "warn": "⚠️", "pass": "✅", "skip": "➖"}
        lines = [f"### {self.summary()}", "",
                 f"Limits: accuracy drop ≤ {_fmt(self.max_accuracy_drop_pt)} pt, latency ({self.percentile}) "
                 f"regression ≤ {_pct(self.max_latency_regression)} beyond measurement noise"
                 + (f"; budget: {self.budget.describe()}" if self.budget else "") + ".", ""]
        lines += [f"- {name}: {where}" for name, where in self.runs.items()]
        lines += [f"- note: {note}" for note in self.notes]
        shown = [c for c in self.checks if c.status in ("fail", "warn")
                 or (c.status == "skip" and c.check != "latency_regression")]
        lines.append("")
        if shown:
            lines += ["| | candidate | check | baseline | current | limit | detail |",
                      "|---|---|---|---:|---:|---:|---|"]
            order = {"fail": 0, "warn": 1, "skip": 2}
            for c in sorted(shown, key=lambda c: (order[c.status], c.candidate, c.check)):
                lines.append(f"| {icon[c.status]} | `{c.candidate}` | {c.check} | {_value(c.baseline, c.unit)} | "
                             f"{_value(c.current, c.unit)} | {_limit(c)} | "
                             f"{c.message.replace('|', '/')} |")
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


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}%" if unit == "%" else f"{value:.4g} {unit}".strip()


def _limit(check: Check) -> str:
    if check.threshold is None:
        return "-"
    if check.check == "accuracy_drop":
        return f"-{check.threshold:g} pt"
    if check.check == "latency_regression":
        return f"{check.threshold:+.0%}"
    return _value(check.threshold, check.unit)


def parse_regression(value: str | float | None) -> float | None:
    """'10%' or '0.1' or 0.1 -> 0.1 (a fraction). A bare number above 1 is refused: 10 would mean 1000%."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        number, percent = float(value), False
    else:
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text[:-1]) / 100 if percent else float(text)
        except ValueError:
            raise InvalidInput(f"latency regression {value!r}: expected a percentage like 10% or a fraction "
                               "like 0.1") from None
    if number < 0:
        raise InvalidInput(f"latency regression {value!r} must not be negative")
    if number > 1 and not percent:
        raise InvalidInput(f"latency regression {value!r}: ambiguous; write {value}% for a percentage or "
                           f"{number / 100:g} for a fraction")
    return number


def results_path(source: str | Path) -> Path:
    """The file a finished run's results are in: `source` itself, or in a directory its results.db (else its
    report.json); an error naming what was expected when there is none."""
    from edgeopt.pipeline import RESULTS_DB

    path = Path(source)
    if path.is_dir():
        path = path / RESULTS_DB if (path / RESULTS_DB).exists() else path / "report.json"
    if not path.exists():
        raise InvalidInput(f"{path}: no such file (expected a results.db, a JSON report, or the directory holding "
                           "one); run `edgeopt run` or `edgeopt bench` first")
    return path


def load_results(source: str | Path) -> list[Row]:
    """The rows of a finished run, without its config: a results.db (newest per candidate and batch), a JSON
    report, or the output directory holding them (results.db preferred)."""
    path = results_path(source)
    if path.suffix == ".json":
        return load_report(path).rows
    from edgeopt.results import rows_of
    from edgeopt.store import ResultStore

    with ResultStore(path) as store:
        return rows_of(store.measurements(latest=True))


def _rows(source: str | Path | ReportData | list[Row]) -> list[Row]:
    if isinstance(source, ReportData):
        return source.rows
    if isinstance(source, list):
        return source
    return load_results(source)


def host_class(row: Row) -> tuple[Any, ...] | None:
    """What decides whether two timings are comparable (CPU model, cores, ISA flags, GPUs); None if unrecorded."""
    prov = row.provenance
    if not any(prov.get(k) for k in HOST_CLASS_KEYS):
        return None
    return tuple(tuple(sorted(v)) if isinstance(v, list) else v for v in (prov.get(k) for k in HOST_CLASS_KEYS))


def describe_run(rows: list[Row]) -> str:
    """Host and commit of a run, from the provenance its measurements recorded."""
    prov = next((r.provenance for r in rows if r.provenance), {})
    if not prov:
        return "host and commit not recorded"
    gpus = ", ".join(prov.get("gpus") or []) or "no GPU"
    return (f"{prov.get('cpu_model', '?')}, {prov.get('logical_cores', '?')} cores, {gpus}, "
            f"ISA {' '.join(prov.get('isa') or []) or '?'}; commit {prov.get('git') or '?'}")


def _noise(row: Row) -> float:
    """Relative half-width of the median's 95% CI (0 when the harness recorded none)."""
    median = row.latency_ms("median")
    if not median or row.median_ci_low is None or row.median_ci_high is None:
        return 0.0
    return max(0.0, (row.median_ci_high - row.median_ci_low) / 2 / median)


def _failure(row: Row) -> Check:
    lines = (row.error or "").strip().splitlines()
    return Check(candidate=row.key, check="status", status="fail",
                 message=f"candidate failed: {lines[-1] if lines else 'no error recorded'}")


def accuracy_check(base: Row, cur: Row, limit_pt: float) -> Check:
    key = cur.key
    if base.accuracy is None or cur.accuracy is None:
        side = "the current run" if cur.accuracy is None else "the baseline"
        return Check(candidate=key, check="accuracy_drop", status="warn", threshold=limit_pt, unit="%",
                     message=f"accuracy not measured in {side}: not compared")
    drop = 100 * (base.accuracy - cur.accuracy)
    noise = accuracy_noise_pt(base, cur)
    status = "fail" if drop - noise > limit_pt + 1e-9 else "warn" if drop > limit_pt + 1e-9 else "pass"
    within = f" ±{noise:.2f} pt at 95%" if noise else ""
    return Check(candidate=key, check="accuracy_drop", status=status, baseline=100 * base.accuracy,
                 current=100 * cur.accuracy, threshold=limit_pt, unit="%",
                 message=f"accuracy {'dropped' if drop > 0 else 'changed'} {abs(drop):.2f} pt{within} "
                         f"(limit {limit_pt:g} pt)" + (": within sampling noise" if status == "warn" else ""))


def latency_check(base: Row, cur: Row, limit: float, percentile: str, across_hosts: bool) -> Check:
    key = cur.key
    if host_class(base) != host_class(cur) and not across_hosts:
        return Check(candidate=key, check="latency_regression", status="skip",
                     message=f"measured on different hosts: not compared (pass {ACROSS_HOSTS_FLAG} to compare)")
    old, new = base.latency_ms(percentile), cur.latency_ms(percentile)
    if not old or not new:
        return Check(candidate=key, check="latency_regression", status="warn",
                     message=f"{percentile} latency not measured: not compared")
    point = new / old - 1
    conservative = new * (1 - _noise(cur)) / (old * (1 + _noise(base))) - 1
    status = "fail" if conservative > limit else "warn" if point > limit else "pass"
    noisy = " (harness flagged the run as noisy)" if cur.noisy or base.noisy else ""
    return Check(candidate=key, check="latency_regression", status=status, baseline=old, current=new,
                 threshold=limit, unit="ms",
                 message=f"{percentile} {old:.4g} -> {new:.4g} ms ({point:+.1%}; {conservative:+.1%} after noise, "
                         f"limit {limit:+.0%}){noisy}")


def compare(base: Row, cur: Row, max_accuracy_drop_pt: float | None, max_latency_regression: float | None,
            percentile: str, across_hosts: bool = False) -> list[Check]:
    """Checks of one candidate present in both runs (a failed current candidate is checked by `gate`)."""
    if not cur.ok:
        return []
    if not base.ok:
        return [Check(candidate=cur.key, check="status", status="pass", message="fixed: failed in the baseline")]
    checks = []
    if max_accuracy_drop_pt is not None:
        checks.append(accuracy_check(base, cur, max_accuracy_drop_pt))
    if max_latency_regression is not None:
        checks.append(latency_check(base, cur, max_latency_regression, percentile, across_hosts))
    return checks


def budget_check(row: Row, margin: Margin) -> Check:
    scale, unit = (100, "%") if margin.unit == "pt" else (1, margin.unit)
    return Check(candidate=row.key, check=f"budget:{margin.constraint}", status="pass" if margin.ok else "fail",
                 current=None if margin.value is None else scale * margin.value, threshold=scale * margin.limit,
                 unit=unit, message=margin.describe())


def gate(baseline: str | Path | ReportData | list[Row] | None, current: str | Path | ReportData | list[Row], *,
         max_accuracy_drop: float | None = 0.5, max_latency_regression: str | float | None = "10%",
         percentile: str = "median", budget: Budget | None = None, fail_on_missing: bool = False,
         across_hosts: bool = False) -> GateResult:
    """Check `current` against `baseline` and against `budget`; either run may be a results.db, a JSON report,
    an output directory, a ReportData or rows.

    max_accuracy_drop is in percentage points; max_latency_regression a fraction or a percentage string.
    A failed current candidate always fails; a baseline candidate missing from the current run is always
    reported, and fails only with fail_on_missing.
    """
    regression = parse_regression(max_latency_regression)
    if percentile not in PERCENTILES:
        raise InvalidInput(f"percentile {percentile!r}: expected one of {', '.join(PERCENTILES)}")
    current_rows = {r.key: r for r in _rows(current)}
    if not current_rows:
        raise InvalidInput(f"{current}: the current run has no measurements")
    checks = [_failure(row) for _, row in sorted(current_rows.items()) if not row.ok]
    runs = {"current": describe_run(list(current_rows.values()))}
    notes = []
    if baseline is not None:
        base_rows = {r.key: r for r in _rows(baseline)}
        runs = {"baseline": describe_run(list(base_rows.values())), **runs}
        for key, base in sorted(base_rows.items()):
            cur = current_rows.get(key)
            if cur is None:
                checks.append(Check(candidate=key, check="missing", status="fail" if fail_on_missing else "warn",
                                    message="in the baseline but not measured in the current run"))
                continue
            checks += compare(base, cur, max_accuracy_drop, regression, percentile, across_hosts)
        for key in sorted(set(current_rows) - set(base_rows)):
            checks.append(Check(candidate=key, check="new", status="pass", message="not in the baseline"))
        skipped = sum(1 for c in checks if c.check == "latency_regression" and c.status == "skip")
        if skipped:
            notes.append(f"latency not compared for {skipped} candidate(s): the baseline was measured on another "
                         f"host class (CPU model, cores, ISA, GPUs); pass {ACROSS_HOSTS_FLAG} to compare anyway")
    if budget is not None:
        check_device(list(current_rows.values()), budget)
        for key, row in sorted(current_rows.items()):
            if in_scope(row, budget) and row.ok:
                checks += [budget_check(row, margin) for margin in margins(row, budget)]
    return GateResult(checks=checks, max_accuracy_drop_pt=max_accuracy_drop, max_latency_regression=regression,
                      percentile=percentile, budget=budget, runs=runs, notes=notes)


def write_outputs(result: GateResult, directory: Path) -> dict[str, Path]:
    """gate.md (for a PR comment) and gate.xml (JUnit, for the CI's test report) in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": directory / "gate.md", "junit": directory / "gate.xml"}
    paths["markdown"].write_text(result.markdown(), encoding="utf-8")
    paths["junit"].write_text(result.junit_xml(), encoding="utf-8")
    return paths
