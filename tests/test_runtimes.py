"""One contract suite over every registered runtime: load, describe inputs, run batch 1 and 7, no NaN, and
match the torch parent. Runtimes missing here (TensorRT without an NVIDIA GPU) skip with the reason."""
from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import BackendUnavailable, CheckpointError, InvalidInput
from edgeopt.runtimes import (RUNTIMES, RuntimeConfig, available_runtimes, load_runtime, runtime_report,
                              runtimes_for_format)

# the artifact format each runtime is tested on
RUNTIME_FORMAT = {"torch": Format.TORCH, "onnxruntime": Format.ONNX, "openvino": Format.OPENVINO,
                  "tensorrt": Format.TENSORRT, "executorch": Format.EXECUTORCH,
                  "litert": Format.LITERT}
# formats that unroll the LSTM over a static sequence: a short bound (above the 9 tokens run here) builds quickly
BOUNDED = {Format.EXECUTORCH: {"max_sequence": 12}, Format.LITERT: {"max_sequence": 12, "batch_sizes": [1, 7]}}
FAMILIES = ("cnn", "lstm")


def require(name: str) -> None:
    probe = RUNTIMES[name].availability()
    if not probe.ok:
        pytest.skip(f"runtime {name} unavailable: {probe.reason}")


@pytest.fixture(scope="module")
def parents(cnn_artifact, lstm_artifact):
    return {"cnn": cnn_artifact, "lstm": lstm_artifact}


@pytest.fixture(scope="module")
def exported(parents, tmp_path_factory):
    """(family, format) -> artifact; built on demand, without the parity check (that is what is tested here)."""
    from edgeopt.export import export_artifact

    cache = {}

    def get(family: str, fmt: Format):
        if fmt == Format.TORCH:
            return parents[family]
        if (family, fmt) not in cache:
            out = tmp_path_factory.mktemp(f"{family}-{fmt}")
            try:
                cache[family, fmt] = export_artifact(parents[family], str(fmt), out, options=BOUNDED.get(fmt),
                                                     verify=False)
            except BackendUnavailable as error:  # the LiteRT converter is an extra of its own
                pytest.skip(f"{fmt} export unavailable: {error}")
        return cache[family, fmt]

    return get


def real_inputs(artifact, batch: int, seq: int | None = None):
    from edgeopt.export.specs import dataset_of, spec_for

    return spec_for(artifact.family).sample_inputs(artifact, dataset_of(artifact).test, batch, seq)


def test_registry_lists_every_backend():
    assert set(RUNTIMES) == {"torch", "onnxruntime", "openvino", "tensorrt", "executorch", "litert"}
    assert {"torch", "onnxruntime", "openvino"} <= set(available_runtimes())
    assert runtimes_for_format("onnx") == ["onnxruntime", "openvino"]
    assert runtimes_for_format(Format.TORCH) == ["torch"]
    report = runtime_report()
    assert all(report[name]["ok"] or report[name]["reason"] for name in RUNTIMES)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_contract(name, family, parents, exported):
    require(name)
    artifact = exported(family, RUNTIME_FORMAT[name])
    parent = parents[family]
    config = RuntimeConfig(threads=1, precision_hint="f32" if name == "openvino" else None)
    with load_runtime(artifact, name, config) as runtime, load_runtime(parent) as reference:
        assert runtime.name == name and runtime.config.threads == 1
        assert [s.name for s in runtime.inputs] == [s.name for s in parent.inputs]
        for batch in (1, 7):
            inputs = real_inputs(artifact, batch, 9 if family != "cnn" else None)
            logits = runtime.run(inputs)
            assert logits.shape == (batch, len(parent.labels)) and logits.dtype == np.float32
            assert not np.isnan(logits).any()
            np.testing.assert_allclose(logits, reference.run(inputs), atol=1e-4, rtol=1e-4)


def test_openvino_runs_onnx_files_too(exported):
    artifact = exported("cnn", Format.ONNX)
    inputs = real_inputs(artifact, 7)
    with load_runtime(artifact, "openvino", RuntimeConfig(precision_hint="f32")) as ov, \
            load_runtime(artifact) as ort:
        assert ort.name == "onnxruntime"
        np.testing.assert_allclose(ov.run(inputs), ort.run(inputs), atol=1e-4)


@pytest.mark.parametrize("name", ["torch", "onnxruntime", "openvino"])
def test_wrong_inputs_name_expected_and_given(name, exported):
    artifact = exported("cnn", RUNTIME_FORMAT[name])
    good = real_inputs(artifact, 2)["pixel_values"]
    with load_runtime(artifact, name) as runtime:
        with pytest.raises(InvalidInput, match=r"\['image'\] given; expected \['pixel_values'\]"):
            runtime.run({"image": good})
        with pytest.raises(InvalidInput, match=r"dtype float64; expected float32"):
            runtime.run({"pixel_values": good.astype(np.float64)})
        with pytest.raises(InvalidInput, match=r"shape \[2, 28, 28\]; expected \['batch', 1, 28, 28\]"):
            runtime.run({"pixel_values": good[:, 0]})
        with pytest.raises(InvalidInput, match=r"shape \[2, 1, 14, 14\]"):
            runtime.run({"pixel_values": good[:, :, :14, :14]})


