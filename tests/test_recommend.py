"""recommend: budgets, feasibility, Pareto frontiers, one pick per family, what to relax (pure, no models)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgeopt.benchmarks.results import ArtifactInfo, LatencyStats, Measurement
from edgeopt.recommend import Budget, blockers, pareto, recommend
from edgeopt.results import Row, candidate_id, rows_of


def row(model: str, recipe: str, runtime: str, p95: float, accuracy: float, memory: float = 100.0,
        size: float = 1.0, device: str = "cpu-2t", batch: int = 1, family: str = "cnn", status: str = "ok") -> Row:
    return Row(candidate_id=candidate_id(model, recipe, runtime, device, "0" * 12), model=model, recipe=recipe,
               family=family, format="onnx", precision="fp32", runtime=runtime, device=device, batch_size=batch,
               latency={"median": p95 * 0.8, "p95": p95, "mean": p95 * 0.85}, accuracy=accuracy, memory_mb=memory,
               size_mb=size, status=status, error=None if status == "ok" else "boom")


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
    assert blocker[0].relax_to == 6.0 and blocker[0].relax_by_pct == pytest.approx(20.0)
    assert "--max-latency-ms 5 -> 6" in blocker[0].describe()


def test_accuracy_beats_speed_beyond_the_slack():
    rows = [row("cnn", "fast", "onnxruntime", 1.0, 0.90), row("cnn", "accurate", "onnxruntime", 2.0, 0.93)]
    pick = recommend(rows, Budget(device="cpu-2t")).picks[0]
    assert pick.row.recipe == "accurate"  # 3 pt better is worth 2x latency


def test_nothing_fits_lists_nearest_misses_with_what_to_relax():
    rec = recommend(ROWS, Budget(device="cpu-2t", max_latency_ms=0.5, min_accuracy=0.92))
    assert not rec.ok and not rec.picks
    nearest = rec.near_misses[0]
    assert (nearest.row.model, nearest.row.recipe) == ("cnn", "int8")
    assert [b.constraint for b in nearest.blockers] == ["max_latency_ms"]
    assert nearest.blockers[0].relax_to == 1.0 and nearest.blockers[0].relax_by_pct == pytest.approx(100.0)


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
