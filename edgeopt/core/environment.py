"""What this machine is: CPU, ISA flags, cores, memory, GPUs, backend versions.

Used by `edgeopt doctor` and recorded as provenance with every measurement.
"""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "sve")
BACKEND_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "openvino", "nncf",
                    "torch-pruning", "transformers", "tensorrt", "numpy", "executorch", "torchao",
                    "ai-edge-litert", "litert-torch", "ai-edge-quantizer")
# The libraries whose version can change what a build step writes (weights, graphs, quantization choices).
BUILD_LIBRARIES = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "torch-pruning", "transformers", "executorch",
                   "torchao", "litert-torch", "ai-edge-quantizer")
# The packages that provide each runtime (the first one installed is the runtime's version).
RUNTIME_PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
                    "openvino": ("openvino",), "tensorrt": ("tensorrt",),
                    "executorch": ("executorch",), "litert": ("ai-edge-litert",)}


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    import psutil

    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "memory_bytes": psutil.virtual_memory().total,
    }


def package_versions() -> dict[str, str]:
    versions = {}
    for name in BACKEND_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def library_versions(names: tuple[str, ...] = BUILD_LIBRARIES) -> dict[str, str | None]:
    """Installed versions of `names` (None when absent): part of every build key."""
    versions = package_versions()
    return {name: versions.get(name) for name in names}


def runtime_version(runtime: str) -> str | None:
    """The version of the package that provides `runtime` (a package of the runtime's name unless listed in
    RUNTIME_PACKAGES): part of every measurement key."""
    for package in RUNTIME_PACKAGES.get(runtime, (runtime,)):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return None


def host_description() -> dict[str, Any]:
    """What about this machine shapes a measurement (CPU model, ISA flags, cores, GPUs): part of every
    measurement key, so numbers taken on another machine are never shown as this one's."""
    cpu = cpu_info()
    return {"cpu_model": cpu["model"], "arch": cpu["arch"], "logical_cores": cpu["logical_cores"],
            "isa": sorted(flag for flag, present in cpu["isa"].items() if present),
            "gpus": [d["name"] for d in cuda_devices()]}


def cuda_devices() -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append({"index": index, "name": props.name, "memory_bytes": props.total_memory,
                        "capability": f"{props.major}.{props.minor}"})
    return devices


def git_revision(path: Path | None = None) -> str | None:
    """The project's git revision (with -dirty), or None outside a checkout."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=where,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def provenance(threads: int | None = None, gpus: list[str] | None = None) -> dict[str, Any]:
    """Everything a measurement needs to be traced: machine, versions, threads, git revision, time.

    `gpus` None asks torch for the CUDA GPUs; a device agent passes its own list (it never imports torch)."""
    import datetime as dt

    cpu = cpu_info()
    gpus = [d["name"] for d in cuda_devices()] if gpus is None else gpus
    return {
        "cpu_model": cpu["model"], "arch": cpu["arch"], "logical_cores": cpu["logical_cores"],
        "isa": [flag for flag, present in cpu["isa"].items() if present], "memory_bytes": cpu["memory_bytes"],
        "threads": threads, "gpus": gpus, "versions": package_versions(),
        "python": platform.python_version(), "git": git_revision(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
