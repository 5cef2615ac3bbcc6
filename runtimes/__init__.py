"""edgeopt.runtimes: one Runtime interface over torch, ONNX Runtime, OpenVINO and TensorRT.

The registry is filled by the explicit imports below; `available()` probes each without loading a model.
"""
from __future__ import annotations

from typing import Any

from edgeopt.core.errors import BackendUnavailable, InvalidInput

from .base import Availability, Runtime, RuntimeConfig

RUNTIMES: dict[str, type[Runtime]] = {}


def list_runtimes() -> list[str]:
    return sorted(RUNTIMES)


def get_runtime_class(name: str) -> type[Runtime]:
    if name not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {name!r}; expected one of {', '.join(list_runtimes())}")
    return RUNTIMES[name]


def runtime_report() -> dict[str, dict[str, Any]]:
    """Availability of every registered runtime (used by `edgeopt doctor`)."""
    report = {}
    for name, cls in sorted(RUNTIMES.items()):
        probe = cls.availability()
        report[name] = {"ok": probe.ok, "reason": probe.reason, "devices": list(probe.devices),
                        "version": probe.version, "formats": [str(f) for f in cls.formats]}
    return report


__all__ = ["Availability", "BackendUnavailable", "RUNTIMES", "Runtime", "RuntimeConfig", "get_runtime_class",
           "list_runtimes", "runtime_report"]
