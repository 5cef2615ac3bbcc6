"""TensorRT engine from ONNX with the TensorRT 10 Python API: FP32, FP16, or INT8 from a QDQ ONNX model.

FP32 engines clear TensorRT's default TF32 flag, so they compute in fp32 and meet the fp32 parity tolerance.
INT8 is explicit quantization only: the Q/DQ nodes of a quantized ONNX artifact carry the scales, so no
calibrator runs here. Dynamic dimensions get one optimisation profile (min/opt/max per input); a timing
cache file makes rebuilds fast. Importable without tensorrt; building raises BackendUnavailable.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.errors import BackendUnavailable, ExportError, InvalidInput
from edgeopt.runtimes.tensorrt_runtime import TensorRTRuntime, require_tensorrt

from .base import Exporter
from .onnx import OnnxExportConfig, check_onnx_file, export_onnx_file, resolve
from .specs import spec_for

MODEL_FILE = "model.engine"


class TensorRTExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workspace_mb: int = Field(1024, ge=16, description="builder workspace memory pool limit")
    int8: bool = Field(False, description="allow INT8 kernels (needs a QDQ ONNX source; same as precision int8)")
    timing_cache: Path | None = Field(None, description="timing cache file, read if present and updated")
    min_shapes: dict[str, list[int]] | None = Field(None, description="per input; default from the family spec")
    opt_shapes: dict[str, list[int]] | None = None
    max_shapes: dict[str, list[int]] | None = None
    onnx: OnnxExportConfig = Field(default_factory=OnnxExportConfig, description="when starting from torch")


class TensorRTExporter(Exporter):
    format = Format.TENSORRT
    config_class = TensorRTExportConfig
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    sources = (Format.TORCH, Format.ONNX)

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision,
               config: TensorRTExportConfig) -> Artifact:
        probe = TensorRTRuntime.availability()
        if not probe.ok:
            raise BackendUnavailable(probe.reason)
        int8 = config.int8 or precision == Precision.INT8 or artifact.precision == Precision.INT8
        step = {"step": "export", "format": "tensorrt", "workspace_mb": config.workspace_mb,
                "fp16": precision == Precision.FP16, "int8": int8, "tf32": tf32_allowed(precision, int8),
                "tensorrt": probe.version}
        if artifact.format == Format.TORCH:
            onnx_config = resolve(config.onnx, artifact)
            step.update(exporter=onnx_config.exporter, opset=onnx_config.opset)
        child = artifact.derive(out_dir, format=Format.TENSORRT, precision=Precision.INT8 if int8 else precision,
                                model_file=MODEL_FILE, step=step)
        with tempfile.TemporaryDirectory() as scratch:
            if artifact.format == Format.ONNX:
                onnx_path = artifact.model_path
                check_onnx_file(onnx_path)
            else:
                onnx_path = Path(scratch) / "model.onnx"
                export_onnx_file(artifact, onnx_path, config.onnx)
            if int8 and not has_qdq(onnx_path):
                raise InvalidInput(f"{artifact.path}: INT8 engines are built from a QDQ-quantized ONNX model "
                                   "(explicit quantization); quantize the ONNX artifact to QDQ int8 first")
            engine = build_engine(onnx_path, artifact, precision, int8, config)
        (Path(out_dir) / MODEL_FILE).write_bytes(engine)
        return child.save()


def tf32_allowed(precision: Precision, int8: bool) -> bool:
    """TF32 only where reduced precision is asked for anyway: an FP32 engine computes in real fp32."""
    return precision != Precision.FP32 or int8


def has_qdq(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)


def profile_shapes(artifact: Artifact, config: TensorRTExportConfig) -> dict[str, tuple[list[int], ...]]:
    """(min, opt, max) shape per input: explicit config first, else the spec's ranges for named dimensions."""
    ranges = spec_for(artifact).shape_ranges
    shapes = {}
    for tensor in artifact.inputs:
        default = [[d if isinstance(d, int) else ranges[d][i] for d in tensor.shape] for i in range(3)]
        chosen = [(given or {}).get(tensor.name) or default[i]
                  for i, given in enumerate((config.min_shapes, config.opt_shapes, config.max_shapes))]
        shapes[tensor.name] = tuple(chosen)
    return shapes


def build_engine(onnx_path: Path, artifact: Artifact, precision: Precision, int8: bool,
                 config: TensorRTExportConfig) -> bytes:
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        where = "; ".join(describe_parser_error(e) for e in errors)
        raise ExportError(f"{artifact.name}: TensorRT {trt.__version__} ONNX parser failed at {where}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if precision == Precision.FP16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        builder_config.set_flag(trt.BuilderFlag.INT8)
    if not tf32_allowed(precision, int8):
        builder_config.clear_flag(trt.BuilderFlag.TF32)  # on by default; its 10-bit mantissa breaks fp32 parity
    profile = builder.create_optimization_profile()
    shapes = profile_shapes(artifact, config)
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in shapes:
            raise InvalidInput(f"{onnx_path}: engine input {tensor.name!r} not in the artifact's inputs "
                               f"{sorted(shapes)}")
        profile.set_shape(tensor.name, *shapes[tensor.name])
    builder_config.add_optimization_profile(profile)
    cache_path = config.timing_cache
    cache = builder_config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.exists() else b"")
    builder_config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise ExportError(f"{artifact.name}: TensorRT {trt.__version__} could not build an engine from "
                          f"{onnx_path.name} ({precision}); see the TensorRT log above")
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(memoryview(builder_config.get_timing_cache().serialize()))
    return bytes(memoryview(serialized))


def describe_parser_error(error) -> str:
    """'node NAME (OP): why' from an ONNX parser error (node_name/node_operator exist since TensorRT 8.6)."""
    name = error.node_name() if hasattr(error, "node_name") else error.node()
    operator = error.node_operator() if hasattr(error, "node_operator") else "?"
    return f"node {name} ({operator}): {error.desc()}"
