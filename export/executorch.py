"""torch -> ExecuTorch program (.pte) lowered to XNNPACK: fp32, or INT8 through PT2E (XNNPACKQuantizer).

Shapes are bounded and INT8 is calibrated as for every torch.export-based format (see `pt2e`). What XNNPACK
does not take runs on ExecuTorch's portable kernels: `metrics["delegation"]` names those ops, like the quantize
step's "ops left in float" report; an op with no kernel at all fails the export naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.errors import ExportError

from .base import Exporter, first_line
from .onnx import failing_op, quiet_exporter
from .pt2e import BoundedExportConfig, Traced, generic_convolutions

MODEL_FILE = "model.pte"
NOT_OPS = {"getitem", "sym_size", "alloc", "mul"}  # graph plumbing (outputs, shape arithmetic, buffers)


class ExecuTorchExportConfig(BoundedExportConfig):
    """Bounds and INT8 options (see BoundedExportConfig); the backend is XNNPACK."""


class ExecuTorchExporter(Exporter):
    format = Format.EXECUTORCH
    config_class = ExecuTorchExportConfig
    precisions = (Precision.FP32, Precision.INT8)
    sources = (Format.TORCH,)

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision,
               config: ExecuTorchExportConfig) -> Artifact:
        traced = Traced(artifact, config, {"format": "executorch", "backend": "xnnpack"})
        with quiet_exporter(), generic_convolutions():
            if precision == Precision.INT8:
                from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                    XNNPACKQuantizer, get_symmetric_quantization_config)

                quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(
                    is_per_channel=True, is_dynamic=traced.config.activations == "dynamic"))
                program = traced.export(traced.quantize(quantizer, precision))
            else:
                program = traced.export()
            edge = _lower(program, artifact)
            try:
                buffer = edge.to_executorch().buffer
            except Exception as error:
                raise ExportError(f"{artifact.name}: ExecuTorch could not emit a program: an op has no portable "
                                  f"kernel ({failing_op(error, program)}): {first_line(error)}") from error
        _check_bounds(buffer, traced, artifact)
        out_dir = Path(out_dir)
        child = artifact.derive(out_dir, format=Format.EXECUTORCH, precision=precision, model_file=MODEL_FILE,
                                step=traced.step)
        (out_dir / MODEL_FILE).write_bytes(buffer)
        child.metrics["delegation"] = delegation_report(edge)
        return child.save()


def _lower(program, artifact: Artifact):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    except Exception as error:
        raise ExportError(f"{artifact.name}: lowering to ExecuTorch/XNNPACK failed at "
                          f"{failing_op(error, program)}: {first_line(error)}") from error


def _check_bounds(buffer: bytes, traced: Traced, artifact: Artifact) -> None:
    """The emitted program must plan memory for the stated upper bounds (it cannot take more)."""
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(buffer).load_method("forward").metadata
    for index, (name, expected) in enumerate(traced.planned_shapes().items()):
        planned = list(meta.input_tensor_meta(index).sizes())
        if planned != expected:
            raise ExportError(f"{artifact.name}: the ExecuTorch program plans input {name!r} as {planned}, not "
                              f"the stated upper bounds {expected}")


def delegation_report(edge) -> dict[str, Any]:
    """How much of the graph XNNPACK runs, and which ops fall back to ExecuTorch's portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    ops = [b for b in info.delegation_by_operator.values() if b.op_type not in NOT_OPS]
    return {"backend": "xnnpack", "partitions": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes, "portable_nodes": info.num_non_delegated_nodes,
            "delegated_ops": {b.op_type: b.delegated for b in ops if b.delegated},
            "portable_ops": {b.op_type: b.non_delegated for b in ops if b.non_delegated}}
