"""OpenVINO IR (model.xml + model.bin) from the torch module or from ONNX; FP32 or FP16-compressed weights.

`source="torch"` converts the module directly (openvino.convert_model with a real example input);
`source="onnx"` exports ONNX first (or starts from an ONNX artifact, e.g. a quantized one) and converts that.
FP16 compresses the stored weights (save_model compress_to_fp16); the device still picks the compute precision.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.errors import ExportError, InvalidInput

from .base import Exporter, first_line
from .onnx import OnnxExportConfig, check_onnx_file, export_onnx_file, resolve, failing_op
from .specs import spec_for

MODEL_FILE = "model.xml"


class OpenVINOExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["torch", "onnx"] = Field("torch", description="convert the torch module, or go through ONNX "
                                                                  "(ONNX artifacts always go through ONNX)")
    onnx: OnnxExportConfig = Field(default_factory=OnnxExportConfig, description="used when source is onnx")


class OpenVINOExporter(Exporter):
    format = Format.OPENVINO
    config_class = OpenVINOExportConfig
    precisions = (Precision.FP32, Precision.FP16, Precision.BF16)  # bf16: fp32 weights, computed in bf16
    sources = (Format.TORCH, Format.ONNX)

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision,
               config: OpenVINOExportConfig) -> Artifact:
        import openvino as ov

        source = "onnx" if artifact.format == Format.ONNX else config.source
        if config.onnx.model_fields_set and not (source == "onnx" and artifact.format == Format.TORCH):
            given = ", ".join(sorted(config.onnx.model_fields_set))
            raise InvalidInput(f"openvino export: onnx options ({given}; --opset, --exporter) choose the torch -> "
                               "ONNX export, which happens only for a torch artifact with source onnx (--source onnx)")
        step = {"step": "export", "format": "openvino", "source": source, "compress_to_fp16": precision == "fp16"}
        if source == "onnx" and artifact.format == Format.TORCH:
            onnx_config = resolve(config.onnx, artifact)
            step.update(exporter=onnx_config.exporter, opset=onnx_config.opset)
        # an int8 (QDQ) ONNX parent stays int8 in IR; fp16 compression applies to float weights only
        child_precision = artifact.precision if artifact.precision == Precision.INT8 else precision
        child = artifact.derive(out_dir, format=Format.OPENVINO, precision=child_precision, model_file=MODEL_FILE,
                                step=step)
        spec = spec_for(artifact)
        with tempfile.TemporaryDirectory() as scratch:  # the model may map the scratch ONNX file: save inside
            model = _from_onnx(artifact, Path(scratch), config.onnx) if source == "onnx" else _from_torch(artifact)
            for port, name in zip(model.inputs, [s.name for s in artifact.inputs]):
                port.get_tensor().set_names({name})
            model.outputs[0].get_tensor().set_names({spec.output_name})
            for key, value in {"family": str(child.family), "labels": json.dumps(child.labels),
                               "inputs": json.dumps([s.model_dump() for s in child.inputs]),
                               "source_sha256": artifact.sha256 or "", "source": source}.items():
                model.set_rt_info(value, ["edgeopt", key])
            ov.save_model(model, str(Path(out_dir) / MODEL_FILE), compress_to_fp16=precision == Precision.FP16)
        return child.save()


def _from_torch(artifact: Artifact):
    import openvino as ov
    import torch

    from edgeopt.core.models.zoo import load_module
    from edgeopt.core.train import to_tensors

    spec = spec_for(artifact)
    module = load_module(artifact)
    example = to_tensors(spec.example_inputs(artifact))
    rank = {name: tensor.dim() for name, tensor in example.items()}
    dtypes = {torch.float32: ov.Type.f32, torch.int64: ov.Type.i64}
    # every dimension the spec calls dynamic becomes -1; the rest are fixed to the example's
    inputs = [(name, ov.PartialShape([-1 if axis in spec.dynamic_axes[name] else example[name].shape[axis]
                                      for axis in range(rank[name])]), dtypes[example[name].dtype])
              for name in spec.input_names]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ov.convert_model(module, example_input=example, input=inputs)
    except Exception as error:
        raise ExportError(f"{artifact.name}: OpenVINO conversion from torch (openvino.convert_model) failed at "
                          f"{failing_op(error, module)}: {first_line(error)}") from error


def _from_onnx(artifact: Artifact, scratch: Path, onnx_config: OnnxExportConfig):
    import openvino as ov

    if artifact.format == Format.ONNX:
        path = artifact.model_path
        check_onnx_file(path)
    else:
        path = scratch / "model.onnx"
        export_onnx_file(artifact, path, onnx_config)
    try:
        return ov.convert_model(str(path))
    except Exception as error:
        raise ExportError(f"{artifact.name}: OpenVINO conversion from ONNX ({path.name}) failed: "
                          f"{first_line(error)}") from error
