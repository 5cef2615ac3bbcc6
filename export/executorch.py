"""torch -> ExecuTorch program (.pte) lowered to XNNPACK: fp32, or INT8 through PT2E.

torch.export traces the module with a dynamic batch (and text sequence length) up to stated upper bounds.
A family whose sequence length torch.export specialises (nn.LSTM, see `ExportSpec.static_sequence`) is traced
at its upper bound instead, and the runtime right-pads shorter inputs with the family's pad values, which
leaves the logits unchanged. INT8 is PT2E with the XNNPACKQuantizer (symmetric, per-channel weights, static
activations calibrated on real training samples, like the ORT and NNCF paths). What XNNPACK does not take runs
on ExecuTorch's portable kernels; `metrics["delegation"]` names those ops, like the quantize step's
"ops left in float" report. The bounds and the quantization used are in the manifest's export step.
"""
from __future__ import annotations

from pathlib import Path
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import ExportError

from .base import Exporter, first_line
from .onnx import failing_op, quiet_exporter
from .specs import ExportSpec, spec_for

MODEL_FILE = "model.pte"
CALIBRATION_BATCH = 32
NOT_OPS = {"getitem", "sym_size"}  # graph plumbing (delegate outputs, shape reads), not kernels


class ExecuTorchExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_batch: int = Field(64, ge=2, le=4096, description="upper bound of the dynamic batch dimension")
    max_sequence: int | None = Field(None, ge=2, le=4096, description="text: upper bound of the sequence length "
                                     "(the fixed length where the family's is static); None = the preprocessor's "
                                     "max_len, the longest input it makes")
    calibration_samples: int = Field(512, ge=1, le=50000, description="INT8: real samples PT2E calibrates on")
    calibration_split: Literal["train", "val"] = Field("train", description="INT8: split they come from")
    dynamic_activations: bool = Field(False, description="INT8: quantize activations at run time (no "
                                                         "calibration) instead of with calibrated scales")
    seed: int = Field(0, description="INT8: seeds the choice of calibration samples")


class ExecuTorchExporter(Exporter):
    format = Format.EXECUTORCH
    config_class = ExecuTorchExportConfig
    precisions = (Precision.FP32, Precision.INT8)
    sources = (Format.TORCH,)

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision,
               config: ExecuTorchExportConfig) -> Artifact:
        from edgeopt.core.models.zoo import load_module
        from edgeopt.core.train import to_tensors

        spec = spec_for(artifact.family)
        if spec.is_text and config.max_sequence is None:
            config = config.model_copy(update={"max_sequence": artifact.preprocess.get("max_len", 128)})
        sequence = config.max_sequence if spec.static_sequence else spec.example_seq_length
        module = load_module(artifact).eval()
        example = to_tensors(spec.sample_inputs(artifact, dataset_of(artifact).test, spec.example_batch, sequence))
        shapes = dynamic_shapes(spec, config)
        with quiet_exporter(), _generic_convolutions():
            program = _trace(module, example, shapes, artifact)
            step: dict[str, Any] = {"step": "export", "format": "executorch", "backend": "xnnpack",
                                    "max_batch": config.max_batch}
            if spec.is_text:
                step.update(max_sequence=config.max_sequence, static_sequence=spec.static_sequence,
                            pad_values=spec.pad_values)
            if precision == Precision.INT8:
                program = _trace(_quantize(program, artifact, spec, config), example, shapes, artifact)
                step["quantization"] = {"scheme": "pt2e-xnnpack", "symmetric": True, "per_channel": True,
                                        "activations": "dynamic" if config.dynamic_activations else "static",
                                        **({} if config.dynamic_activations else {
                                            "calibration_samples": config.calibration_samples,
                                            "calibration_split": config.calibration_split, "seed": config.seed})}
            edge = _lower(program, artifact)
            report = delegation_report(edge)
            try:
                buffer = edge.to_executorch().buffer
            except Exception as error:
                raise ExportError(f"{artifact.name}: ExecuTorch could not emit a program: an op has no portable "
                                  f"kernel ({failing_op(error, module)}): {first_line(error)}") from error
        _check_bounds(buffer, example, spec, config, artifact)
        out_dir = Path(out_dir)
        child = artifact.derive(out_dir, format=Format.EXECUTORCH, precision=precision, model_file=MODEL_FILE,
                                step=step)
        (out_dir / MODEL_FILE).write_bytes(buffer)
        child.metrics["delegation"] = report
        return child.save()


