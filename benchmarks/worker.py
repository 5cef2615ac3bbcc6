"""The measuring process: `python -m edgeopt.benchmarks.worker REQUEST.json`, one per candidate.

It pins itself to the profile's cores, loads the prepared inputs (no data set, no torch unless the runtime
needs it), loads the artifact into its runtime, times every batch size, runs the accuracy subset, and writes
a JSON result. Peak RSS is the kernel's high-water mark of this fresh process (load + inference).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .latency import LatencyConfig

ACCURACY_KEY, LATENCY_KEY = "acc", "lat"


class WorkerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job: Literal["measure", "predict"] = "measure"
    artifact: str
    runtime: str
    device: str = "cpu"
    threads: int | None = None
    cores: list[int] | None = None
    memory_mb: int | None = None
    inputs: str
    batch_sizes: list[int] = [1]
    latency: LatencyConfig = LatencyConfig()
    result: str


def rss_peak_mb() -> float:
    """The kernel's high-water mark of this process's resident memory.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a worker started by a big parent would
    inherit the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def load_inputs(path: str) -> tuple[dict[int, list[dict]], list[dict], Any]:
    """Latency batches per batch size, accuracy batches and labels from the prepared .npz."""
    import numpy as np

    latency: dict[int, dict[int, dict]] = {}
    accuracy: dict[int, dict] = {}
    with np.load(path, allow_pickle=False) as data:
        labels = data["labels"]
        for key in data.files:
            kind, *rest = key.split("/")
            if kind == LATENCY_KEY:
                batch, index, name = rest
                latency.setdefault(int(batch), {}).setdefault(int(index), {})[name] = data[key]
            elif kind == ACCURACY_KEY:
                index, name = rest
                accuracy.setdefault(int(index), {})[name] = data[key]
    return ({b: [v[i] for i in sorted(v)] for b, v in latency.items()},
            [accuracy[i] for i in sorted(accuracy)], labels)


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
    artifact = Artifact.load(request.artifact)
    started = time.perf_counter()
    runtime = load_runtime(artifact, request.runtime, RuntimeConfig(device=request.device, threads=request.threads))
    result: dict[str, Any] = {"runtime": runtime.name, "runtime_version": runtime.availability().version,
                              "load_seconds": time.perf_counter() - started, "baseline_rss_mb": baseline,
                              "latency": {}, "threads": request.threads, "cores": request.cores}
    specs = artifact.inputs
    if request.job == "measure":
        cuda = request.device.startswith("cuda") and runtime.name == "torch"
        timer = CudaEventTimer(request.device) if cuda else cpu_timer
        for batch_size in request.batch_sizes:
            batches = [conform(b, specs) for b in latency_batches[batch_size]]
            stats = measure_latency(runtime.run, batches, request.latency, timer)
            result["latency"][str(batch_size)] = stats.model_dump()
    predictions = [np.asarray(runtime.run(conform(batch, specs))).argmax(axis=-1) for batch in accuracy_batches]
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    result["predictions"] = predicted.astype(int).tolist()
    result["accuracy"] = float((predicted == labels).mean()) if len(labels) else None
    result["accuracy_samples"] = int(len(labels))
    result["peak_rss_mb"] = rss_peak_mb()
    if request.device.startswith("cuda") and "torch" in sys.modules:
        import torch

        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated(request.device) / 2**20
    runtime.close()
    if request.memory_mb and result["peak_rss_mb"] > request.memory_mb:
        # the parent's poller can miss a short spike; the kernel's high-water mark cannot
        result["error"] = (f"out of memory: peak resident memory {result['peak_rss_mb']:.0f} MB exceeds the "
                           f"profile's {request.memory_mb} MB")
    return result


def main(argv: list[str]) -> int:
    request_path = Path(argv[0])
    request = WorkerRequest.model_validate_json(request_path.read_text())
    if request.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request.cores)  # before any runtime creates its thread pool
    if request.memory_mb:
        # Backstop only: the parent polls resident memory and the exact high-water mark is checked at the end.
        # RLIMIT_DATA (private writable memory) turns a runaway allocation into MemoryError / bad_alloc before
        # it can take the host down; it is set at twice the cap because it counts reserved, untouched pages too.
        limit = 2 * request.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
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
