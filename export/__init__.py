"""edgeopt.export: torch/ONNX artifacts -> ONNX, OpenVINO IR and TensorRT engines, each checked for parity.

One registry, filled explicitly below; one entry point, `export_artifact`.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeopt.core.artifacts import MANIFEST, Artifact, Precision
from edgeopt.core.errors import InvalidInput, ParityError
from edgeopt.core.progress import ProgressFactory

from .base import Exporter
from .onnx import OnnxExportConfig, OnnxExporter
from .openvino import OpenVINOExportConfig, OpenVINOExporter
from .specs import SPECS, ExportSpec, Tolerance, spec_for
from .tensorrt import TensorRTExportConfig, TensorRTExporter
from .verify import failure_message, verify_parity

EXPORTERS: dict[str, Exporter] = {
    "onnx": OnnxExporter(),
    "openvino": OpenVINOExporter(),
    "tensorrt": TensorRTExporter(),
}


def export_artifact(artifact: Artifact | str | Path, fmt: str, out_dir: str | Path, precision: str = "fp32",
                    options: BaseModel | dict[str, Any] | None = None, verify: bool = True,
                    progress: ProgressFactory | None = None) -> Artifact:
    """Export `artifact` to format `fmt` in `out_dir`; with verify, check parity against it (ParityError if off).

    The parity report is stored in `child.metrics["parity"]`. An artifact that fails the check is kept for
    inspection in `<out_dir>.parity-failed`, never in `out_dir`.
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
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise InvalidInput(f"{out_dir}: exists and is not an edgeopt artifact; choose a new or empty directory")
    staging = out_dir.with_name(out_dir.name + ".partial")  # a half-written export never looks finished
    shutil.rmtree(staging, ignore_errors=True)
    advance = progress(f"export {artifact.name} -> {fmt} {precision}", 1) if progress else None
    try:
        child = exporter.export(artifact, staging, precision, options)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if advance:
        advance()
    child.outputs = child.outputs or [spec_for(artifact.family).output_spec(artifact)]
    report = verify_parity(child, artifact, raise_on_failure=False, progress=progress) if verify else None
    if report is not None:
        child.metrics["parity"] = report
    child.save()
    destination = out_dir if report is None or report["ok"] else out_dir.with_name(out_dir.name + ".parity-failed")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    child.path = destination
    if report is not None and not report["ok"]:
        raise ParityError(failure_message(child, report))
    return child


__all__ = ["EXPORTERS", "ExportSpec", "Exporter", "OnnxExportConfig", "OpenVINOExportConfig", "SPECS",
           "TensorRTExportConfig", "Tolerance", "export_artifact", "spec_for", "verify_parity"]
