"""Benchmark sweeps on real artifacts and runtimes: profiles, isolation, failures, fidelity, store, CLI.

Timings here are noisy (shared cores), so nothing asserts a speed; the measurements' content is asserted.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeopt.benchmarks import BenchConfig, DeviceProfile, LatencyConfig, bench, get_profile, list_profiles
from edgeopt.core.errors import InvalidInput
from edgeopt.store import ResultStore

QUICK = LatencyConfig(warmup_runs=2, warmup_seconds=0, min_runs=5, min_seconds=0.05)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cnn_onnx(cnn_artifact, tmp_path_factory):
    from edgeopt.export import export_artifact

    return export_artifact(cnn_artifact, "onnx", tmp_path_factory.mktemp("bench") / "cnn-onnx")


# ---------------------------------------------------------------- profiles


def test_bundled_profiles():
    profiles = list_profiles(probe_cuda=False)
    assert {"cpu", "cpu-1t", "cpu-2t", "edge-4c-4g", "edge-1c-512m"} <= set(profiles)
    assert profiles["cpu-1t"].threads == 1 and not profiles["cpu-1t"].emulated
    edge = profiles["edge-1c-512m"]
    assert edge.emulated and edge.memory_mb == 512 and edge.threads == 1 and edge.cores == 1


def test_user_profiles_extend_and_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEOPT_CONFIG", str(tmp_path))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "jetson.yaml").write_text("device: cpu\nthreads: 6\nmemory_mb: 8192\nemulated: true\n")
    profile = get_profile("jetson")
    assert profile.threads == 6 and profile.emulated and profile.source.endswith("jetson.yaml")
    (tmp_path / "profiles" / "bad.yaml").write_text("name: bad\nthreads: zero\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml.*threads"):
        list_profiles(probe_cuda=False)
    (tmp_path / "profiles" / "bad.yaml").unlink()
    with pytest.raises(InvalidInput, match="unknown device profile 'nope'.*jetson"):
        get_profile("nope")


def test_profile_wanting_more_cores_than_the_host_warns():
    cores, warnings = DeviceProfile(name="big", cores=4096).pinned_cores()
    assert cores and len(cores) < 4096 and "4096 cores" in warnings[0]
    assert DeviceProfile(name="all").pinned_cores() == (None, [])


# ---------------------------------------------------------------- sweeps


def test_bench_torch_and_onnx_with_fidelity_store_and_resume(cnn_artifact, cnn_onnx, tmp_path):
    config = BenchConfig(batch_sizes=[1, 4], latency=QUICK, accuracy_samples=500)
    with ResultStore(tmp_path / "r.db") as store:
        rows = bench([cnn_onnx, cnn_artifact], devices=["cpu-1t"], config=config, store=store)
        assert [(m.artifact.format, m.batch_size) for m in rows] == [("torch", 1), ("torch", 4), ("onnx", 1),
                                                                    ("onnx", 4)]  # parents first
        for m in rows:
            assert m.status == "ok", m.error
            assert m.latency.count >= 5 and m.latency.min <= m.latency.median <= m.latency.max
            assert m.throughput > 0 and m.peak_rss_mb > 20 and m.size_mb > 1
            assert m.accuracy >= 0.85 and m.accuracy_samples == 500
            assert m.macs > 0 and m.params > 0
            assert m.device == "cpu-1t" and not m.emulated
            assert m.provenance["threads"] == 1 and len(m.provenance["cores"]) == 1
            assert m.provenance["cpu_model"] and m.provenance["versions"]
        torch_row, onnx_row = rows[0], rows[2]
        assert torch_row.fidelity is None  # the zoo model has no parent
        assert onnx_row.fidelity >= 0.99 and onnx_row.fidelity_reference == cnn_artifact.sha256
        assert onnx_row.macs == torch_row.macs  # inherited from the torch parent
        assert onnx_row.peak_rss_mb < torch_row.peak_rss_mb  # the ORT worker never imports torch
        assert len(store) == 4
        assert bench([cnn_onnx], devices=["cpu-1t"], config=config, store=store) == []  # resumed: nothing to do
        assert len(store) == 4


def test_fidelity_reference_found_and_measured_on_its_own(cnn_onnx, tmp_path):
    rows = bench([cnn_onnx], devices=["cpu"], config=BenchConfig(latency=QUICK, accuracy_samples=200))
    assert rows[0].status == "ok" and rows[0].fidelity >= 0.99


def test_failures_are_recorded_and_the_sweep_goes_on(cnn_artifact, cnn_onnx, tmp_path):
    tiny = DeviceProfile(name="tiny", threads=1, cores=1, memory_mb=64, emulated=True)
    config = BenchConfig(latency=QUICK, accuracy_samples=100)
    rows = bench([cnn_artifact, cnn_onnx], devices=[tiny], config=config)
    assert [m.status for m in rows] == ["failed", "failed"]
    assert all("out of memory" in m.error and "64 MB" in m.error for m in rows)
    assert all(m.emulated and m.latency is None for m in rows)

    hung = bench([cnn_artifact], devices=["cpu-1t"], config=config.model_copy(update={"timeout_s": 0.5}))
    assert hung[0].status == "failed" and "timed out" in hung[0].error


def test_broken_artifact_is_a_recorded_failure(cnn_artifact, tmp_path):
    import shutil

    from edgeopt.core.artifacts import Artifact

    broken = Artifact.load(shutil.copytree(cnn_artifact.path, tmp_path / "cnn"))
    (broken.path / broken.model_file).write_bytes(b"not a model")
    rows = bench([broken], devices=["cpu-1t"], config=BenchConfig(latency=QUICK, accuracy_samples=50))
    assert rows[0].status == "failed" and "sha256" in rows[0].error


# ---------------------------------------------------------------- CLI and scripts


def test_cli_bench_and_devices(tmp_path):
    from edgeopt.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    assert {"cpu", "cpu-1t", "edge-1c-512m"} <= {p["name"] for p in json.loads(result.stdout)}

    db = tmp_path / "r.db"
    args = ["bench", "cnn", "--device", "cpu-2t", "--batch", "1,2", "--db", str(db), "--samples", "100",
            "--min-runs", "5", "--min-time", "0.05", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["summary"]["batch"] for r in rows] == [1, 2] and rows[0]["summary"]["status"] == "ok"
    assert rows[0]["measurement"]["provenance"]["threads"] == 2
    assert len(ResultStore(db).measurements(device="cpu-2t")) == 2

    result = runner.invoke(app, ["bench", "cnn", "--batch", "one", "--db", str(db)])
    assert result.exit_code != 0 and "--batch" in str(result.exception)


def test_gpu_sweep_without_a_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the sweep itself is run by hand")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_sweep.py"), "--dry-run"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr
