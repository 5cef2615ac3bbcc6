"""GPU honesty: TensorRT never runs a CPU profile on a GPU, is planned on cuda:N profiles only, and builds FP32
engines without TF32; the GPU sweep measures ONNX Runtime where its CUDA provider exists. Tests that need
TensorRT, a CUDA GPU or onnxruntime-gpu skip with the reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.config import load_config
from edgeopt.core.artifacts import Format
from edgeopt.core.errors import InvalidInput
from edgeopt.pipeline import make_plan
from edgeopt.runtimes import RUNTIMES, RuntimeConfig

TENSORRT = RUNTIMES["tensorrt"].availability()
ROOT = Path(__file__).resolve().parents[1]


def test_tensorrt_runtime_refuses_a_cpu_device_before_touching_tensorrt(cnn_artifact, tmp_path):
    engine = cnn_artifact.derive(tmp_path / "engine", format=Format.TENSORRT, model_file="model.engine")
    (tmp_path / "engine" / "model.engine").write_bytes(b"")  # never read: the device is refused first
    for device in ("cpu", "CPU", "gpu", "cuda:x"):
        with pytest.raises(InvalidInput, match=f"TensorRT runs on CUDA GPUs .*not '{device}'; measure this engine "
                                               "on a cuda:N device profile"):
            RUNTIMES["tensorrt"](engine, RuntimeConfig(device=device))


def test_tensorrt_is_planned_on_cuda_profiles_only(tmp_path):
    config = load_config({"output": str(tmp_path), "devices": ["cpu-1t", "cpu-2t"], "batch_sizes": [1],
                          "models": {"cnn": {"zoo": "cnn", "recipes": [
                              {"name": "fp32", "runtimes": ["onnxruntime", "tensorrt"]}]}}})
    plan = make_plan(config)
    assert {(c.runtime, c.device) for c in plan.candidates} == {("onnxruntime", "cpu-1t"), ("onnxruntime", "cpu-2t")}
    assert [n for n in plan.notes if "tensorrt" in n] == [
        f"skipped runtime tensorrt on {d}: TensorRT runs on CUDA GPUs only; it is planned on cuda:N device profiles"
        for d in ("cpu-1t", "cpu-2t")]


@pytest.mark.tensorrt
@pytest.mark.skipif(not TENSORRT.ok, reason=f"TensorRT unavailable: {TENSORRT.reason}")
def test_fp32_engine_is_built_without_tf32_and_meets_the_fp32_tolerance(cnn_artifact, tmp_path):
    from edgeopt.export import export_artifact

    engine = export_artifact(cnn_artifact, "tensorrt", tmp_path / "engine", "fp32")
    assert engine.recipe[-1]["tf32"] is False and engine.recipe[-1]["fp16"] is False
    report = engine.metrics["parity"]
    assert report["ok"] and report["thresholds"]["atol"] == 1e-4 and report["clear_disagreements"] == 0
    with pytest.raises(InvalidInput, match="not 'cpu'"):
        RUNTIMES["tensorrt"](engine, RuntimeConfig(device="cpu"))


def no_cuda_onnxruntime() -> str | None:
    """Why the GPU sweep cannot measure ONNX Runtime on CUDA here (its own probes), or None."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_sweep import no_gpu_reason, ort_cuda_reason as reason
    finally:
        sys.path.pop(0)
    return no_gpu_reason() or reason()


@pytest.mark.skipif(no_cuda_onnxruntime() is not None, reason=f"no CUDA ONNX Runtime: {no_cuda_onnxruntime()}")
def test_gpu_sweep_measures_onnxruntime_on_cuda(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_sweep.py"), "--models", "cnn",
                           "--precisions", "fp32", "--batch", "1", "--samples", "256", "--db",
                           str(tmp_path / "gpu.db")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("cnn")]
    assert {(r[1], r[3]) for r in rows} >= {("torch", "cuda:0"), ("onnxruntime", "cuda:0")}, done.stdout
    assert all(r[-1] == "ok" for r in rows), done.stdout
