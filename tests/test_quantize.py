"""Quantization of exported artifacts through ONNX Runtime and NNCF, with the float/QDQ report and accuracy."""
from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.artifacts import Precision
from edgeopt.core.errors import BackendUnavailable, InvalidInput
from edgeopt.optimize import QuantizeConfig, quantize


@pytest.fixture(scope="module")
def cnn_onnx(cnn_artifact, tmp_path_factory):
    from edgeopt.export import export_artifact

    return export_artifact(cnn_artifact, "onnx", tmp_path_factory.mktemp("q") / "cnn-onnx")


@pytest.fixture(scope="module")
def cnn_ir(cnn_artifact, tmp_path_factory):
    from edgeopt.export import export_artifact

    return export_artifact(cnn_artifact, "openvino", tmp_path_factory.mktemp("q") / "cnn-ir")


@pytest.fixture(scope="module")
def cnn_qdq(cnn_onnx, tmp_path_factory):
    return quantize(cnn_onnx, QuantizeConfig(mode="static", samples=128, eval_samples=500),
                    tmp_path_factory.mktemp("q") / "cnn-qdq")


def test_ort_static_qdq_quantizes_every_conv_and_gemm(cnn_qdq):
    report = cnn_qdq.metrics["quantization"]
    assert cnn_qdq.precision == Precision.INT8
    assert report["qdq_pairs"] > 0 and report["float_ops"] == {}
    assert report["quantized_ops"] == {"Conv": 2, "Gemm": 2}
    assert cnn_qdq.metrics["accuracy_drop"] <= 0.02
    parity = cnn_qdq.metrics["parity"]  # over 128 test samples; near-tie flips are not failures
    assert parity["ok"] and parity["samples"] == 128 and parity["thresholds"]["near_tie"] > 0
    assert parity["clear_disagreements"] <= parity["agreement"]["allowed_clear"] and parity["max_abs"] < 2
    assert cnn_qdq.size_bytes < 0.4 * cnn_qdq.metrics["parent_size_bytes"]  # int8 weights


@pytest.mark.parametrize("calibration", ["entropy", "percentile"])
def test_ort_static_calibrators(cnn_onnx, calibration, tmp_path):
    child = quantize(cnn_onnx, QuantizeConfig(mode="static", calibration=calibration, samples=32,
                                              eval_samples=200), tmp_path / calibration)
    assert child.metrics["quantization"]["calibration"] == calibration
    assert child.metrics["accuracy_drop"] <= 0.03


def test_ort_fp16_keeps_float_io(cnn_onnx, tmp_path):
    import onnx

    child = quantize(cnn_onnx, QuantizeConfig(mode="fp16", eval_samples=200), tmp_path / "fp16")
    graph = onnx.load(str(child.model_path)).graph
    assert child.precision == Precision.FP16 and graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)
    assert abs(child.metrics["accuracy_drop"]) <= 0.01


def test_ort_dynamic_lstm_becomes_dynamic_quantize_lstm(lstm_artifact, tmp_path):
    from edgeopt.export import export_artifact

    onnx_artifact = export_artifact(lstm_artifact, "onnx", tmp_path / "onnx")
    child = quantize(onnx_artifact, QuantizeConfig(mode="dynamic", eval_samples=300), tmp_path / "int8")
    report = child.metrics["quantization"]
    assert report["quantized_ops"].get("DynamicQuantizeLSTM") == 1 and "LSTM" not in report["float_ops"]
    assert child.metrics["accuracy_drop"] <= 0.02


def test_ort_histogram_calibrators_take_text_batches_of_any_length(lstm_artifact, tmp_path):
    """Entropy and percentile calibration stack every batch's activations: text batches are padded to one length."""
    from edgeopt.export import export_artifact

    onnx_artifact = export_artifact(lstm_artifact, "onnx", tmp_path / "onnx")
    for calibration in ("entropy", "percentile"):
        child = quantize(onnx_artifact, QuantizeConfig(mode="static", calibration=calibration, samples=40,
                                                       batch_size=16, eval_samples=64, verify=False),
                         tmp_path / calibration)
        assert child.precision == "int8" and child.metrics["quantization"]["calibration"] == calibration


