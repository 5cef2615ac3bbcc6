"""Post-training quantization of exported artifacts: ONNX Runtime, OpenVINO (NNCF) and TensorRT.

The backend follows the artifact's format: ONNX artifacts are quantized with onnxruntime.quantization
(dynamic INT8, static INT8 QDQ with per-channel weights, FP16), OpenVINO IR with NNCF (INT8, INT8 with an
accuracy budget, FP16 weights); TensorRT engines are built from a QDQ ONNX artifact by the TensorRT exporter.
Calibration uses real samples from the model's own train (or val) split. Every result records which operators
stayed in float and how many Q/DQ pairs remain (`metrics["quantization"]`), and its test accuracy through its
own runtime next to the parent's, so a slow or inaccurate INT8 model can be explained.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeopt.core.artifacts import Artifact, Family, Format, Precision, output_directory
from edgeopt.core.errors import InvalidInput
from edgeopt.core.step_configs import MODES, QuantizeConfig

def quantize(artifact: Artifact, config: QuantizeConfig, out_dir: Path, progress=None, force: bool = False
             ) -> Artifact:
    """Quantize an ONNX or OpenVINO artifact into `out_dir`; returns the child artifact with its report.

    An existing artifact in `out_dir` is replaced only with `force`; a failed step leaves `out_dir` as it was.
    """
    if artifact.format not in (Format.ONNX, Format.OPENVINO):
        raise InvalidInput(f"{artifact.path}: quantization starts from an ONNX or OpenVINO artifact, not "
                           f"{artifact.format}; export first (`edgeopt export`), or build TensorRT INT8 engines "
                           "from a static-quantized ONNX artifact with `edgeopt export --format tensorrt`")
    if artifact.precision != Precision.FP32:
        raise InvalidInput(f"{artifact.path}: quantize an fp32 artifact; this one is already {artifact.precision}")
    if config.mode not in MODES[artifact.format]:
        raise InvalidInput(f"mode {config.mode!r} does not apply to {artifact.format} artifacts; choose one of "
                           f"{', '.join(MODES[artifact.format])}")
    with output_directory(out_dir, artifact, force) as staging:
        child = _quantize_into(artifact, config, staging)
    child.path = Path(out_dir)
    return child


def _quantize_into(artifact: Artifact, config: QuantizeConfig, out_dir: Path) -> Artifact:
    from edgeopt.core.data import dataset_of

    out_dir = Path(out_dir)
    data = dataset_of(artifact)
    precision = Precision.FP16 if config.mode == "fp16" else Precision.INT8
    child = artifact.derive(out_dir, precision=precision, name=f"{artifact.name}-{precision}-{config.mode}",
                            step={"step": "quantize", **config.model_dump(mode="json")})
    calibration = None if config.mode in ("dynamic", "fp16") else calibration_batches(artifact, data, config)
    with contextlib.redirect_stdout(sys.stderr):  # the calibrators print; stdout stays clean for --json
        if artifact.format == Format.ONNX:
            report = _quantize_onnx(artifact, child, config, calibration)
        else:
            report = _quantize_openvino(artifact, child, config, calibration, data)
    child.save()

    test = data.test.subset(config.eval_samples)
    child.metrics["quantization"] = report
    child.metrics["test_accuracy"] = accuracy_through_runtime(child, test)
    child.metrics["parent_test_accuracy"] = accuracy_through_runtime(artifact, test)
    child.metrics["accuracy_drop"] = child.metrics["parent_test_accuracy"] - child.metrics["test_accuracy"]
    child.metrics["eval_samples"] = len(test)
    child.metrics["parent_size_bytes"] = artifact.size_bytes
    if config.verify:
        from edgeopt.export import verify_parity

        child.metrics["parity"] = verify_parity(child, artifact, raise_on_failure=False)
        child.save()
        if not child.metrics["parity"]["ok"]:
            from edgeopt.core.errors import ParityError
            from edgeopt.export.verify import failure_message

            raise ParityError(failure_message(child, child.metrics["parity"]))
    return child.save()


# --- calibration data -------------------------------------------------------------------------------------

def calibration_batches(artifact: Artifact, data, config: QuantizeConfig) -> list[dict[str, np.ndarray]]:
    """Batches of real preprocessed samples (or the user's .npz), checked against the artifact's inputs."""
    if config.calibration_data is not None:
        try:
            with np.load(config.calibration_data) as arrays:
                loaded = {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError) as error:
            raise InvalidInput(f"{config.calibration_data}: not a readable .npz of input arrays: {error}") from None
        check_calibration(artifact, loaded, str(config.calibration_data))
        count = len(next(iter(loaded.values())))
        return [{k: v[i:i + config.batch_size] for k, v in loaded.items()}
                for i in range(0, count, config.batch_size)]
    from edgeopt.core.models.zoo import preprocessor_of

    split = data.split(config.split).subset(config.samples, config.seed)
    preprocessor = preprocessor_of(artifact)
    return [preprocessor(split.inputs[i:i + config.batch_size]) for i in range(0, len(split), config.batch_size)]


def check_calibration(artifact: Artifact, arrays: dict[str, np.ndarray], source: str) -> None:
    """Names, dtypes, ranks and fixed dimensions must match the artifact's input spec."""
    expected = {spec.name: spec for spec in artifact.inputs}
    if set(arrays) != set(expected):
        raise InvalidInput(f"{source}: calibration inputs {sorted(arrays)} do not match the model's "
                           f"{sorted(expected)}")
    for name, spec in expected.items():
        value = arrays[name]
        fixed_ok = all(isinstance(d, str) or d == value.shape[i] for i, d in enumerate(spec.shape)
                       ) if value.ndim == len(spec.shape) else False
        if not fixed_ok or str(value.dtype) != spec.dtype:
            raise InvalidInput(f"{source}: calibration input {name!r} has shape {list(value.shape)} and dtype "
                               f"{value.dtype}; the model expects shape {spec.shape} and dtype {spec.dtype}")
    if len({len(v) for v in arrays.values()}) != 1 or not len(next(iter(arrays.values()))):
        raise InvalidInput(f"{source}: calibration inputs must have the same, non-zero number of samples")


def accuracy_through_runtime(artifact: Artifact, split) -> float:
    """Top-1 accuracy of the deployed artifact through its own runtime (never the torch model)."""
    predictions = predictions_through_runtime(artifact, split)
    return float((predictions == np.asarray(split.labels)).sum()) / max(1, len(split))


def predictions_through_runtime(artifact: Artifact, split) -> np.ndarray:
    """The artifact's top-1 output for every input of a split, through its own runtime."""
    from edgeopt.core.models.zoo import preprocessor_of
    from edgeopt.runtimes import load_runtime

    preprocessor = preprocessor_of(artifact)
    with load_runtime(artifact) as runtime:
        batches = [runtime.run(preprocessor(split.inputs[start:start + 64])).argmax(1)
                   for start in range(0, len(split), 64)]
    return np.concatenate(batches).astype(np.int64) if batches else np.zeros(0, np.int64)


# --- ONNX Runtime -----------------------------------------------------------------------------------------

def _one_shape(artifact: Artifact, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """ORT's histogram calibrators (entropy, percentile) stack every batch's activations into one array: text
    batches are padded to one length (pad ids, mask 0) and a smaller last batch is left out."""
    from edgeopt.export.specs import spec_for

    spec = spec_for(artifact)
    if not spec.is_text or not batches:
        return batches
    size = len(next(iter(batches[0].values())))
    kept = [b for b in batches if len(next(iter(b.values()))) == size]
    length = max(v.shape[1] for b in kept for v in b.values())
    return [{k: np.pad(v, ((0, 0), (0, length - v.shape[1])), constant_values=spec.pad_values.get(k, 0))
             for k, v in b.items()} for b in kept]


CALIBRATORS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _quantize_onnx(parent: Artifact, child: Artifact, config: QuantizeConfig,
                   calibration: list[dict[str, np.ndarray]] | None) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgeopt.export.onnx import scratch_directory, write_metadata

    # absolute before the scratch directory becomes the working directory: the artifacts' paths may be relative
    target, parent_model = child.model_path.resolve(), parent.model_path.resolve()
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))  # ORT logs every node at INFO
    with scratch_directory() as scratch:
        # quant_pre_process (shape inference + ORT optimiser) folds the LSTM weight transposes; without it
        # ORT leaves the LSTM in float instead of making a DynamicQuantizeLSTM.
        source = scratch / "pre.onnx"
        quant_pre_process(str(parent_model), str(source), skip_symbolic_shape=True)
        if config.mode == "dynamic":
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=config.per_channel)
        elif config.mode == "static":
            calibration = _one_shape(parent, calibration)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.batches: Iterator = iter(calibration)

                def get_next(self):
                    return next(self.batches, None)

                def rewind(self):
                    self.batches = iter(calibration)

            quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=config.per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, CALIBRATORS[config.calibration]),
                            extra_options={"CalibTensorRangeSymmetric": False, "CalibMovingAverage": False})
        else:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
            onnx.save(model, str(target))
    write_metadata(target, child, parent, None)
    return {"backend": "onnxruntime", "mode": config.mode,
            "calibration": config.calibration if config.mode == "static" else None,
            "calibration_samples": sum(len(next(iter(b.values()))) for b in calibration) if calibration else 0,
            **onnx_report(target)}


INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "QLinearConv", "QLinearMatMul",
               "QAttention", "DynamicQuantizeMatMul", "QGemm", "QLinearAdd", "QLinearMul"}
COMPUTE_OPS = {"Conv", "MatMul", "Gemm", "LSTM", "GRU", "ConvTranspose", "Attention"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}


def onnx_report(path: Path) -> dict[str, Any]:
    """Which compute ops run in integer (QDQ-wrapped or integer kernels) and which stayed in float."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    ops = Counter(node.op_type for node in graph.node)
    quantized, float_ops = Counter(), Counter()
    float_nodes = []
    for node in graph.node:
        if node.op_type in INTEGER_OPS:
            quantized[node.op_type] += 1
        elif node.op_type in COMPUTE_OPS:
            fed = [producers.get(name) for name in node.input[:2] if name]
            if fed and all(p is not None and p.op_type == "DequantizeLinear" for p in fed):
                quantized[node.op_type] += 1
            else:
                float_ops[node.op_type] += 1
                float_nodes.append(node.name or node.op_type)
    return {"quantize_linear": ops["QuantizeLinear"], "dequantize_linear": ops["DequantizeLinear"],
            "qdq_pairs": min(ops["QuantizeLinear"], ops["DequantizeLinear"]),
            "quantized_ops": dict(quantized), "float_ops": dict(float_ops), "float_nodes": float_nodes[:50],
            "op_types": dict(ops)}


# --- OpenVINO / NNCF --------------------------------------------------------------------------------------

def _quantize_openvino(parent: Artifact, child: Artifact, config: QuantizeConfig,
                       calibration: list[dict[str, np.ndarray]] | None, data) -> dict[str, Any]:
    import openvino as ov

    model = ov.Core().read_model(str(parent.model_path))
    target = child.model_path
    if config.mode == "fp16":
        ov.save_model(model, str(target), compress_to_fp16=True)
        return {"backend": "openvino", "mode": "fp16", **openvino_report(target)}
    import nncf

    model_type = nncf.ModelType.TRANSFORMER if parent.family == Family.BERT else None
    dataset = nncf.Dataset(calibration)
    subset = sum(len(next(iter(b.values()))) for b in calibration)
    subset_batches = len(calibration)
    report: dict[str, Any] = {"backend": "nncf", "mode": config.mode, "calibration_samples": subset,
                              "model_type": "transformer" if model_type else "default"}
    if config.mode == "static":
        quantized = nncf.quantize(model, dataset, model_type=model_type, subset_size=subset_batches,
                                  preset=nncf.QuantizationPreset.MIXED if model_type else None)
    else:
        from edgeopt.core.models.zoo import preprocessor_of

        preprocessor = preprocessor_of(parent)
        val = data.val.subset(config.eval_samples or 1000, config.seed)
        items = [(preprocessor(val.inputs[i:i + 64]), np.asarray(val.labels[i:i + 64]))
                 for i in range(0, len(val), 64)]

        def validate(compiled, batches) -> float:
            output = compiled.outputs[0]
            correct = total = 0
            for inputs, labels in batches:
                logits = compiled(inputs)[output]
                correct += int((logits.argmax(1) == labels).sum())
                total += len(labels)
            return correct / max(1, total)

        quantized = nncf.quantize_with_accuracy_control(
            model, dataset, nncf.Dataset(items), validate, max_drop=config.max_drop,
            drop_type=nncf.DropType.ABSOLUTE, model_type=model_type, subset_size=subset_batches)
        report.update(max_drop=config.max_drop, validation_samples=len(val))
    ov.save_model(quantized, str(target), compress_to_fp16=False)
    return {**report, **openvino_report(target)}


PASS_THROUGH = {"Convert", "Reshape", "Transpose", "Subtract", "Multiply", "Unsqueeze", "Squeeze", "MaxPool"}
OV_COMPUTE = {"Convolution", "GroupConvolution", "MatMul", "LSTMSequence", "GRUSequence", "LSTMCell"}


def openvino_report(path: Path) -> dict[str, Any]:
    """FakeQuantize/FakeConvert count and which compute ops are fed by quantized tensors or stayed in float."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    ops = Counter(op.get_type_name() for op in model.get_ordered_ops())
    quantized, float_ops = Counter(), Counter()
    float_nodes = []

    def quantized_input(port) -> bool:
        """Fed by a FakeQuantize, or by an int8 weight constant through its decompression ops."""
        node = port.get_source_output().get_node()
        for _ in range(8):
            kind = node.get_type_name()
            if kind in ("FakeQuantize", "FakeConvert"):
                return True
            if kind == "Constant":
                return node.get_element_type() in (ov.Type.i8, ov.Type.u8)
            if kind not in PASS_THROUGH:
                return False
            node = node.input(0).get_source_output().get_node()
        return False

    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in OV_COMPUTE:
            continue
        if all(quantized_input(port) for port in list(op.inputs())[:2]):
            quantized[kind] += 1
        else:
            float_ops[kind] += 1
            float_nodes.append(op.get_friendly_name())
    return {"fake_quantize": ops["FakeQuantize"] + ops["FakeConvert"], "quantized_ops": dict(quantized),
            "float_ops": dict(float_ops), "float_nodes": float_nodes[:50], "op_types": dict(ops)}

