"""edgeopt.runtimes: one Runtime interface over torch, ONNX Runtime, OpenVINO and TensorRT.

The registry is filled by the explicit imports below; `availability()` probes each without loading a model.
Callers use `load_runtime(artifact)` (the format's default runtime) or name one explicitly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeopt.core.artifacts import Artifact, Format
from edgeopt.core.errors import BackendUnavailable, InvalidInput

from .base import Availability, Runtime, RuntimeConfig
from .executorch_runtime import ExecuTorchRuntime
from .litert_runtime import LiteRTRuntime
from .onnxruntime_runtime import OnnxRuntimeConfig, OnnxRuntimeRuntime
from .openvino_runtime import OpenVINORuntime
from .tensorrt_runtime import TensorRTRuntime
from .torch_runtime import TorchRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    TorchRuntime.name: TorchRuntime,
    OnnxRuntimeRuntime.name: OnnxRuntimeRuntime,
    OpenVINORuntime.name: OpenVINORuntime,
    TensorRTRuntime.name: TensorRTRuntime,
    ExecuTorchRuntime.name: ExecuTorchRuntime,
    LiteRTRuntime.name: LiteRTRuntime,
}

# The runtime an artifact runs on when none is named.
DEFAULT_RUNTIME: dict[Format, str] = {
    Format.TORCH: "torch", Format.ONNX: "onnxruntime", Format.OPENVINO: "openvino", Format.TENSORRT: "tensorrt",
    Format.EXECUTORCH: "executorch", Format.LITERT: "litert",
}


def list_runtimes() -> list[str]:
    return sorted(RUNTIMES)


def available_runtimes() -> list[str]:
    """Registered runtimes that work on this machine."""
    return [name for name in list_runtimes() if RUNTIMES[name].availability().ok]


def runtimes_for_format(fmt: Format | str) -> list[str]:
    """Registered runtimes that can run `fmt` artifacts, the default first (availability not checked)."""
    try:
        fmt = Format(fmt)
    except ValueError:
        raise InvalidInput(f"unknown format {fmt!r}; expected one of {', '.join(Format)}") from None
    others = sorted(name for name, cls in RUNTIMES.items() if fmt in cls.formats and name != DEFAULT_RUNTIME[fmt])
    return [DEFAULT_RUNTIME[fmt], *others]


def get_runtime_class(name: str) -> type[Runtime]:
    if name not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {name!r}; expected one of {', '.join(list_runtimes())}")
    return RUNTIMES[name]


def load_runtime(artifact: Artifact | str | Path, name: str | None = None,
                 config: RuntimeConfig | dict[str, Any] | None = None) -> Runtime:
    """Load `artifact` (or an artifact directory) into runtime `name` (default: the one for its format).

    Raises BackendUnavailable when the runtime is not usable here, InvalidInput when it cannot run the format.
    """
    if not isinstance(artifact, Artifact):
        artifact = Artifact.load(artifact)
    name = name or DEFAULT_RUNTIME[artifact.format]
    cls = get_runtime_class(name)
    if artifact.format not in cls.formats:
        raise InvalidInput(f"{artifact.path}: runtime {name!r} cannot run {artifact.format} artifacts; use one of "
                           f"{', '.join(runtimes_for_format(artifact.format))}")
    probe = cls.availability()
    if not probe.ok:
        raise BackendUnavailable(f"runtime {name!r} is not available: {probe.reason}")
    if isinstance(config, RuntimeConfig):
        config = config.model_dump(exclude_unset=True)
    try:
        validated = cls.config_class.model_validate(config or {})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"runtime {name!r} config: {problems}") from None
    return cls(artifact, validated)


def runtime_report(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Availability of every registered runtime, or of `names` (used by `edgeopt doctor` and the agent)."""
    report = {}
    for name, cls in sorted(RUNTIMES.items()):
        if names is not None and name not in names:
            continue
        probe = cls.availability()
        report[name] = {"ok": probe.ok, "reason": probe.reason, "devices": list(probe.devices),
                        "version": probe.version, "formats": [str(f) for f in cls.formats]}
    return report


__all__ = ["Availability", "BackendUnavailable", "DEFAULT_RUNTIME", "OnnxRuntimeConfig", "RUNTIMES", "Runtime",
           "RuntimeConfig", "available_runtimes", "get_runtime_class", "list_runtimes", "load_runtime",
           "runtime_report", "runtimes_for_format"]
