"""The CI gate: regressions fail, measurement noise alone does not, budgets apply, JUnit + Markdown output."""
from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from edgeopt import gate
from edgeopt.core.errors import InvalidInput
from edgeopt.gate import parse_regression
from edgeopt.recommend import Budget
from edgeopt.report import build_report, write_reports
from edgeopt.results import Row, candidate_id


def row(recipe, median, accuracy, ci=0.02, digest="1", status="ok", noisy=False):
    return Row(candidate_id=candidate_id("cnn", recipe, "onnxruntime", "cpu-1t", digest * 12), model="cnn",
               recipe=recipe, family="cnn", format="onnx", precision="int8", runtime="onnxruntime", device="cpu-1t",
               batch_size=1, latency={"median": median, "p95": median * 1.2}, median_ci_low=median * (1 - ci),
               median_ci_high=median * (1 + ci), noisy=noisy, accuracy=accuracy, size_mb=0.5, memory_mb=90,
               status=status, error="boom" if status != "ok" else None)


BASE = [row("fp32", 2.0, 0.925), row("int8", 1.0, 0.920)]


def checks_by(result):
    return {(c.candidate, c.check): c for c in result.checks}


def test_identical_runs_pass():
    result = gate(BASE, BASE, max_accuracy_drop=0.5, max_latency_regression="10%")
    assert result.passed and result.exit_code == 0 and result.count("fail") == 0


def test_real_latency_regression_fails_even_with_a_new_hash():
    current = [row("fp32", 2.0, 0.925, digest="2"), row("int8", 1.5, 0.920, digest="2")]
    result = gate(BASE, current, max_latency_regression="10%")
    check = checks_by(result)[("cnn/int8/onnxruntime/cpu-1t/b1", "latency_regression")]
    assert check.status == "fail" and "+50.0%" in check.message
    assert not result.passed and result.exit_code == 1


def test_regression_within_noise_only_warns():
    # +15% point estimate, but each median is only known to +-8%: could be noise
    noisy_base = [row("int8", 1.0, 0.92, ci=0.08)]
    current = [row("int8", 1.15, 0.92, ci=0.08, noisy=True)]
    result = gate(noisy_base, current, max_latency_regression=0.10)
    check = checks_by(result)[("cnn/int8/onnxruntime/cpu-1t/b1", "latency_regression")]
    assert check.status == "warn" and "noisy" in check.message
    assert result.passed


def test_accuracy_drop_in_points():
    current = [row("fp32", 2.0, 0.925), row("int8", 1.0, 0.912)]
    result = gate(BASE, current, max_accuracy_drop=0.5, max_latency_regression=None)
    check = checks_by(result)[("cnn/int8/onnxruntime/cpu-1t/b1", "accuracy_drop")]
    assert check.status == "fail" and "0.80 pt" in check.message
    assert gate(BASE, current, max_accuracy_drop=1.0, max_latency_regression=None).passed


def test_failed_candidate_and_missing_candidate():
    current = [row("fp32", 0, None, status="failed")]
    result = gate(BASE, current)
    checks = checks_by(result)
    assert checks[("cnn/fp32/onnxruntime/cpu-1t/b1", "status")].status == "fail"
    assert checks[("cnn/int8/onnxruntime/cpu-1t/b1", "missing")].status == "skip"
    assert not gate(BASE, [BASE[0]], fail_on_missing=True).passed


def test_absolute_budget_without_baseline():
    result = gate(None, BASE, budget=Budget(batch=None, max_latency_ms=1.5, min_accuracy=0.9))
    checks = checks_by(result)
    assert checks[("cnn/fp32/onnxruntime/cpu-1t/b1", "budget:max_latency_ms")].status == "fail"  # p95 2.4 ms
    assert checks[("cnn/int8/onnxruntime/cpu-1t/b1", "budget:max_latency_ms")].status == "pass"
    assert checks[("cnn/int8/onnxruntime/cpu-1t/b1", "budget:min_accuracy")].status == "pass"


def test_reports_from_files_and_junit_markdown(tmp_path):
    base = write_reports(build_report(BASE), tmp_path / "base", formats=("json",))["json"]
    cur = write_reports(build_report([row("fp32", 2.0, 0.925), row("int8", 1.5, 0.90)]), tmp_path / "cur",
                        formats=("json",))["json"]
    result = gate(base, cur, max_accuracy_drop=0.5, max_latency_regression="10%")
    suite = ET.fromstring(result.junit_xml().split("\n", 1)[1])
    assert suite.get("failures") == "2" and suite.get("tests") == str(len(result.checks))
    failure_names = {case.get("name") for case in suite if case.find("failure") is not None}
    assert failure_names == {"accuracy_drop", "latency_regression"}
    md = result.markdown()
    assert "FAILED" in md and "❌" in md and "cnn/int8/onnxruntime/cpu-1t/b1" in md


@pytest.mark.parametrize("text,value", [("10%", 0.10), ("0.25", 0.25), (0.05, 0.05), ("", None)])
def test_parse_regression(text, value):
    assert parse_regression(text) == value


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(InvalidInput, match="percentage"):
        parse_regression("ten")
    with pytest.raises(InvalidInput, match="no such report"):
        gate(tmp_path / "missing.json", BASE)
    (tmp_path / "junk.json").write_text("{\"rows\": 3}")
    with pytest.raises(InvalidInput, match="not an edgeopt JSON report"):
        gate(tmp_path / "junk.json", BASE)


def test_gate_and_report_commands(tmp_path):
    from typer.testing import CliRunner

    from edgeopt.cli import app

    base = write_reports(build_report(BASE), tmp_path / "base", formats=("json",))["json"]
    cur = write_reports(build_report([row("fp32", 2.0, 0.925), row("int8", 1.6, 0.92)]), tmp_path / "cur",
                        formats=("json",))["json"]
    runner = CliRunner()
    args = ["gate", "--baseline", str(base), "--current", str(cur), "--max-accuracy-drop", "0.5",
            "--max-latency-regression", "10%", "--junit", str(tmp_path / "gate.xml"),
            "--markdown", str(tmp_path / "gate.md")]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "latency_regression" in failed.stdout
    assert ET.parse(tmp_path / "gate.xml").getroot().get("failures") == "1"
    assert "FAILED" in (tmp_path / "gate.md").read_text()
    passed = runner.invoke(app, ["gate", "--baseline", str(base), "--current", str(base), "--json"])
    assert passed.exit_code == 0 and '"passed": true' in passed.stdout
    budget = runner.invoke(app, ["gate", "--current", str(base), "--max-size-mb", "0.1"])
    assert budget.exit_code == 1 and "budget:max_size_mb" in budget.stdout
    report = runner.invoke(app, ["report", "--results", str(cur), "--out", str(tmp_path / "r"), "--format", "md,html"])
    assert report.exit_code == 0 and (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "report.html").exists()
    bad = runner.invoke(app, ["report", "--results", str(cur), "--format", "pdf"])
    assert bad.exit_code != 0 and "expected a comma-separated list" in str(bad.exception)
