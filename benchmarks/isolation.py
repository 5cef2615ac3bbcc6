"""Run one candidate in its own fresh Python process, with a timeout and a memory cap.

A crash, a hang or running out of memory becomes that candidate's error; the sweep goes on.

Memory cap: RLIMIT_AS and RLIMIT_DATA count address space that runtimes reserve and never touch (false
out-of-memory failures), so the parent polls the child's resident memory with psutil and kills it the moment
it crosses the cap; the child also compares the kernel's exact high-water mark (VmHWM) with the cap when it
finishes, so a spike shorter than the polling interval is still caught.

Lifetime: the worker runs in its own session and process group. It gets SIGKILL when this process dies
(parent-death signal, set in the worker), and this process kills its group on any way out of the wait
(timeout, memory cap, Ctrl-C, an exception), so no orphan keeps running beside the next measurement.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .worker import WorkerRequest

POLL_SECONDS = 0.01
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class WorkerOutcome:
    result: dict | None
    error: str | None
    observed_peak_mb: float
    seconds: float


def _rss(process: psutil.Process) -> int:
    """The worker's resident memory: one /proc read (~40 us). Runtimes do not spawn processes, and walking
    the process tree (~3 ms a poll) would steal measurable CPU from the candidate on a small machine."""
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def run_isolated(request: WorkerRequest, timeout_s: float, workdir: Path | None = None) -> WorkerOutcome:
    """Start the worker, watch time and memory, and return its JSON result or the reason it failed."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-worker-", dir=workdir) as tmp:
        tmp = Path(tmp)
        request = request.model_copy(update={"result": str(tmp / "result.json"), "parent_pid": os.getpid()})
        (tmp / "request.json").write_text(request.model_dump_json())
        env = dict(os.environ)
        if request.threads:
            env.update({name: str(request.threads) for name in THREAD_ENV})
        log = tmp / "worker.log"
        started = time.perf_counter()
        with open(log, "wb") as log_handle:
            proc = subprocess.Popen([sys.executable, "-m", "edgeopt.benchmarks.worker", str(tmp / "request.json")],
                                    stdout=log_handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            peak, killed_for = _watch(proc, request.memory_mb, started, timeout_s)
        finally:
            _kill(proc)  # whatever happened, no worker outlives this call
        seconds = time.perf_counter() - started
        peak_mb = peak / 2**20
        if killed_for:
            return WorkerOutcome(None, killed_for, peak_mb, seconds)
        result = None
        if Path(request.result).exists():
            try:
                result = json.loads(Path(request.result).read_text())
            except ValueError:
                result = None
        if result is not None and "error" in result:
            return WorkerOutcome(result, result["error"], peak_mb, seconds)
        if proc.returncode != 0 or result is None:
            code = proc.returncode
            how = (f"crashed with signal {signal.Signals(-code).name}" if code < 0
                   else f"exited with status {code} without a result")
            if code in (-signal.SIGKILL, 137):
                how += " (killed: out of memory?)"
            return WorkerOutcome(None, f"worker {how}: {_tail(log)}".rstrip(": "), peak_mb, seconds)
        return WorkerOutcome(result, None, peak_mb, seconds)


def _watch(proc: subprocess.Popen, memory_mb: int | None, started: float, timeout_s: float) -> tuple[int, str | None]:
    """Poll until the worker exits or must be killed; returns (peak RSS bytes seen, why it must be killed)."""
    watcher = psutil.Process(proc.pid)
    cap = memory_mb * 2**20 if memory_mb else None
    peak = 0
    while proc.poll() is None:
        rss = _rss(watcher)
        peak = max(peak, rss)
        if cap and rss > cap:
            return peak, (f"out of memory: resident memory reached {rss / 2**20:.0f} MB, over the profile's "
                          f"{memory_mb} MB cap (killed)")
        if time.perf_counter() - started > timeout_s:
            return peak, f"timed out after {timeout_s:.0f} s (killed)"
        time.sleep(POLL_SECONDS)
    return peak, None


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's process group (anything it started too) and reap it; a no-op once it is gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if proc.poll() is None:
            proc.kill()
    proc.wait()