def test_load_runtime_rejects_wrong_runtime_and_unknown_names(cnn_artifact, exported):
    with pytest.raises(InvalidInput, match="cannot run onnx artifacts; use one of onnxruntime, openvino"):
        load_runtime(exported("cnn", Format.ONNX), "torch")
    with pytest.raises(InvalidInput, match="unknown runtime 'tflite'"):
        load_runtime(cnn_artifact, "tflite")
    with pytest.raises(InvalidInput):
        load_runtime(cnn_artifact, config={"threads": 0})
    with pytest.raises(BackendUnavailable, match="OpenVINO device 'NPU7' is not available"):
        load_runtime(exported("cnn", Format.OPENVINO), config=RuntimeConfig(device="NPU7"))
    with pytest.raises(BackendUnavailable, match="onnxruntime device 'tpu' unknown"):
        load_runtime(exported("cnn", Format.ONNX), config=RuntimeConfig(device="tpu"))


def test_onnxruntime_on_cuda_runs_there_or_says_what_to_install(exported):
    """Where ORT has its CUDA provider the session really uses it and matches the CPU; elsewhere a clear error."""
    artifact = exported("cnn", Format.ONNX)
    if "CUDAExecutionProvider" not in RUNTIMES["onnxruntime"].availability().extra["providers"]:
        with pytest.raises(BackendUnavailable, match="no CUDAExecutionProvider.*install onnxruntime-gpu"):
            load_runtime(artifact, config=RuntimeConfig(device="cuda"))
        return
    inputs = real_inputs(artifact, 7)
    with load_runtime(artifact, config=RuntimeConfig(device="cuda:0")) as gpu, load_runtime(artifact) as cpu:
        assert gpu.session.get_providers()[0] == "CUDAExecutionProvider"
        np.testing.assert_allclose(gpu.run(inputs), cpu.run(inputs), atol=1e-3)


def test_missing_tensorrt_is_a_clear_backend_error(cnn_artifact, tmp_path):
    if RUNTIMES["tensorrt"].availability().ok:
        pytest.skip("TensorRT is available here")
    engine = cnn_artifact.derive(tmp_path / "engine", format=Format.TENSORRT, model_file="model.engine")
    (tmp_path / "engine" / "model.engine").write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailable, match=r"pip install edgeopt\[tensorrt\]|NVIDIA GPU"):
        load_runtime(engine.save())


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_truncated_model_file_is_a_checkpoint_error(name, exported, tmp_path):
    from edgeopt.core.artifacts import Artifact

    source = exported("cnn", RUNTIME_FORMAT[name])
    broken = source.derive(tmp_path / "broken", model_file=source.model_file)
    data = source.model_path.read_bytes()
    (tmp_path / "broken" / source.model_file).write_bytes(data[: len(data) // 3])
    if name == "openvino":
        (tmp_path / "broken" / "model.bin").write_bytes(source.model_path.with_suffix(".bin").read_bytes()[:100])
    broken.save()
    with pytest.raises(CheckpointError, match="cannot (load|read) it"):
        load_runtime(Artifact.load(tmp_path / "broken"), name)


@pytest.mark.parametrize("name", ["torch", "onnxruntime", "openvino"])
def test_bound_call_runs_inference_only_on_the_bound_inputs(name, exported):
    """`bind` checks and prepares once: the bound call gives run()'s logits, reads the caller's buffer in place
    (no per-call copy), and wrong inputs fail at bind time, outside anything timed."""
    artifact = exported("cnn", RUNTIME_FORMAT[name])
    first, second = real_inputs(artifact, 3)["pixel_values"], real_inputs(artifact, 6)["pixel_values"][3:]
    with load_runtime(artifact, name, RuntimeConfig(threads=1)) as runtime:
        expected_first = runtime.run({"pixel_values": first.copy()})
        expected_second = runtime.run({"pixel_values": second.copy()})
        buffer = np.ascontiguousarray(first.copy())
        call = runtime.bind({"pixel_values": buffer})
        np.testing.assert_allclose(call(), expected_first, atol=1e-5)
        buffer[:] = second
        np.testing.assert_allclose(call(), expected_second, atol=1e-5)
        with pytest.raises(InvalidInput, match="dtype float64"):
            runtime.bind({"pixel_values": buffer.astype(np.float64)})


def _relabelled(source, precision, out):
    """A copy of an OpenVINO IR artifact whose manifest says `precision` (the weights are the same)."""
    import shutil

    from edgeopt.core.artifacts import Artifact

    for file in source.path.iterdir():
        if file.suffix in (".xml", ".bin"):
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, out / file.name)
    return Artifact.load(source.derive(out, model_file=source.model_file, precision=precision).save().path)


def test_openvino_computes_in_the_precision_its_label_says(exported, tmp_path):
    """fp32 runs in f32 even where the CPU defaults to bf16; bf16 runs in bf16 where the hardware has it; what
    ran is read back from the compiled model, and a hint the device lacks is recorded as what really ran."""
    import openvino as ov

    from edgeopt.core.artifacts import Precision

    require("openvino")
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    fp32 = exported("cnn", Format.OPENVINO)
    inputs = real_inputs(fp32, 4)
    with load_runtime(fp32, "openvino") as runtime, load_runtime(exported("cnn", Format.ONNX)) as ort:
        assert runtime.executed_precision == "fp32"
        assert runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        np.testing.assert_allclose(runtime.run(inputs), ort.run(inputs), atol=1e-4)
    with load_runtime(_relabelled(fp32, Precision.BF16, tmp_path / "bf16"), "openvino") as runtime:
        assert runtime.executed_precision == ("bf16" if "BF16" in capabilities else "fp32")
    with load_runtime(_relabelled(fp32, Precision.FP16, tmp_path / "fp16"), "openvino") as runtime:
        assert runtime.executed_precision == ("fp16" if "FP16" in capabilities else "fp32")  # never bf16
    with load_runtime(fp32, "openvino", RuntimeConfig(precision_hint="bf16")) as runtime:
        assert runtime.executed_precision == ("bf16" if "BF16" in capabilities else "fp32")
