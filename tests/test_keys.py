"""What a result depends on is in its key: library versions and code for builds; host, runtime version and
measurement settings for measurements. A change rebuilds / re-measures, and the run says why."""
from __future__ import annotations

import pytest

from edgeopt.api import Pipeline
from edgeopt.benchmarks import BenchConfig, LatencyConfig, plan
from edgeopt.benchmarks.profiles import get_profile
from edgeopt.config import load_config
from edgeopt.core import environment
from edgeopt.pipeline import RESULTS_DB, make_plan, source_node
from edgeopt.store import ResultStore

FAST_LATENCY = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.05, "max_seconds": 1}


def tiny(output, recipes=None) -> dict:
    return {"output": str(output), "devices": ["cpu-1t"], "batch_sizes": [1],
            "measure": {"eval_samples": 200, "latency": FAST_LATENCY},
            "models": {"cnn": {"zoo": "cnn", "recipes": recipes or [{"name": "fp32", "runtimes": ["onnxruntime"]}]}}}


def upgrade(monkeypatch, package: str, version: str) -> str:
    """Pretend `package` is installed at `version`; returns the real version."""
    real = environment.package_versions()
    monkeypatch.setattr(environment, "package_versions", lambda: {**real, package: version})
    return real[package]


def move_host(monkeypatch, cpu_model: str) -> None:
    real = environment.host_description()
    monkeypatch.setattr(environment, "host_description", lambda: {**real, "cpu_model": cpu_model})


def ids_and_nodes(config):
    planned = make_plan(config)
    return {c.id for c in planned.candidates}, {n.key for n in planned.nodes}


@pytest.mark.parametrize("package", ["torch", "onnx", "onnxruntime", "openvino", "nncf", "torch-pruning",
                                     "transformers"])
def test_a_library_upgrade_changes_every_build_key_and_candidate(tmp_path, monkeypatch, package):
    config = load_config(tiny(tmp_path))
    ids, nodes = ids_and_nodes(config)
    upgrade(monkeypatch, package, "99.0")
    ids_after, nodes_after = ids_and_nodes(config)
    assert not ids & ids_after and not nodes & nodes_after


def test_host_runtime_version_and_settings_change_the_candidate_not_the_build(tmp_path, monkeypatch):
    config = load_config(tiny(tmp_path))
    ids, nodes = ids_and_nodes(config)
    assert ids_and_nodes(config) == (ids, nodes)  # deterministic
    slower = tiny(tmp_path)
    slower["measure"]["latency"] = {**FAST_LATENCY, "min_runs": 6}
    for changed in (load_config(slower), load_config({**tiny(tmp_path), "measure": {"eval_samples": 300}})):
        ids_after, nodes_after = ids_and_nodes(changed)
        assert not ids & ids_after and nodes_after == nodes
    with monkeypatch.context() as patch:
        move_host(patch, "Another CPU @ 1.0GHz")
        ids_after, nodes_after = ids_and_nodes(config)
        assert not ids & ids_after and nodes_after == nodes
    monkeypatch.setattr(environment, "runtime_version", lambda runtime: "0.1")
    ids_after, nodes_after = ids_and_nodes(config)
    assert not ids & ids_after and nodes_after == nodes


def test_the_source_file_of_a_users_factory_is_in_the_build_key(tmp_path):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text("def make():\n    raise NotImplementedError\n")
    model = load_config({"models": {"mine": {"module": "mynets.net:make", "dataset": "fashion-mnist",
                                             "python_path": str(tmp_path)}}}).models["mine"]
    before = source_node("mine", model)
    assert before.key == source_node("mine", model).key
    (package / "net.py").write_text("def make():\n    raise NotImplementedError('changed')\n")
    after = source_node("mine", model)
    assert after.key != before.key and after.environment["factory"] != before.environment["factory"]


def test_bench_ids_include_settings_profile_and_host(cnn_artifact, monkeypatch):
    profile = get_profile("cpu-1t")

    def bench_id(config: BenchConfig | None = None, device=profile):
        (candidate,) = plan([cnn_artifact], None, [device], config or BenchConfig())
        return candidate.id

    first = bench_id()
    assert bench_id() == first and first.split("#")[0].endswith("/cpu-1t")
    others = {bench_id(BenchConfig(accuracy_samples=500)),
              bench_id(BenchConfig(latency=LatencyConfig(min_runs=31))),
              bench_id(device=profile.model_copy(update={"threads": 2}))}
    move_host(monkeypatch, "Another CPU @ 1.0GHz")
    others.add(bench_id())
    assert first not in others and len(others) == 4
    assert all(other.split("#")[0] == first.split("#")[0] for other in others)  # same stable key
    assert bench_id(BenchConfig(batch_sizes=[1, 8], timeout_s=5)) == bench_id()  # per-row / no effect: same id


def test_an_upgrade_or_another_host_re_measures_and_says_why(tmp_path, monkeypatch):
    config = tiny(tmp_path, [{"name": "fp32", "runtimes": ["torch"]}])  # nothing to build: quick
    first = Pipeline(config).run(report=False)
    assert first.measured == 1 and first.rows[0].ok
    again = Pipeline(config).run(report=False)
    assert again.measured == 0 and again.resumed == 1 and not any("re-measured" in n for n in again.plan.notes)

    real = upgrade(monkeypatch, "torch", "99.0")
    upgraded = Pipeline(config).run(report=False)
    assert upgraded.measured == 1 and upgraded.resumed == 0
    assert f"re-measured cnn/fp32/torch/cpu-1t: torch {real} -> 99.0" in upgraded.plan.notes
    assert [r.candidate_id for r in upgraded.rows] == [c.id for c in upgraded.plan.candidates]  # only the new row

    move_host(monkeypatch, "Another CPU @ 1.0GHz")
    moved = Pipeline(config).run(report=False)
    assert moved.measured == 1
    (note,) = [n for n in moved.plan.notes if n.startswith("re-measured")]
    assert "host changed (cpu_model:" in note and "Another CPU @ 1.0GHz" in note
    assert [r.candidate_id for r in moved.rows] == [c.id for c in moved.plan.candidates]
    with ResultStore(tmp_path / RESULTS_DB) as store:
        assert len(store) == 3  # the superseded rows are kept, just not shown as current
