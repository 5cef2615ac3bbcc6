"""recommend: budgets, feasibility, Pareto frontiers, one pick per family, what to relax (pure, no models)."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from edgeopt.benchmarks.results import ArtifactInfo, LatencyStats, Measurement
from edgeopt.core.errors import InvalidInput
from edgeopt.recommend import Budget, as_accurate, blockers, check_device, pareto, recommend
from edgeopt.report import ReportData
from edgeopt.results import Row, candidate_id, rows_of


def row(model: str, recipe: str, runtime: str, p95: float, accuracy: float | None, memory: float = 100.0,
        size: float = 1.0, device: str = "cpu-2t", batch: int = 1, family: str = "cnn", status: str = "ok",
        samples: int | None = None) -> Row:
    return Row(candidate_id=candidate_id(model, recipe, runtime, device, "0" * 12), model=model, recipe=recipe,
               family=family, format="onnx", precision="fp32", runtime=runtime, device=device, batch_size=batch,
               latency={"median": p95 * 0.8, "p95": p95, "mean": p95 * 0.85}, accuracy=accuracy,
               accuracy_samples=samples, memory_mb=memory, size_mb=size, status=status,
               error=None if status == "ok" else "boom", artifact_path=f"/cache/{model}-{recipe}-{runtime}")


ROWS = [
    row("cnn", "fp32", "torch", 9.0, 0.925, memory=300, size=1.7),
    row("cnn", "fp32", "onnxruntime", 3.0, 0.925, memory=120, size=1.7),
    row("cnn", "int8", "onnxruntime", 1.0, 0.921, memory=90, size=0.5),
    row("cnn", "pruned", "openvino", 2.0, 0.900, memory=150, size=0.9),
    row("cnn", "bad", "openvino", 0.5, 0.10, memory=80, size=0.4, status="failed"),
    row("lstm", "fp32", "onnxruntime", 12.0, 0.74, family="lstm", memory=250, size=8.0),
    row("lstm", "int8", "onnxruntime", 6.0, 0.735, family="lstm", memory=220, size=2.5),
    row("cnn", "int8", "onnxruntime", 0.7, 0.921, device="cpu-1t"),  # other device: out of scope
]


def test_feasible_and_picks_per_family():
    budget = Budget(device="cpu-2t", max_latency_ms=5, max_memory_mb=200, max_size_mb=10, min_accuracy=0.90)
    rec = recommend(ROWS, budget)
    assert rec.considered == 6 and rec.failed == 1
    assert [r.recipe for r in rec.feasible] == ["int8", "pruned", "fp32"]  # fastest first, torch too slow
    picks = {p.family: p for p in rec.picks}
    assert set(picks) == {"cnn"}  # no lstm candidate meets the accuracy limit
    # int8 is within 0.5 pt of the best feasible accuracy and fastest
    assert picks["cnn"].row.recipe == "int8" and "fastest" in picks["cnn"].reason
    misses = {(m.row.model, m.row.recipe): m for m in rec.near_misses}
    assert ("lstm", "int8") in misses
    blocker = misses[("lstm", "int8")].blockers
    assert [b.constraint for b in blocker] == ["max_latency_ms", "max_memory_mb", "min_accuracy"]
    assert blocker[0].value == 6.0 and blocker[0].headroom == pytest.approx(-1.0)


def test_relaxations_are_in_the_unit_of_the_budget():
    budget = Budget(device="cpu-2t", max_latency_ms=5, max_memory_mb=200, min_accuracy=0.90)
    latency, memory, accuracy = blockers(ROWS[6], budget)  # lstm int8: 6 ms, 220 MB, 73.5%
    assert (latency.unit, memory.unit, accuracy.unit) == ("ms", "MB", "pt")
    assert latency.describe() == "--max-latency-ms 5 -> 6 (+1 ms)"
    assert memory.describe() == "--max-memory-mb 200 -> 220 (+20 MB)"
    assert accuracy.headroom == pytest.approx(-16.5) and accuracy.describe() == "--min-accuracy 0.9 -> 0.735 (-16.5 pt)"


def test_each_pick_names_its_artifact_and_its_figures_against_the_budget():
    budget = Budget(device="cpu-2t", max_latency_ms=5, max_memory_mb=200, min_accuracy=0.90)
    (pick,) = recommend(ROWS, budget).picks
    assert pick.row.artifact_path == "/cache/cnn-int8-onnxruntime"
    figures = {m.constraint: m for m in pick.margins}
    assert set(figures) == {"max_latency_ms", "max_memory_mb", "min_accuracy"}
    assert figures["max_latency_ms"].headroom == pytest.approx(4.0) and figures["max_latency_ms"].ok
    accuracy = figures["min_accuracy"]
    assert accuracy.headroom == pytest.approx(2.1) and "2.1 pt to spare" in accuracy.describe()


def test_accuracy_beats_speed_beyond_the_slack():
    rows = [row("cnn", "fast", "onnxruntime", 1.0, 0.90), row("cnn", "accurate", "onnxruntime", 2.0, 0.93)]
    pick = recommend(rows, Budget(device="cpu-2t")).picks[0]
    assert pick.row.recipe == "accurate"  # 3 pt better is worth 2x latency


def test_nothing_fits_lists_nearest_misses_of_every_family():
    rec = recommend(ROWS, Budget(device="cpu-2t", max_latency_ms=0.5, min_accuracy=0.92))
    assert not rec.ok and not rec.picks
    assert rec.model_dump(mode="json")["ok"] is False
    by_family = {}
    for miss in rec.near_misses:
        by_family.setdefault(miss.row.family, []).append(miss)
    assert set(by_family) == {"cnn", "lstm"}  # the lstm misses are far, yet listed: accuracy is per data set
    nearest = by_family["cnn"][0]
    assert (nearest.row.model, nearest.row.recipe) == ("cnn", "int8")
    assert [b.constraint for b in nearest.blockers] == ["max_latency_ms"]
    assert nearest.blockers[0].describe() == "--max-latency-ms 0.5 -> 1 (+0.5 ms)"
    assert [m.row.recipe for m in by_family["lstm"]] == ["int8", "fp32"]  # nearest first


def test_pareto_marks_are_per_family():
    # an LSTM that is faster and "more accurate" (on another data set) must not push CNNs off their frontier
    rows = ROWS + [row("lstm", "tiny", "onnxruntime", 0.6, 0.99, family="lstm")]
    rec = recommend(rows, Budget(device="cpu-2t"))
    assert set(rec.frontiers) == {"cnn", "lstm"}
    assert [r.recipe for r in rec.frontiers["cnn"]["latency"]] == ["int8", "fp32"]
    assert [r.recipe for r in rec.frontiers["lstm"]["latency"]] == ["tiny"]
    assert rec.on_frontier(rows[2]) and not rec.on_frontier(rows[3])


def test_accuracy_slack_takes_the_wilson_interval_into_account():
    fast, accurate = row("cnn", "fast", "onnxruntime", 1.0, 0.92), row("cnn", "slow", "onnxruntime", 2.0, 0.935)
    assert not as_accurate(fast, accurate)  # 1.5 pt apart, no sample counts: point estimates decide
    assert recommend([fast, accurate], Budget(device="cpu-2t")).picks[0].row.recipe == "slow"
    fast_500, accurate_500 = (r.model_copy(update={"accuracy_samples": 500}) for r in (fast, accurate))
    assert as_accurate(fast_500, accurate_500)  # on 500 samples each, 1.5 pt is within the noise
    pick = recommend([fast_500, accurate_500], Budget(device="cpu-2t")).picks[0]
    assert pick.row.recipe == "fast" and "95% CI" in pick.reason
    big = [r.model_copy(update={"accuracy_samples": 200_000}) for r in (fast, accurate)]
    assert not as_accurate(*big)  # precise enough to tell 1.5 pt apart


def test_pareto_frontier_keeps_only_undominated():
    frontier = pareto([r for r in ROWS if r.ok and r.device == "cpu-2t" and r.family == "cnn"], "latency:p95")
    assert [(r.recipe, r.runtime) for r in frontier] == [("int8", "onnxruntime"), ("fp32", "onnxruntime")]
    by_size = pareto([r for r in ROWS if r.ok and r.family == "cnn" and r.device == "cpu-2t"], "size_mb")
    assert by_size[0].recipe == "int8"


def test_percentile_and_family_filters():
    rec = recommend(ROWS, Budget(device="cpu-2t", percentile="median", max_latency_ms=4.0, family="lstm"))
    assert [r.recipe for r in rec.feasible] == []
    rec = recommend(ROWS, Budget(device="cpu-2t", percentile="median", max_latency_ms=5.0, family="lstm"))
    assert [r.recipe for r in rec.feasible] == ["int8"]  # median 4.8 ms
    assert blockers(ROWS[0], Budget(max_latency_ms=1.0))[0].value == 9.0


def test_unknown_device_lists_the_measured_ones():
    with pytest.raises(InvalidInput, match="'cpu-9t'.*measured devices: cpu-1t, cpu-2t"):
        check_device(ROWS, Budget(device="cpu-9t"))
    check_device(ROWS, Budget(device="cpu-1t"))


def test_recommend_command(tmp_path):
    from edgeopt.cli import app

    report = tmp_path / "report.json"
    report.write_text(ReportData(rows=ROWS).model_dump_json())
    runner = CliRunner()
    fits = runner.invoke(app, ["recommend", "--results", str(report), "--max-latency-ms", "5", "--json"])
    data = json.loads(fits.stdout)
    assert fits.exit_code == 0 and data["ok"] is True and data["picks"][0]["row"]["artifact_path"]
    table = runner.invoke(app, ["recommend", "--results", str(report), "--family", "cnn"], env={"COLUMNS": "200"})
    header = next(line for line in table.stdout.splitlines() if "recipe" in line)
    assert table.exit_code == 0 and "device" in header and "cpu-1t" in table.stdout  # two devices shown
    assert "artifact: /cache/cnn-int8-onnxruntime" in table.stdout
    one_device = runner.invoke(app, ["recommend", "--results", str(report), "--device", "cpu-2t"],
                               env={"COLUMNS": "200"})
    header = next(line for line in one_device.stdout.splitlines() if "recipe" in line)
    assert "device" not in header and "precision" in header
    nothing = runner.invoke(app, ["recommend", "--results", str(report), "--max-latency-ms", "0.1", "--json"])
    assert nothing.exit_code == 1 and json.loads(nothing.stdout)["ok"] is False
    unknown = runner.invoke(app, ["recommend", "--results", str(report), "--device", "cpu-9t"])
    assert isinstance(unknown.exception, InvalidInput) and "cpu-1t, cpu-2t" in str(unknown.exception)


@pytest.mark.parametrize("bad", [{"max_latency_ms": -1}, {"min_accuracy": 1.5}, {"percentile": "p42"},
                                 {"batch": 0}, {"max_latnecy_ms": 5}])
def test_impossible_budgets_are_rejected(bad):
    with pytest.raises(ValidationError):
        Budget(**bad)


def test_rows_from_real_measurements_keep_the_newest():
    def measurement(median: float, created: str, status="ok") -> Measurement:
        stats = LatencyStats(mean=median, median=median, p90=median, p95=median * 1.1, p99=median * 1.2,
                             min=median, max=median * 1.3, std=0.1, cv=0.05, median_ci_low=median * 0.95,
                             median_ci_high=median * 1.05, count=30, total_seconds=1.0, noisy=False)
        info = ArtifactInfo(name="cnn", sha256="a" * 64, path="/x", family="cnn", format="onnx", precision="int8",
                            recipe=[{"step": "train"}, {"step": "quantize", "precision": "int8", "mode": "static"}])
        return Measurement(candidate_id=candidate_id("cnn", "int8", "onnxruntime", "cpu-1t", "f" * 12),
                           artifact=info, runtime="onnxruntime", device="cpu-1t", batch_size=1, latency=stats,
                           peak_rss_mb=120.0, size_mb=0.4, accuracy=0.92, status=status, created=created)

    rows = rows_of([measurement(2.0, "2026-01-01T00:00:00"), measurement(1.5, "2026-01-02T00:00:00")])
    assert len(rows) == 1
    (r,) = rows
    assert (r.model, r.recipe, r.runtime, r.device) == ("cnn", "int8", "onnxruntime", "cpu-1t")
    assert r.latency_ms("median") == 1.5 and r.latency_ms("p50") == 1.5
    assert r.median_ci_low == pytest.approx(1.425) and r.memory_mb == 120.0
    assert r.steps == ["quantize(int8, static)"] and r.key == "cnn/int8/onnxruntime/cpu-1t/b1"
