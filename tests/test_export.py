"""Export every zoo family to ONNX and OpenVINO and check parity on real test inputs through ONNX Runtime and
OpenVINO (batch 1 and 7; text lengths 5 and 128). TensorRT tests skip without TensorRT + an NVIDIA GPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.errors import BackendUnavailable, CheckpointError, ExportError, InvalidInput, ParityError
from edgeopt.export import EXPORTERS, SPECS, export_artifact, spec_for, verify_parity
from edgeopt.export.onnx import read_metadata
from edgeopt.runtimes import RUNTIMES

FAMILIES = ("cnn", "resnet", "lstm", "bert")
TENSORRT = RUNTIMES["tensorrt"].availability()


@pytest.fixture(scope="module")
def parents(cnn_artifact, resnet_artifact, lstm_artifact, bert_artifact):
    return {"cnn": cnn_artifact, "resnet": resnet_artifact, "lstm": lstm_artifact, "bert": bert_artifact}


@pytest.fixture(scope="module")
def exports(parents, tmp_path_factory):
    """(model, format, precision) -> exported artifact, each built (and parity-checked) once."""
    cache = {}

    def get(model: str, fmt: str, precision: str = "fp32"):
        key = model, fmt, precision
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{model}-{fmt}-{precision}")
            cache[key] = export_artifact(parents[model], fmt, out, precision)
        return cache[key]

    return get


def test_registries_cover_formats_and_families():
    assert set(EXPORTERS) >= {"onnx", "openvino", "tensorrt"}
    assert set(SPECS) == {"cnn", "lstm", "bert"}
    assert spec_for("bert").input_names == ("input_ids", "attention_mask")
    assert spec_for("lstm").onnx_exporter == "torchscript" and spec_for("cnn").onnx_exporter == "dynamo"


@pytest.mark.parametrize("model", ["lstm", "bert"])
def test_text_samples_are_padded_or_truncated_to_exact_length(model, parents, sentiment):
    spec = spec_for(parents[model].family)
    for length in (5, 128):
        inputs = spec.sample_inputs(parents[model], sentiment.test, 7, length)
        assert set(inputs) == set(spec.input_names)
        assert all(v.shape == (7, length) and v.dtype == np.int64 for v in inputs.values())
    short = spec.sample_inputs(parents[model], sentiment.test, 7, 128)
    assert (short["input_ids"][:, -1] == 0).all()  # review snippets are shorter than 128 tokens: padded
    if model == "bert":
        assert ((short["input_ids"] != 0) == (short["attention_mask"] == 1)).all()


def check_report(report: dict, family: str) -> None:
    spec = SPECS[{"resnet": "cnn"}.get(family, family)]
    assert report["ok"], report
    expected = {(b, s) for b in (1, 7) for s in spec.parity_seq_lengths}
    assert {(c["batch"], c["sequence"]) for c in report["cases"]} == expected
    assert report["top1_agreement"] == 1.0 and report["clear_disagreements"] == 0
    assert report["samples"] == spec.parity_samples and report["agreement"]["sequence"] == spec.parity_seq_lengths[-1]
    assert report["max_abs"] < 1e-3  # fp32 exports: kernel reordering only


@pytest.mark.parametrize("model", FAMILIES)
def test_onnx_export_matches_torch_through_onnxruntime_and_openvino(model, parents, exports):
    onnx_artifact = exports(model, "onnx")
    assert onnx_artifact.format == Format.ONNX and onnx_artifact.parent == parents[model].sha256
    report = Artifact.load(onnx_artifact.path).metrics["parity"]  # stored in the manifest
    assert report["runtime"] == "onnxruntime" and report["reference_runtime"] == "torch"
    check_report(report, model)
    through_openvino = verify_parity(onnx_artifact, parents[model], runtime="openvino")
    assert through_openvino["runtime"] == "openvino"
    check_report(through_openvino, model)


@pytest.mark.parametrize("model", FAMILIES)
def test_openvino_export_matches_torch(model, parents, exports):
    ir = exports(model, "openvino")
    assert ir.model_path.name == "model.xml" and ir.model_path.with_suffix(".bin").exists()
    assert ir.recipe[-1]["source"] == "torch" and not ir.recipe[-1]["compress_to_fp16"]
    check_report(ir.metrics["parity"], model)


def test_onnx_metadata_makes_the_file_self_describing(parents, exports):
    onnx_artifact = exports("cnn", "onnx")
    meta = read_metadata(onnx_artifact.model_path)
    assert meta["family"] == "cnn" and meta["exporter"] == "dynamo" and meta["opset"] == "18"
    assert json.loads(meta["labels"]) == parents["cnn"].labels
    assert json.loads(meta["inputs"])[0] == {"name": "pixel_values", "dtype": "float32",
                                             "shape": ["batch", 1, 28, 28]}
    assert meta["source_sha256"] == parents["cnn"].sha256
    assert onnx_artifact.recipe[-1] == {"step": "export", "format": "onnx", "exporter": "dynamo", "opset": 18,
                                        "preprocessed": True}


def test_default_onnx_export_is_quantizable_by_onnxruntime(exports, tmp_path):
    """ORT dynamic quantization must reach the LSTM (it silently skips graphs it cannot read)."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(exports("lstm", "onnx").model_path), str(tmp_path / "q.onnx"))
    ops = {node.op_type for node in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops


def test_opset_and_exporter_are_configurable(parents, tmp_path):
    import onnx

    child = export_artifact(parents["lstm"], "onnx", tmp_path / "lstm17", options={"opset": 17}, verify=False)
    model = onnx.load(str(child.model_path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert read_metadata(child.model_path)["exporter"] == "torchscript"


def test_openvino_fp16_compresses_weights_within_tolerance(exports):
    fp32, fp16 = exports("cnn", "openvino"), exports("cnn", "openvino", "fp16")
    assert fp16.precision == Precision.FP16 and fp16.recipe[-1]["compress_to_fp16"]
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    report = fp16.metrics["parity"]
    assert report["ok"] and report["thresholds"] == spec_for("cnn").tolerance("fp16").as_dict()
    assert 0 < report["max_abs"] < 0.05


def test_openvino_from_onnx_source(parents, tmp_path):
    ir = export_artifact(parents["cnn"], "openvino", tmp_path / "ir", options={"source": "onnx"})
    assert ir.recipe[-1]["source"] == "onnx" and ir.recipe[-1]["exporter"] == "dynamo"
    assert ir.metrics["parity"]["ok"]


def test_a_model_that_cannot_export_names_the_op_and_exporter(parents, tmp_path, monkeypatch):
    import torch

    import edgeopt.core.models.zoo as zoo

    class Unexportable(torch.nn.Module):
        def forward(self, pixel_values):
            square = pixel_values[:, 0, :2, :2]
            return torch.linalg.eigvals(square).real.repeat(1, 5)

    monkeypatch.setattr(zoo, "load_module", lambda artifact: Unexportable())
    with pytest.raises(ExportError, match=r"torchscript exporter \(opset 18\) failed at op aten::linalg_eigvals"):
        export_artifact(parents["cnn"], "onnx", tmp_path / "x", options={"exporter": "torchscript"})
    with pytest.raises(ExportError, match=r"openvino.convert_model\) failed at op aten::linalg_eigvals"):
        export_artifact(parents["cnn"], "openvino", tmp_path / "y")


def test_parity_failure_names_the_artifact_output_and_cases(parents, exports):
    cnn_onnx = exports("cnn", "onnx")
    with pytest.raises(ParityError, match=r"^cnn \(onnx, fp32\): output 'logits' through onnxruntime differs "
                                          r".*batch 1: max abs err .*128 samples: .*top-1 differs clearly on"):
        verify_parity(cnn_onnx, parents["resnet"])  # a different model of the same family: must not pass
    report = verify_parity(cnn_onnx, parents["resnet"], raise_on_failure=False)
    assert not report["ok"] and report["max_abs"] > 0.1  # both classify Fashion-MNIST, so they mostly agree
    assert report["clear_disagreements"] > report["agreement"]["allowed_clear"] == 0


def test_bad_requests_are_clear_errors(parents, exports, tmp_path):
    with pytest.raises(InvalidInput, match="onnx export supports precision fp32, not fp16"):
        export_artifact(parents["cnn"], "onnx", tmp_path / "a", "fp16")
    with pytest.raises(InvalidInput, match="unknown export format 'tflite'"):
        export_artifact(parents["cnn"], "tflite", tmp_path / "b")
    with pytest.raises(InvalidInput, match="opset"):
        export_artifact(parents["cnn"], "onnx", tmp_path / "c", options={"opset": 3})
    with pytest.raises(InvalidInput, match="starts from torch artifacts, not onnx"):
        export_artifact(exports("cnn", "onnx"), "onnx", tmp_path / "d")


def test_truncated_onnx_source_is_a_checkpoint_error(exports, tmp_path):
    source = exports("cnn", "onnx")
    broken = source.derive(tmp_path / "broken", model_file="model.onnx")
    (tmp_path / "broken" / "model.onnx").write_bytes(source.model_path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable ONNX model|invalid ONNX model"):
        export_artifact(broken.save(), "openvino", tmp_path / "out")


def test_plain_onnx_file_is_wrapped_and_exported(exports, tmp_path, monkeypatch):
    from edgeopt.export.wrap import resolve_artifact

    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path / "cache"))
    user_file = tmp_path / "my_classifier.onnx"
    user_file.write_bytes(exports("cnn", "onnx").model_path.read_bytes())
    with pytest.raises(InvalidInput, match="needs --family"):
        resolve_artifact(str(user_file))
    wrapped = resolve_artifact(str(user_file), family="cnn")
    assert wrapped.format == Format.ONNX and wrapped.inputs[0].shape == ["batch", 1, 28, 28]
    assert len(wrapped.labels) == 10
    ir = export_artifact(wrapped, "openvino", tmp_path / "ir")
    assert ir.metrics["parity"]["reference_runtime"] == "onnxruntime" and ir.metrics["parity"]["ok"]


def test_tensorrt_profile_shapes_come_from_the_spec(parents):
    from edgeopt.export.tensorrt import TensorRTExportConfig, profile_shapes

    shapes = profile_shapes(parents["bert"], TensorRTExportConfig())
    assert shapes["input_ids"] == ([1, 1], [8, 64], [64, 256])
    custom = profile_shapes(parents["cnn"], TensorRTExportConfig(max_shapes={"pixel_values": [256, 1, 28, 28]}))
    assert custom["pixel_values"] == ([1, 1, 28, 28], [8, 1, 28, 28], [256, 1, 28, 28])


@pytest.mark.skipif(TENSORRT.ok, reason="TensorRT is available here")
def test_tensorrt_export_without_tensorrt_says_what_to_install(parents, tmp_path):
    with pytest.raises(BackendUnavailable, match=r"pip install edgeopt\[tensorrt\]|NVIDIA GPU"):
        export_artifact(parents["cnn"], "tensorrt", tmp_path / "engine")


@pytest.mark.tensorrt
@pytest.mark.skipif(not TENSORRT.ok, reason=f"TensorRT unavailable: {TENSORRT.reason}")
@pytest.mark.parametrize("model,precision", [("cnn", "fp32"), ("cnn", "fp16"), ("lstm", "fp32"), ("bert", "fp16")])
def test_tensorrt_engine_matches_torch(model, precision, parents, tmp_path):
    engine = export_artifact(parents[model], "tensorrt", tmp_path / "engine", precision,
                             options={"timing_cache": str(tmp_path / "timing.cache")})
    assert engine.format == Format.TENSORRT and (tmp_path / "timing.cache").exists()
    assert engine.metrics["parity"]["ok"] and engine.metrics["parity"]["runtime"] == "tensorrt"
