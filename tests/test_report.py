"""Reports: self-contained HTML (plots, sortable table, failures, provenance), Markdown, JSON round trip."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from xml.etree import ElementTree as ET

import pytest

from edgeopt.recommend import Budget
from edgeopt.report import build_report, load_report, render_html, render_markdown, write_reports
from edgeopt.report.svg import Point, scatter
from edgeopt.results import Row, candidate_id


def row(model, recipe, runtime, median, accuracy, steps=(), precision="fp32", fmt="onnx", device="cpu-1t",
        status="ok", error=None, family="cnn", size=1.0, memory=100.0):
    return Row(candidate_id=candidate_id(model, recipe, runtime, device, "1" * 12), model=model, recipe=recipe,
               family=family, format=fmt, precision=precision, runtime=runtime, device=device, batch_size=1,
               latency={"median": median, "p95": median * 1.2, "cv": 0.04}, median_ci_low=median * 0.97,
               median_ci_high=median * 1.03, accuracy=accuracy, size_mb=size, memory_mb=memory, steps=list(steps),
               status=status, error=error, parent="ab" * 32,
               provenance={"cpu_model": "Test CPU <x86>", "versions": {"torch": "2.13"}, "git": "abc123"})


ROWS = [
    row("cnn", "fp32", "torch", 3.0, 0.925, fmt="torch", size=1.7, memory=300),
    row("cnn", "fp32", "onnxruntime", 1.5, 0.925, size=1.7, memory=120),
    row("cnn", "int8", "onnxruntime", 0.8, 0.921, steps=["quantize(int8, static)"], precision="int8", size=0.45),
    row("cnn", "pruned", "openvino", 1.0, 0.915, steps=["prune(ratio=0.5)"], fmt="openvino", size=0.8),
    row("cnn", "broken", "openvino", 0.0, None, status="failed", error="ExportError: op <Foo> unsupported"),
    row("lstm", "fp32", "torch", 5.0, 0.74, fmt="torch", family="lstm", size=6.0),
    row("lstm", "int8", "onnxruntime", 2.0, 0.735, steps=["quantize(int8, dynamic)"], precision="int8",
        family="lstm", size=1.6),
]


@pytest.fixture(scope="module")
def data():
    return build_report(ROWS, budget=Budget(device="cpu-1t", max_latency_ms=1.2, min_accuracy=0.9),
                        notes=["skipped runtime tensorrt on cpu-1t: TensorRT is not installed"])


def test_gains_against_the_fp32_torch_reference(data):
    gains = {(g.model, g.recipe, g.runtime): g for g in data.gains}
    assert gains[("cnn", "int8", "onnxruntime")].speedup == pytest.approx(3.0 / 0.8)
    assert gains[("cnn", "int8", "onnxruntime")].accuracy_delta_pt == pytest.approx(-0.4)
    assert gains[("lstm", "int8", "onnxruntime")].size_ratio == pytest.approx(6.0 / 1.6)
    assert ("cnn", "broken", "openvino") not in gains and ("cnn", "fp32", "torch") not in gains
    assert data.frontiers["cpu-1t b1"]  # accuracy vs latency frontier ids


def test_html_is_self_contained_and_complete(data):
    html = render_html(data)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # offline: no external scripts, styles, fonts or images
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert "cdn" not in html.lower()
    assert html.count("<svg") >= 3  # Pareto plot, size chart, memory chart
    for text in ("accuracy vs median latency", "Every candidate", "table class=\"sortable\"", "quantize(int8, static)",
                 "ExportError: op &lt;Foo&gt; unsupported", "Test CPU &lt;x86&gt;", "torch", "3.75×",
                 "Pareto frontier", "TensorRT is not installed", "Recommendation"):
        assert text in html, text
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)  # every plot is well-formed XML


def test_markdown_summary_fits_a_pr_comment(data):
    md = render_markdown(data)
    assert md.startswith("## edgeopt report")
    assert "| cnn | int8 | onnxruntime | cpu-1t | 1 | 3.75× | -0.40 |" in md
    assert "### Failures" in md and "ExportError" in md
    assert "**cnn**" in md  # the recommendation
    assert len(md) < 10_000


def test_json_round_trips_every_figure(tmp_path, data):
    paths = write_reports(data, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    loaded = load_report(paths["json"])
    assert loaded.rows == data.rows and loaded.gains == data.gains
    raw = json.loads(paths["json"].read_text())
    assert raw["recommendation"]["picks"][0]["row"]["recipe"] == "int8"
    assert not list(tmp_path.glob("*.tmp"))


def test_scatter_handles_single_points_and_log_axes():
    single = scatter([Point(1.0, 90.0, "a", "cnn", True)], "t", "x", "y")
    ET.fromstring(single)
    wide = scatter([Point(0.1, 50, "a", "g"), Point(100.0, 90, "b", "g", True)], "t", "x", "y", log_x=True)
    assert "(log)" in wide
    assert "no data" in scatter([], "t", "x", "y")


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not installed (apt-get install chromium)")
def test_renders_in_headless_chromium(tmp_path, data):
    page = write_reports(data, tmp_path, formats=("html",))["html"]
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
