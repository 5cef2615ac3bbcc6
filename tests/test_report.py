"""Reports: the answer first, the budget on the plots, self-contained HTML, Markdown for a PR, JSON and results.db
round trips."""
from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

import pytest

from edgeopt.benchmarks.latency import summarize
from edgeopt.benchmarks.results import ArtifactInfo, Measurement
from edgeopt.recommend import Budget
from edgeopt.report import build_report, load_report, render_html, render_markdown, report_from_store, save_run, \
    write_reports
from edgeopt.report.svg import CHAR_W, LABEL_H, Point, scatter
from edgeopt.results import Row, candidate_id
from edgeopt.store import ResultStore


def row(model, recipe, runtime, median, accuracy, steps=(), precision="fp32", fmt="onnx", device="cpu-1t",
        status="ok", error=None, family="cnn", size=1.0, memory=100.0):
    return Row(candidate_id=candidate_id(model, recipe, runtime, device, "1" * 12), model=model, recipe=recipe,
               family=family, format=fmt, precision=precision, runtime=runtime, device=device, batch_size=1,
               latency={"median": median, "p95": median * 1.2, "cv": 0.04}, median_ci_low=median * 0.97,
               median_ci_high=median * 1.03, accuracy=accuracy, accuracy_samples=2000, size_mb=size,
               memory_mb=memory, steps=list(steps), status=status, error=error, parent="ab" * 32,
               sha256=f"{model}{recipe}{runtime}".ljust(64, "0"), artifact_path=f"/out/cache/{model}-{recipe}",
               provenance={"cpu_model": "Test CPU <x86>", "versions": {"torch": "2.13"}, "git": "abc123",
                           "memory_bytes": 8 * 2**30})


ROWS = [
    row("cnn", "fp32", "torch", 3.0, 0.925, fmt="torch", size=1.7, memory=300),
    row("cnn", "fp32", "onnxruntime", 1.5, 0.925, size=1.7, memory=120),
    row("cnn", "int8", "onnxruntime", 0.8, 0.921, steps=["quantize(int8, static)"], precision="int8", size=0.45),
    row("cnn", "pruned", "openvino", 1.0, 0.915, steps=["prune(ratio=0.5)"], fmt="openvino", size=0.8),
    # the fastest of all, but it broke the accuracy budget: no card may celebrate it
    row("cnn", "student", "onnxruntime", 0.1, 0.87, steps=["distill(mobilenetv2)"], size=0.2),
    row("cnn", "broken", "openvino", 0.0, None, status="failed", error="ExportError: op <Foo> unsupported"),
    row("lstm", "fp32", "torch", 5.0, 0.74, fmt="torch", family="lstm", size=6.0),
    row("lstm", "int8", "onnxruntime", 2.0, 0.735, steps=["quantize(int8, dynamic)"], precision="int8",
        family="lstm", size=1.6),
]


@pytest.fixture(scope="module")
def data():
    return build_report(ROWS, budget=Budget(device="cpu-1t", max_latency_ms=1.2, min_accuracy=0.9),
                        notes=["skipped runtime tensorrt on cpu-1t: TensorRT is not installed"], config={"seed": 0})


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
    assert html.count("<svg") >= 5  # latency and memory plots for cnn and lstm, size chart
    for text in ("accuracy vs p95 latency", "Every candidate", "table class=\"sortable wide\"",
                 "quantize(int8, static)",
                 "ExportError: op &lt;Foo&gt; unsupported", "Test CPU &lt;x86&gt;", "torch", "3.75×",
                 "Pareto frontier", "TensorRT is not installed", "Which model fits",
                 "agreement with the FP32 model of the same architecture", "<details><summary>Config",
                 "memory MB</th><td>8,192"):
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


