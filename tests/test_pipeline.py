"""The pipeline on a tiny config (the shipped CNN, small seeded subsets, short timing): plan, content-addressed
cache, resume after SIGKILL, failures recorded while the sweep goes on, the `edgeopt run` command."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edgeopt.api import Pipeline
from edgeopt.cli import app
from edgeopt.config import load_config
from edgeopt.core.errors import InvalidInput
from edgeopt.pipeline import CACHE_DIR, make_plan

FAST_LATENCY = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.05, "max_seconds": 1}


def tiny(output: Path, recipes: list[dict] | None = None, devices=("cpu-1t",)) -> dict:
    return {"output": str(output), "devices": list(devices), "batch_sizes": [1],
            "measure": {"eval_samples": 200, "latency": FAST_LATENCY},
            "models": {"cnn": {"zoo": "cnn", "recipes": recipes or [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
                {"name": "int8", "quantize": {"mode": "static", "samples": 32, "eval_samples": 200},
                 "runtimes": ["onnxruntime"]}]}}}


def stored(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT candidate_id, status FROM measurements ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the store is still being created
        return []
    finally:
        conn.close()


def test_plan_expands_the_config_and_notes_what_is_skipped(tmp_path):
    config = load_config(tiny(tmp_path, [{"name": "fp32", "runtimes": ["torch", "onnxruntime", "tensorrt"]}],
                              devices=("cpu-1t", "cpu-2t", "cuda:7")))
    plan = make_plan(config)
    assert sorted((c.runtime, c.device) for c in plan.candidates) == [
        ("onnxruntime", "cpu-1t"), ("onnxruntime", "cpu-2t"), ("torch", "cpu-1t"), ("torch", "cpu-2t")]
    assert any("cuda:7" in note for note in plan.notes)
    assert any("tensorrt" in note for note in plan.notes)
    assert [c.id for c in make_plan(config).candidates] == [c.id for c in plan.candidates]  # deterministic


def test_changing_one_parameter_changes_only_what_depends_on_it(tmp_path):
    before = make_plan(load_config(tiny(tmp_path)))
    changed = tiny(tmp_path)
    changed["models"]["cnn"]["recipes"][1]["quantize"]["samples"] = 64
    after = make_plan(load_config(changed))
    ids_before, ids_after = {c.id for c in before.candidates}, {c.id for c in after.candidates}
    assert len(ids_before - ids_after) == 1 and next(iter(ids_before - ids_after)).startswith("cnn/int8/")
    keys_before, keys_after = {n.key for n in before.nodes}, {n.key for n in after.nodes}
    assert len(keys_after - keys_before) == 1  # only the quantize step is new; source and export are reused


def test_unknown_device_and_bad_precision_are_clear(tmp_path):
    with pytest.raises(InvalidInput, match="unknown device profile 'rpi9'.*known: cpu"):
        make_plan(load_config(tiny(tmp_path, devices=("rpi9",))))
    with pytest.raises(InvalidInput, match="onnx export supports precision fp32, not fp16"):
        make_plan(load_config(tiny(tmp_path, [{"name": "half", "precision": "fp16", "runtimes": ["onnxruntime"]}])))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    pipeline = Pipeline(tiny(out))
    return pipeline, pipeline.run()


def test_run_measures_stores_and_reports(first_run):
    pipeline, result = first_run
    assert result.exit_code == 0 and result.measured == 3 and result.resumed == 0
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "onnxruntime"), ("int8", "onnxruntime")}
    for row in rows.values():
        assert row.ok and row.accuracy > 0.8 and row.latency_ms("p95") > 0 and row.size_mb > 0
    assert rows[("int8", "onnxruntime")].precision == "int8"
    assert rows[("int8", "onnxruntime")].size_mb < rows[("fp32", "onnxruntime")].size_mb / 2
    assert rows[("int8", "onnxruntime")].fidelity is not None
    for fmt in ("html", "md", "json"):
        assert result.reports[fmt].exists()
    assert "cnn" in result.reports["md"].read_text()


def test_rerun_reuses_cache_and_store(first_run):
    pipeline, _ = first_run
    cache = pipeline.output / CACHE_DIR
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()}
    started = time.perf_counter()
    again = pipeline.run()
    assert again.measured == 0 and again.resumed == 3 and again.built == 0
    assert time.perf_counter() - started < 20
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_dir()} == stamps
    assert len(stored(pipeline.store_path)) == 3


def test_a_failing_candidate_is_recorded_and_the_sweep_goes_on(tmp_path):
    recipes = [{"name": "fp32", "runtimes": ["onnxruntime"]},
               {"name": "broken", "quantize": {"mode": "static", "calibration_data": str(tmp_path / "none.npz")},
                "runtimes": ["onnxruntime"]}]
    result = Pipeline(tiny(tmp_path, recipes)).run(jobs=2)  # parallel builds; one of them fails
    assert result.exit_code == 1 and result.failed == 1
    by_recipe = {r.recipe: r for r in result.rows}
    assert by_recipe["fp32"].ok
    assert not by_recipe["broken"].ok and "none.npz" in by_recipe["broken"].error
    html = result.reports["html"].read_text()
    assert "none.npz" in html and "Failures" in html
    assert Pipeline(tiny(tmp_path, recipes)).run().measured == 0  # a recorded failure is not retried ...
    assert Pipeline(tiny(tmp_path, recipes)).run(retry_failed=True).measured == 1  # ... unless asked


def test_sigkill_mid_sweep_then_resume_loses_and_redoes_nothing(tmp_path):
    recipes = [{"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
               {"name": "int8", "quantize": {"mode": "static", "samples": 32, "eval_samples": 200},
                "runtimes": ["onnxruntime"]}]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny(tmp_path / "out", recipes)))
    db = tmp_path / "out" / "results.db"
    proc = subprocess.Popen([sys.executable, "-c", "from edgeopt.cli import main; main()", "run", "-c", str(config),
                             "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and len(stored(db)) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = stored(db)
    assert 1 <= len(before) < 3
    result = Pipeline(config).run()
    after = stored(db)
    assert after[: len(before)] == before  # nothing lost
    assert result.measured == 3 - len(before) and result.resumed == len(before)  # nothing redone
    assert len({cid for cid, _ in after}) == len(after) == 3 and all(status == "ok" for _, status in after)


def test_run_command_dry_run_and_exit_codes(tmp_path, first_run):
    config = tmp_path / "tiny.yaml"
    pipeline, _ = first_run
    config.write_text(yaml.safe_dump(tiny(pipeline.output)))
    runner = CliRunner()
    dry = runner.invoke(app, ["run", "-c", str(config), "--dry-run"])
    assert dry.exit_code == 0 and "3 candidates" in dry.stdout and "quantize(static" in dry.stdout
    done = runner.invoke(app, ["run", "-c", str(config)])
    assert done.exit_code == 0 and "3 already stored" in done.stdout and "report.html" in done.stdout
    rec = runner.invoke(app, ["recommend", "--device", "cpu-1t", "--max-latency-ms", "1000", "--min-accuracy", "0.5",
                              "--results", str(pipeline.store_path)])
    assert rec.exit_code == 0 and "cnn" in rec.stdout and "fastest" in rec.stdout
    miss = runner.invoke(app, ["recommend", "--device", "cpu-1t", "--max-size-mb", "0.001",
                               "--results", str(pipeline.store_path), "--json"])
    assert miss.exit_code == 1 and '"near_misses"' in miss.stdout and "max_size_mb" in miss.stdout


def test_a_users_onnx_file_goes_through_the_same_pipeline(tmp_path, cnn_artifact):
    from edgeopt.export import export_artifact

    exported = export_artifact(cnn_artifact, "onnx", tmp_path / "export", verify=False)
    config = {"output": str(tmp_path / "out"), "devices": ["cpu-1t"], "batch_sizes": [1],
              "measure": {"eval_samples": 300, "latency": FAST_LATENCY},
              "models": {"mine": {"onnx": str(exported.model_path), "dataset": "fashion-mnist",
                                  "recipes": [{"name": "fp32", "runtimes": ["onnxruntime"]}]}}}
    (row,) = Pipeline(config).run(report=False).rows
    assert row.ok and row.model == "mine" and row.format == "onnx" and row.accuracy > 0.85
    with pytest.raises(InvalidInput, match="ONNX source has no torch module"):
        load_config({**config, "models": {"mine": {**config["models"]["mine"],
                                                  "recipes": [{"name": "p", "prune": {}, "runtimes": ["onnxruntime"]}]}}})
