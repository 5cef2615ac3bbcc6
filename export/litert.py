"""torch -> LiteRT flatbuffer (.tflite): litert-torch converts, ai-edge-quantizer makes INT8.

litert-torch cannot lower a symbolic batch through the reshape every CNN has (aten.view on [batch, features]),
so a LiteRT artifact holds one signature per static batch size (`batch_sizes`, weights shared) and text at its
fixed sequence bound; the runtime runs a batch in the next size up (see `edgeopt.runtimes.bounded`). INT8 is
ai-edge-quantizer on the fp32 flatbuffer: `activations: dynamic` is dynamic-range INT8 (int8 weights,
activations quantized at run time), `activations: static` is full INT8 (int8 weights, activations and
inputs/outputs; scales calibrated on real training samples, the representative data set, in every signature).
(PT2E through litert-torch fails here: its quantizer's annotations break torchao's prepare_pt2e, and its
dynamic path gives wrong logits.) The converter (`edgeopt[litert-convert]`) is needed only to export; the
interpreter alone (`edgeopt[litert]`) runs the artifacts.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

from pydantic import Field

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import BackendUnavailable, ExportError

from .base import Exporter, first_line
from .onnx import failing_op, quiet_exporter
from .pt2e import BoundedExportConfig, Traced, generic_convolutions

MODEL_FILE = "model.tflite"


class LiteRTExportConfig(BoundedExportConfig):
    """Bounds and INT8 options (see BoundedExportConfig); activations static = full INT8, dynamic = dynamic-range."""

    batch_sizes: list[int] = Field([1, 8, 64], min_length=1, description="one signature per static batch size; "
                                                                          "a batch runs in the next size up")


class LiteRTExporter(Exporter):
    format = Format.LITERT
    config_class = LiteRTExportConfig
    precisions = (Precision.FP32, Precision.INT8)
    sources = (Format.TORCH,)

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("litert_torch") is None:
            return "the LiteRT converter is not installed: pip install 'edgeopt[litert-convert]'"
        return None

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision, config: LiteRTExportConfig) -> Artifact:
        if self.unavailable():
            raise BackendUnavailable(f"{self.unavailable()} (running .tflite files needs only edgeopt[litert])")
        import litert_torch

        sizes = sorted(set(config.batch_sizes))
        traced = Traced(artifact, config.model_copy(update={"max_batch": max(max(sizes), 2)}),
                        {"format": "litert", "converter": f"litert-torch {litert_torch.__version__}"})
        traced.step.update(max_batch=sizes[-1], batch_sizes=sizes)
        sequence = traced.config.max_sequence if traced.spec.is_text else None
        if sequence:
            traced.step["static_sequence"] = True
        with quiet_exporter(), generic_convolutions():
            converter = litert_torch.Converter()
            for size in sizes:
                converter.signature(f"batch_{size}", traced.module, sample_kwargs=traced.inputs_at(size, sequence))
            try:
                flatbuffer = converter.convert().model_content()
            except Exception as error:
                raise ExportError(f"{artifact.name}: LiteRT conversion (litert-torch) failed at "
                                  f"{failing_op(error, traced.module)}: {first_line(error)}") from error
        if precision == Precision.INT8:
            flatbuffer = _quantize(flatbuffer, traced, sizes, sequence)
        out_dir = Path(out_dir)
        child = artifact.derive(out_dir, format=Format.LITERT, precision=precision, model_file=MODEL_FILE,
                                step=traced.step)
        (out_dir / MODEL_FILE).write_bytes(flatbuffer)
        return child.save()


def _signature_dtypes(flatbuffer: bytes) -> dict[str, dict[str, object]]:
    """Each signature's input dtypes, as the converted model takes them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return {name: {key: detail["dtype"] for key, detail in interpreter.get_signature_runner(name)
                   .get_input_details().items()} for name in interpreter.get_signature_list()}


def _quantize(flatbuffer: bytes, traced: Traced, sizes: list[int], sequence: int | None) -> bytes:
    """ai-edge-quantizer: dynamic-range, or full INT8 calibrated on real training samples in every signature."""
    from ai_edge_quantizer import quantizer, recipe

    config = traced.config
    static = config.activations == "static"
    tool = quantizer.Quantizer(flatbuffer, recipe.static_wi8_ai8() if static else recipe.dynamic_wi8_afp32())
    calibration = None
    quantization = {"tool": "ai-edge-quantizer", "weights": "int8", "activations": config.activations}
    if static:
        split = dataset_of(traced.artifact).split(config.calibration_split).subset(config.calibration_samples,
                                                                                   config.seed)
        spec, data, dtypes = traced.spec, {}, _signature_dtypes(flatbuffer)
        for size in sizes:
            starts = range(0, max(1, len(split) - size + 1), size)
            takes = dtypes[f"batch_{size}"]  # the converter makes int64 token ids int32
            data[f"batch_{size}"] = [{k: v.astype(takes[k], copy=False) for k, v in
                                      spec.sample_inputs(traced.artifact, split, size, sequence, start).items()}
                                     for start in starts]
        with contextlib.redirect_stdout(sys.stderr):
            calibration = tool.calibrate(data)
        quantization.update(calibration_samples=len(split), calibration_split=config.calibration_split,
                            seed=config.seed)
    traced.step["quantization"] = quantization
    with contextlib.redirect_stdout(sys.stderr):
        return bytes(tool.quantize(calibration, enable_progress_bar=False).quantized_model)
