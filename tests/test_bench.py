"""Benchmark sweeps on real artifacts and runtimes: profiles, isolation, failures, fidelity, store, CLI.

Timings here are noisy (shared cores), so nothing asserts a speed; the measurements' content is asserted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

import pytest
from typer.testing import CliRunner

from edgeopt.benchmarks import BenchConfig, DeviceProfile, LatencyConfig, bench, get_profile, list_profiles
from edgeopt.core.errors import InvalidInput
from edgeopt.store import ResultStore

QUICK = LatencyConfig(warmup_runs=2, warmup_seconds=0, min_runs=5, min_seconds=0.05, rounds=1)
WORKER = "edgeopt.benchmarks.worker"
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


def test_a_hung_worker_is_killed_at_the_timeout(cnn_onnx, tmp_path):
    """The worker really hangs: its inputs file is a FIFO nobody writes, so it blocks opening it forever."""
    from edgeopt.benchmarks.isolation import run_isolated
    from edgeopt.benchmarks.worker import WorkerRequest

    os.mkfifo(tmp_path / "inputs.npz")
    request = WorkerRequest(artifact=str(cnn_onnx.path), runtime="onnxruntime", inputs=str(tmp_path / "inputs.npz"),
                            batch_sizes=[1], result="")
    started = time.perf_counter()
    outcome = run_isolated(request, timeout_s=3, workdir=tmp_path)
    assert outcome.error == "timed out after 3 s (killed)" and outcome.result is None
    assert 3 <= time.perf_counter() - started < 10
    assert not _workers(str(tmp_path)), "the hung worker survived its timeout"


def test_broken_artifact_is_a_recorded_failure(cnn_artifact, tmp_path):
    import shutil

    from edgeopt.core.artifacts import Artifact

    broken = Artifact.load(shutil.copytree(cnn_artifact.path, tmp_path / "cnn"))
    (broken.path / broken.model_file).write_bytes(b"not a model")
    rows = bench([broken], devices=["cpu-1t"], config=BenchConfig(latency=QUICK, accuracy_samples=50))
    assert rows[0].status == "failed" and "sha256" in rows[0].error


def test_peak_memory_per_batch_size_and_no_false_out_of_memory_at_512_mb(cnn_onnx):
    """Each batch size has its own peak (the accuracy pass apart), and a model that fits passes the 512 MB
    edge profile on both runtimes, each timed in two fresh processes."""
    config = BenchConfig(batch_sizes=[1, 256], latency=QUICK.model_copy(update={"rounds": 2}), accuracy_samples=128)
    rows = bench([cnn_onnx], runtimes=["onnxruntime", "openvino"], devices=["edge-1c-512m"], config=config)
    assert [(m.runtime, m.batch_size, m.status) for m in rows] == [
        ("onnxruntime", 1, "ok"), ("onnxruntime", 256, "ok"), ("openvino", 1, "ok"), ("openvino", 256, "ok")]
    for small, large in (rows[:2], rows[2:]):
        assert small.peak_rss_mb + 5 < large.peak_rss_mb < 512  # 256 images of activations: tens of MB more
        assert small.provenance["accuracy_peak_rss_mb"] > 20 and small.gpu_peak_mb is None
        assert small.latency.rounds == 2 and len(small.latency.round_medians) == 2
        assert small.latency.median_ci_low <= min(small.latency.round_medians)
        assert small.executed_precision == "fp32" and not any("computed in" in w for w in small.warnings)


def _workers(mark: str = "") -> list[psutil.Process]:
    """Measurement workers on this machine whose command line also holds `mark` (others may be measuring)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if WORKER in command and mark in command:
            found.append(process)
    return found


KILLABLE_BENCH = textwrap.dedent("""
    import signal
    import sys
    from edgeopt.benchmarks import BenchConfig, LatencyConfig, bench

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C's, even where the test runs in the background
    from edgeopt.store import ResultStore

    latency = LatencyConfig(warmup_runs=1, warmup_seconds=0, min_runs=5, min_seconds=float(sys.argv[3]),
                            max_seconds=120, max_runs=10**9, rounds=1)  # a fast model must not finish early
    with ResultStore(sys.argv[2]) as store:
        bench([sys.argv[1]], devices=["cpu-1t"], config=BenchConfig(latency=latency, accuracy_samples=64), store=store)
""")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_bench_leaves_no_worker_and_resumes_alone(how, cnn_onnx, tmp_path):
    db = tmp_path / "r.db"
    bench_process = subprocess.Popen([sys.executable, "-c", KILLABLE_BENCH, str(cnn_onnx.path), str(db), "120"])
    deadline, workers = time.time() + 60, []
    while time.time() < deadline and not workers:
        workers = [p for p in _workers() if p.ppid() == bench_process.pid]
        time.sleep(0.2)
    assert workers, "the bench never started its measurement worker"
    time.sleep(2)  # loading done, timing under way
    assert workers[0].is_running()
    os.kill(bench_process.pid, how)
    bench_process.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"worker {alive} outlived its parent ({signal.Signals(how).name})"
    with ResultStore(db) as store:
        assert len(store) == 0  # nothing half-measured was stored
    resumed = subprocess.run([sys.executable, "-c", KILLABLE_BENCH, str(cnn_onnx.path), str(db), "0.05"],
                             timeout=300, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with ResultStore(db) as store:
        (row,) = store.measurements()
        assert row.status == "ok" and row.latency.count >= 5


# ---------------------------------------------------------------- CLI and scripts


def test_cli_bench_and_devices(tmp_path):
    from edgeopt.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    assert {"cpu", "cpu-1t", "edge-1c-512m"} <= {p["name"] for p in json.loads(result.stdout)}

    db = tmp_path / "results.db"  # -o DIR: its results.db, where recommend, report and gate look
    args = ["bench", "cnn", "--device", "cpu-2t", "--batch", "1,2", "-o", str(tmp_path), "--samples", "100",
            "--min-runs", "5", "--min-time", "0.05", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["summary"]["batch"] for r in rows] == [1, 2] and rows[0]["summary"]["status"] == "ok"
    assert rows[0]["measurement"]["provenance"]["threads"] == 2
    assert len(ResultStore(db).measurements(device="cpu-2t")) == 2

    result = runner.invoke(app, ["bench", "cnn", "--batch", "one", "-o", str(tmp_path)])
    assert result.exit_code != 0 and "--batch" in str(result.exception)


def test_gpu_sweep_without_a_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the sweep itself is run by hand")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_sweep.py"), "--dry-run"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr
