"""The measuring process: `python -m edgeopt.benchmarks.worker REQUEST.json`, one per candidate and round.

It dies with its parent, pins itself to the profile's cores, loads the prepared inputs (no data set, no torch
unless the runtime needs it), loads the artifact into its runtime, times each batch size (smallest first) on
inputs bound once, optionally runs the accuracy subset, and writes a JSON result with the raw samples.
Peak resident memory is the kernel's high-water mark, reset before each batch size and before the accuracy
pass, so each is reported on its own (load + that work; memory a smaller batch left behind is included).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.quiet import quiet_library_logs

from .latency import LatencyConfig

ACCURACY_KEY, LATENCY_KEY = "acc", "lat"
PR_SET_PDEATHSIG = 1


class WorkerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact: str
    runtime: str
    device: str = "cpu"
    threads: int | None = None
    cores: list[int] | None = None
    memory_mb: int | None = None
    inputs: str
    batch_sizes: list[int] = Field(default_factory=list, description="batch sizes to time (none: accuracy only)")
    accuracy: bool = Field(True, description="run the accuracy subset after timing")
    latency: LatencyConfig = LatencyConfig()
    parent_pid: int | None = Field(None, description="the worker kills itself when this process is gone")
    trust_code: bool = Field(False, description="the user consented to run the artifact's module factory")
    result: str


def rss_peak_mb() -> float:
    """The kernel's high-water mark of this process's resident memory.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a worker started by a big parent would
    inherit the parent's peak; and VmHWM can be reset (`reset_rss_peak`).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_rss_peak() -> bool:
    """Start a new high-water mark at the current resident memory (Linux >= 4.0); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def die_with_parent(parent_pid: int | None) -> None:
    """SIGKILL this worker when its parent dies (Linux prctl), so an interrupted sweep leaves no orphan timing
    beside the resumed run; the parent also kills the worker's process group on its own way out."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def load_inputs(path: str) -> tuple[dict[int, dict], list[dict], Any]:
    """The timed batch per batch size, the accuracy batches and labels from the prepared .npz."""
    import numpy as np

    latency: dict[int, dict] = {}
    accuracy: dict[int, dict] = {}
    with np.load(path, allow_pickle=False) as data:
        labels = data["labels"]
        for key in data.files:
            kind, *rest = key.split("/")
            if kind == LATENCY_KEY:
                batch, name = rest
                latency.setdefault(int(batch), {})[name] = data[key]
            elif kind == ACCURACY_KEY:
                index, name = rest
                accuracy.setdefault(int(index), {})[name] = data[key]
    return latency, [accuracy[i] for i in sorted(accuracy)], labels


def conform(batch: dict, specs) -> dict:
    """Cast to the artifact's declared input dtypes (an fp16 artifact may take fp16 pixels)."""
    dtypes = {spec.name: spec.dtype for spec in specs}
    return {k: v.astype(dtypes[k]) if k in dtypes and str(v.dtype) != dtypes[k] else v for k, v in batch.items()}


def measure(request: WorkerRequest) -> dict[str, Any]:
    import numpy as np

    from edgeopt.core.artifacts import Artifact
    from edgeopt.runtimes import RuntimeConfig, load_runtime

    from .latency import CudaEventTimer, cpu_timer, measure_latency

    latency_batches, accuracy_batches, labels = load_inputs(request.inputs)
    baseline = rss_peak_mb()
    artifact = Artifact.load(request.artifact, trust_code=request.trust_code)
    started = time.perf_counter()
    runtime = load_runtime(artifact, request.runtime, RuntimeConfig(device=request.device, threads=request.threads))
    result: dict[str, Any] = {"runtime": runtime.name, "runtime_version": runtime.availability().version,
                              "executed_precision": runtime.executed_precision,
                              "load_seconds": time.perf_counter() - started, "baseline_rss_mb": baseline,
                              "load_peak_rss_mb": rss_peak_mb(), "latency": {}, "threads": request.threads,
                              "cores": request.cores, "peak_per_batch": reset_rss_peak()}
    specs = artifact.inputs
    torch_cuda = request.device.startswith("cuda") and runtime.name == "torch"
    timer = CudaEventTimer(request.device) if torch_cuda else cpu_timer
    for batch_size in sorted(request.batch_sizes):
        reset_rss_peak()
        if torch_cuda:
            sys.modules["torch"].cuda.reset_peak_memory_stats(request.device)
        samples = measure_latency(runtime.bind(conform(latency_batches[batch_size], specs)), request.latency, timer)
        result["latency"][str(batch_size)] = {
            "samples": samples, "peak_rss_mb": rss_peak_mb(),
            "gpu_peak_mb": sys.modules["torch"].cuda.max_memory_allocated(request.device) / 2**20
            if torch_cuda else None}
    if request.accuracy:
        reset_rss_peak()
        predictions = [np.asarray(runtime.run(conform(batch, specs))).argmax(axis=-1) for batch in accuracy_batches]
        predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
        result["predictions"] = predicted.astype(int).tolist()
        result["accuracy"] = float((predicted == labels).mean()) if len(labels) else None
        result["accuracy_samples"] = int(len(labels))
        result["accuracy_peak_rss_mb"] = rss_peak_mb()
    runtime.close()
    result["peak_rss_mb"] = max([result["load_peak_rss_mb"], result.get("accuracy_peak_rss_mb", 0.0),
                                 *(b["peak_rss_mb"] for b in result["latency"].values())])
    if request.memory_mb and result["peak_rss_mb"] > request.memory_mb:
        # the parent's poller can miss a short spike; the kernel's high-water mark cannot
        result["error"] = (f"out of memory: peak resident memory {result['peak_rss_mb']:.0f} MB exceeds the "
                           f"profile's {request.memory_mb} MB")
    return result


def main(argv: list[str]) -> int:
    request_path = Path(argv[0])
    request = WorkerRequest.model_validate_json(request_path.read_text())
    die_with_parent(request.parent_pid)
    quiet_library_logs()
    if request.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request.cores)  # before any runtime creates its thread pool
    try:
        result = measure(request)
    except BaseException as error:  # noqa: BLE001 - every failure becomes this candidate's recorded error
        from edgeopt.core.errors import EdgeoptError

        message = str(error) if isinstance(error, EdgeoptError) else f"{type(error).__name__}: {error}"
        if isinstance(error, MemoryError):
            message = f"out of memory: MemoryError while loading or running ({error})"
        result = {"error": message, "traceback": traceback.format_exc(limit=8), "peak_rss_mb": rss_peak_mb()}
    Path(request.result).write_text(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