@pytest.mark.slow
def test_ort_dynamic_bert_reports_attention_matmuls_left_in_float(bert_artifact, tmp_path):
    from edgeopt.export import export_artifact

    onnx_artifact = export_artifact(bert_artifact, "onnx", tmp_path / "onnx")
    # the fixture's fresh head gives logits within ~0.02 of each other (no decision to keep), so INT8 noise flips
    # clear calls relative to that scale and parity rightly fails: this test is about the op report
    child = quantize(onnx_artifact, QuantizeConfig(mode="dynamic", eval_samples=64, verify=False), tmp_path / "int8")
    report = child.metrics["quantization"]
    assert report["quantized_ops"]["MatMulInteger"] >= 36  # q, k, v, out, ffn x2 in 6 layers
    assert report["float_ops"].get("MatMul", 0) == 12  # activation x activation: QK^T and AV per layer


def test_nncf_int8_and_fp16_on_openvino(cnn_ir, tmp_path):
    child = quantize(cnn_ir, QuantizeConfig(mode="static", samples=64, eval_samples=300), tmp_path / "int8")
    report = child.metrics["quantization"]
    assert report["backend"] == "nncf" and report["fake_quantize"] > 0 and report["float_ops"] == {}
    assert child.metrics["accuracy_drop"] <= 0.02
    fp16 = quantize(cnn_ir, QuantizeConfig(mode="fp16", eval_samples=100), tmp_path / "fp16")
    assert fp16.precision == Precision.FP16 and fp16.size_bytes < 0.6 * cnn_ir.size_bytes


def test_nncf_accuracy_control_respects_max_drop(cnn_ir, tmp_path):
    config = QuantizeConfig(mode="accuracy_control", samples=64, max_drop=0.01, eval_samples=200)
    child = quantize(cnn_ir, config, tmp_path / "ac")
    assert child.metrics["quantization"]["max_drop"] == 0.01
    assert child.metrics["accuracy_drop"] <= 0.03  # budget is on the val subset; test subset is close


def test_tensorrt_int8_engine_from_qdq(cnn_qdq, tmp_path):
    from edgeopt.export import export_artifact

    try:
        engine = export_artifact(cnn_qdq, "tensorrt", tmp_path / "trt", precision="int8")
    except BackendUnavailable as reason:
        pytest.skip(f"TensorRT unavailable: {reason}")
    assert engine.precision == Precision.INT8


def test_calibration_data_of_the_wrong_shape_is_rejected(cnn_onnx, tmp_path):
    bad = tmp_path / "calib.npz"
    np.savez(bad, pixel_values=np.zeros((4, 3, 32, 32), dtype=np.float32))
    with pytest.raises(InvalidInput, match="pixel_values.*shape"):
        quantize(cnn_onnx, QuantizeConfig(mode="static", calibration_data=bad), tmp_path / "x")
    wrong_name = tmp_path / "names.npz"
    np.savez(wrong_name, images=np.zeros((4, 1, 28, 28), dtype=np.float32))
    with pytest.raises(InvalidInput, match="do not match"):
        quantize(cnn_onnx, QuantizeConfig(mode="static", calibration_data=wrong_name), tmp_path / "y")


def test_user_calibration_data_is_used(cnn_onnx, fashion, tmp_path):
    from edgeopt.core.models.zoo import preprocessor_of

    path = tmp_path / "calib.npz"
    np.savez(path, **preprocessor_of(cnn_onnx)(fashion.val.inputs[:40]))
    child = quantize(cnn_onnx, QuantizeConfig(mode="static", calibration_data=path, eval_samples=100,
                                              verify=False), tmp_path / "q")
    assert child.metrics["quantization"]["calibration_samples"] == 40


def test_modes_that_do_not_fit_the_format_are_rejected(cnn_artifact, cnn_ir, tmp_path):
    with pytest.raises(InvalidInput, match="does not apply"):
        quantize(cnn_ir, QuantizeConfig(mode="dynamic"), tmp_path / "a")
    with pytest.raises(InvalidInput, match="export first"):
        quantize(cnn_artifact, QuantizeConfig(), tmp_path / "b")