def test_first_screen_answers_per_family(data):
    html = render_html(data)
    first_screen = html[html.index("Which model fits"):html.index("<h2>Notes")]
    cnn = first_screen[first_screen.index("cnn: cnn/int8 on onnxruntime"):first_screen.index("lstm:")]
    for text in ("p95 latency", "0.96 ms", "≤ 1.2 ms", "≥ 90.0%", "3.75× faster", "-0.40 pt", "95% CI",
                 "3.78× smaller", "/out/cache/cnn-int8", "edgeopt predict /out/cache/cnn-int8"):
        assert text in cnn, text
    assert "lstm: nothing fits the budget" in first_screen and "--max-latency-ms" in first_screen


def test_best_speedup_card_respects_the_accuracy_budget(data):
    html = render_html(data)
    card = html[html.index('<div class="cards"'):html.index("</div>\n", html.index('<div class="cards"'))]
    assert "best speedup" in card and "cnn/int8 onnxruntime" in card and "student" not in card


def test_plots_show_the_budget_and_the_pick(data):
    plot = next(svg for svg in re.findall(r"<svg.*?</svg>", render_html(data), flags=re.S)
                if "cnn: accuracy vs p95 latency" in svg)
    assert "limit 1.2" in plot and "minimum 90" in plot and "outside the budget" in plot
    assert 'class="pick"' in plot and "pick: cnn/int8 onnxruntime" in plot
    assert "cnn/int8 onnxruntime: 0.96 / 92.1" in plot  # plotted at its p95 (0.8 ms median x 1.2), the budget's


def test_point_labels_do_not_overlap():
    crowded = [Point(1 + i * 0.02, 90 + (i % 3) * 0.05, f"cnn/recipe{i} onnxruntime", "cnn", pick=i == 4)
               for i in range(12)] + [Point(5.0, 80.0, "far away", "cnn")]
    svg = scatter(crowded, "t", "x", "y", x_max=3.0, y_min=85.0)
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" class="(?:point|pick)">([^<]+)</text>', svg)
    boxes = [(float(x), float(y) - LABEL_H, float(x) + len(t) * CHAR_W, float(y)) for x, y, t in labels]
    assert "pick: cnn/recipe4 onnxruntime" in [t for _, _, t in labels] and "far away" in [t for _, _, t in labels]
    assert len(labels) < len(crowded)  # the crowd cannot all be labelled; the tooltips still name them
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1), (a, b)


def test_one_colour_rule_for_accuracy_deltas(data):
    html = render_html(data)
    assert '<td class="num bad" data-v="-5.5' in html  # the student lost 5.5 pt: red
    assert '<td class="num " data-v="-0.4' in html  # 0.4 pt lost: within the rule, neither colour
    assert "red when more than 1 pt was lost" in html


def test_markdown_puts_picks_failures_and_gains_first_and_truncates_per_family():
    rows = ROWS + [row("cnn", f"r{i}", "onnxruntime", 2 + i, 0.9) for i in range(5)]
    data = build_report(rows, budget=Budget(device="cpu-1t", max_latency_ms=1.2, min_accuracy=0.9))
    md = render_markdown(data, per_family=4)
    order = [md.index(h) for h in ("### Which model fits", "### Failures", "### What each technique bought",
                                   "### Candidates")]
    assert order == sorted(order)
    assert "- **cnn**: `cnn/int8 onnxruntime`" in md and "3.75× faster, accuracy -0.40 pt (95% CI" in md
    assert "- **lstm**: nothing fits the budget" in md
    cnn_ok = sum(1 for r in rows if r.ok and r.family == "cnn")
    assert f"… {cnn_ok - 4} cnn row(s) left out" in md
    assert md.count("| lstm |") == 1 + 2  # the int8 gain and both lstm candidates: under the cap, all shown


def _measurement(r: Row) -> Measurement:
    artifact = ArtifactInfo(name=r.model, sha256=r.sha256, path=r.artifact_path, family=r.family, format=r.format,
                            precision=r.precision, recipe=[], parent=r.parent)
    return Measurement(candidate_id=r.candidate_id, artifact=artifact, runtime=r.runtime, device=r.device,
                       batch_size=r.batch_size, latency=summarize([r.latency_ms("median")] * 5), size_mb=r.size_mb,
                       accuracy=r.accuracy, accuracy_samples=r.accuracy_samples, status="ok",
                       provenance=r.provenance)


def test_report_from_results_db_is_the_runs_report(tmp_path):
    db = tmp_path / "results.db"
    kept = [r for r in ROWS if r.ok]
    with ResultStore(db) as store:
        store.add_many([_measurement(r) for r in kept])
        store.add(_measurement(row("resnet", "fp32", "torch", 9.0, 0.94)))  # another run's: not in this report
    rows = report_from_store(db).rows  # without a run context: every newest row
    assert len(rows) == len(kept) + 1
    run = build_report([r for r in rows if r.model != "resnet"], title="nightly",
                       budget=Budget(device="cpu-1t", max_latency_ms=1.2, min_accuracy=0.9),
                       notes=["skipped runtime tensorrt"], config={"seed": 0, "models": {"cnn": {}}})
    save_run(db, run)
    again = report_from_store(db)
    assert again.recommendation is not None and again.notes == ["skipped runtime tensorrt"]
    assert render_html(again) == render_html(run) and render_markdown(again) == render_markdown(run)
    assert again.model_dump() == run.model_dump()


def test_a_version_1_results_db_gains_the_run_metadata_table(tmp_path):
    import sqlite3

    from edgeopt.store import MIGRATIONS

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version=1;")
    conn.close()
    with ResultStore(db) as store:
        assert store.version == len(MIGRATIONS) and store.get_meta("report") is None
        store.set_meta("report", {"title": "t"})
        store.set_meta("report", {"title": "again"})  # one value per key: the last run's
    with ResultStore(db) as store:
        assert store.get_meta("report") == {"title": "again"}


def test_every_distilled_student_is_shown_next_to_the_same_student_alone():
    """With the teacher vs alone, judged against what the test samples can tell apart (±3 pt at 1000 samples)."""
    helped = {"student": "mobilenetv2", "teacher_test_accuracy": 0.93, "distilled_test_accuracy": 0.90,
              "baseline_test_accuracy": 0.85, "eval_samples": 1000}
    hurt = {**helped, "student": "squeezenet", "distilled_test_accuracy": 0.698, "baseline_test_accuracy": 0.863}
    even = {**helped, "student": "textcnn", "distilled_test_accuracy": 0.87, "baseline_test_accuracy": 0.86}
    rows = ROWS[:2] + [row("cnn", "student", "onnxruntime", 0.1, 0.87, steps=["distill(mobilenetv2)"])
                       .model_copy(update={"distillation": helped}),
                       row("cnn", "student-int8", "onnxruntime", 0.05, 0.86, steps=["distill(mobilenetv2)"])
                       .model_copy(update={"distillation": helped}),  # the same student, quantized: one line
                       row("cnn", "sq", "onnxruntime", 0.2, 0.70, steps=["distill(squeezenet)"])
                       .model_copy(update={"distillation": hurt}),
                       row("cnn", "tc", "onnxruntime", 0.2, 0.87, steps=["distill(textcnn)"])
                       .model_copy(update={"distillation": even})]
    data = build_report(rows)
    lines = {line.split(" student:")[0]: line for line in data.distillations()}
    assert set(lines) == {"cnn → mobilenetv2", "cnn → squeezenet", "cnn → textcnn"}
    assert "90.00% with the teacher (93.00%), 85.00% trained alone (+5.00 pt" in lines["cnn → mobilenetv2"]
    assert lines["cnn → mobilenetv2"].endswith("distillation helped")
    assert "(-16.50 pt" in lines["cnn → squeezenet"] and "did NOT help" in lines["cnn → squeezenet"]
    assert "(+1.00 pt" in lines["cnn → textcnn"]
    assert "no clear difference (within the ±3.0 pt" in lines["cnn → textcnn"]
    for text in (render_markdown(data), render_html(data)):
        assert "Distillation: with the teacher vs the same student alone" in text and "did NOT help" in text
    assert "Distillation:" not in render_markdown(build_report(ROWS))
