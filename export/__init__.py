"""edgeopt.export: torch/ONNX artifacts -> ONNX, OpenVINO IR and TensorRT engines, each checked for parity.

One registry, filled explicitly below; one entry point, `export_artifact`.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeopt.core.artifacts import Artifact, Precision, output_directory
from edgeopt.core.errors import InvalidInput, ParityError
from edgeopt.core.progress import ProgressFactory

from .base import Exporter
from .executorch import ExecuTorchExportConfig, ExecuTorchExporter
from .litert import LiteRTExportConfig, LiteRTExporter
from .onnx import OnnxExportConfig, OnnxExporter
from .openvino import OpenVINOExportConfig, OpenVINOExporter
from .specs import SPECS, ExportSpec, Tolerance, spec_for
from .tensorrt import TensorRTExportConfig, TensorRTExporter
from .verify import failure_message, verify_parity

EXPORTERS: dict[str, Exporter] = {
    "onnx": OnnxExporter(),
    "openvino": OpenVINOExporter(),
    "tensorrt": TensorRTExporter(),
    "executorch": ExecuTorchExporter(),
    "litert": LiteRTExporter(),
}


def export_artifact(artifact: Artifact | str | Path, fmt: str, out_dir: str | Path, precision: str = "fp32",
                    options: BaseModel | dict[str, Any] | None = None, verify: bool = True,
                    progress: ProgressFactory | None = None, force: bool = False) -> Artifact:
    """Export `artifact` to format `fmt` in `out_dir`; with verify, check parity against it (ParityError if off).

    The parity report is stored in `child.metrics["parity"]`. An artifact that fails the check is kept for
    inspection in `<out_dir>.parity-failed`, never in `out_dir`. An existing artifact in `out_dir` is replaced
    only with `force`; a failed export leaves `out_dir` as it was.
    """
    if not isinstance(artifact, Artifact):
        artifact = Artifact.load(artifact)
    if fmt not in EXPORTERS:
        raise InvalidInput(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORTERS)}")
    exporter = EXPORTERS[fmt]
    try:
        precision = Precision(precision)
    except ValueError:
        raise InvalidInput(f"unknown precision {precision!r}; expected one of "
                           f"{', '.join(exporter.precisions)}") from None
    if precision not in exporter.precisions:
        raise InvalidInput(f"{fmt} export supports precision {', '.join(exporter.precisions)}, not {precision}"
                           + ("; make int8 models with the quantize step" if precision == "int8" else ""))
    if artifact.format not in exporter.sources:
        raise InvalidInput(f"{artifact.path}: {fmt} export starts from {' or '.join(exporter.sources)} artifacts, "
                           f"not {artifact.format}")
    if isinstance(options, dict) or options is None:
        try:
            options = exporter.config_class.model_validate(options or {})
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise InvalidInput(f"{fmt} export options: {problems}") from None
    elif not isinstance(options, exporter.config_class):
        raise InvalidInput(f"{fmt} export takes {exporter.config_class.__name__} options, "
                           f"not {type(options).__name__}")
    out_dir = Path(out_dir).expanduser().resolve()
    advance = progress(f"export {artifact.name} -> {fmt} {precision}", 1) if progress else None
    with output_directory(out_dir, artifact, force) as staging:
        child = exporter.export(artifact, staging, precision, options)
        if advance:
            advance()
        child.outputs = child.outputs or [spec_for(artifact).output_spec(artifact)]
        report = verify_parity(child, artifact, raise_on_failure=False, progress=progress) if verify else None
        if report is not None:
            child.metrics["parity"] = report
        child.save()
        if report is not None and not report["ok"]:
            failed = out_dir.with_name(out_dir.name + ".parity-failed")
            with output_directory(failed, force=True) as kept:
                shutil.copytree(staging, kept, dirs_exist_ok=True)
            raise ParityError(f"{failure_message(child, report)} (kept for inspection in {failed})")
    child.path = out_dir
    return child


__all__ = ["EXPORTERS", "ExecuTorchExportConfig", "ExportSpec", "Exporter", "LiteRTExportConfig",
           "OnnxExportConfig", "OpenVINOExportConfig", "SPECS", "TensorRTExportConfig", "Tolerance", "export_artifact",
           "spec_for", "verify_parity"]