def dynamic_shapes(spec: ExportSpec, config: ExecuTorchExportConfig) -> dict[str, dict[int, Any]]:
    """torch.export dimensions for the spec's dynamic input axes, bounded; a static sequence stays fixed."""
    import torch

    bounds = {"batch": config.max_batch, "sequence": config.max_sequence}
    dims: dict[str, Any] = {}
    return {name: {axis: dims.setdefault(dim, torch.export.Dim(dim, min=1, max=bounds[dim]))
                   for axis, dim in spec.dynamic_axes[name].items()
                   if not (dim == "sequence" and spec.static_sequence)}
            for name in spec.input_names}


@contextmanager
def _generic_convolutions():
    """Tracing CPU convolutions through oneDNN/NNPACK guards the batch below 16 (their dispatch threshold),
    which silently narrows the program's batch bound to 15; the generic kernel adds no such guard."""
    import torch

    with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
        yield


def _check_bounds(buffer: bytes, example: dict, spec: ExportSpec, config: ExecuTorchExportConfig,
                  artifact: Artifact) -> None:
    """The emitted program must take the stated upper bounds (memory is planned for them)."""
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(buffer).load_method("forward").metadata
    for index, name in enumerate(spec.input_names):
        planned = list(meta.input_tensor_meta(index).sizes())
        expected = list(example[name].shape)
        for axis, dim in spec.dynamic_axes[name].items():
            expected[axis] = config.max_batch if dim == "batch" else config.max_sequence
        if planned != expected:
            raise ExportError(f"{artifact.name}: the ExecuTorch program plans input {name!r} as {planned}, not "
                              f"the stated upper bounds {expected}")


def _trace(module, example: dict, shapes: dict, artifact: Artifact):
    import torch

    try:
        return torch.export.export(module, (), example, dynamic_shapes=shapes)
    except Exception as error:
        raise ExportError(f"{artifact.name}: torch.export for ExecuTorch failed at {failing_op(error, module)}: "
                          f"{first_line(error)}") from error


def _quantize(program, artifact: Artifact, spec: ExportSpec, config: ExecuTorchExportConfig):
    """PT2E: insert observers, run real training samples through them, then convert to quantized ops."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeopt.core.train import to_tensors

    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=config.dynamic_activations))
    prepared = prepare_pt2e(program.module(), quantizer)
    if not config.dynamic_activations:
        split = dataset_of(artifact).split(config.calibration_split).subset(config.calibration_samples, config.seed)
        sequence = config.max_sequence if spec.static_sequence else None
        for start in range(0, len(split), CALIBRATION_BATCH):
            batch = min(CALIBRATION_BATCH, len(split) - start)
            prepared(**to_tensors(spec.sample_inputs(artifact, split, batch, sequence, start)))
    return convert_pt2e(prepared)


def _lower(program, artifact: Artifact):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    except Exception as error:
        raise ExportError(f"{artifact.name}: lowering to ExecuTorch/XNNPACK failed at "
                          f"{failing_op(error, program)}: {first_line(error)}") from error


def delegation_report(edge) -> dict[str, Any]:
    """How much of the graph XNNPACK runs, and which ops fall back to ExecuTorch's portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    ops = [b for b in info.delegation_by_operator.values() if b.op_type not in NOT_OPS]
    return {"backend": "xnnpack", "partitions": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes, "portable_nodes": info.num_non_delegated_nodes,
            "delegated_ops": {b.op_type: b.delegated for b in ops if b.delegated},
            "portable_ops": {b.op_type: b.non_delegated for b in ops if b.non_delegated}}

