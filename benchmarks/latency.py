"""The latency harness, one for every runtime: warm up, time runs until enough samples, summarise.

Runs are timed one by one with `time.perf_counter_ns` (the call returns host numpy, so it is synchronous);
on CUDA a `CudaEventTimer` brackets each run with CUDA events and synchronises, so queued kernels are counted.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .results import LatencyStats


class LatencyConfig(BaseModel):
    """How long to warm up and measure. Defaults finish a small model in about two seconds per batch size."""

    model_config = ConfigDict(extra="forbid")
    warmup_runs: int = Field(5, ge=0, description="warm-up runs (at least this many) ...")
    warmup_seconds: float = Field(0.3, ge=0, description="... and at least this long")
    min_runs: int = Field(30, ge=1, description="measured runs: at least this many ...")
    min_seconds: float = Field(1.5, ge=0, description="... and at least this long")
    max_seconds: float = Field(30.0, gt=0, description="stop measuring after this long even if min_runs "
                                                       "is not reached (slow models); the count is recorded")
    max_runs: int = Field(100_000, ge=1)
    noisy_cv: float = Field(0.10, gt=0, description="flag a run as noisy above this coefficient of variation")

    @model_validator(mode="after")
    def _consistent(self) -> "LatencyConfig":
        if self.max_runs < self.min_runs:
            raise ValueError(f"max_runs ({self.max_runs}) must be >= min_runs ({self.min_runs})")
        return self


class Timer(Protocol):
    def __call__(self, run: Callable[[], object]) -> float:
        """Run once; return the elapsed time in milliseconds."""


def cpu_timer(run: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) / 1e6


class CudaEventTimer:
    """Time with CUDA events on the current stream and synchronise, so asynchronous kernels are counted."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def __call__(self, run: Callable[[], object]) -> float:
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        with self.torch.cuda.device(self.device):
            start.record()
            run()
            end.record()
            end.synchronize()
        return float(start.elapsed_time(end))


def median_ci(sorted_samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial, normal approximation).

    Timings are skewed and often bimodal, so no normality is assumed for the samples themselves.
    """
    n = len(sorted_samples)
    if n < 3:
        return float(sorted_samples[0]), float(sorted_samples[-1])
    z = {0.90: 1.645, 0.95: 1.96, 0.99: 2.576}.get(confidence, 1.96)
    half = z * math.sqrt(n) / 2
    low = max(int(math.floor(n / 2 - half)), 0)
    high = min(int(math.ceil(n / 2 + half)), n - 1)
    return float(sorted_samples[low]), float(sorted_samples[high])


def summarize(samples_ms: list[float] | np.ndarray, noisy_cv: float = 0.10,
              total_seconds: float | None = None) -> LatencyStats:
    """Statistics of raw per-run latencies (milliseconds)."""
    values = np.sort(np.asarray(samples_ms, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no latency samples to summarise")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    p90, p95, p99 = (float(v) for v in np.percentile(values, [90, 95, 99]))
    low, high = median_ci(values)
    return LatencyStats(mean=mean, median=float(np.median(values)), p90=p90, p95=p95, p99=p99,
                        min=float(values[0]), max=float(values[-1]), std=std, cv=cv, median_ci_low=low,
                        median_ci_high=high, count=int(values.size),
                        total_seconds=float(total_seconds if total_seconds is not None else values.sum() / 1e3),
                        noisy=bool(cv > noisy_cv))


def measure_latency(run: Callable[[dict], object], batches: list[dict[str, np.ndarray]], config: LatencyConfig,
                    timer: Timer = cpu_timer) -> LatencyStats:
    """Warm up, then time `run(batch)` cycling through `batches` until min_runs and min_seconds are both met."""
    if not batches:
        raise ValueError("measure_latency needs at least one input batch")
    calls = [lambda b=b: run(b) for b in batches]
    start, index = time.perf_counter(), 0
    while index < config.warmup_runs or time.perf_counter() - start < config.warmup_seconds:
        calls[index % len(calls)]()
        index += 1
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < config.max_runs:
        elapsed = time.perf_counter() - start
        enough = len(samples) >= config.min_runs and elapsed >= config.min_seconds
        if enough or (samples and elapsed >= config.max_seconds):
            break
        samples.append(timer(calls[len(samples) % len(calls)]))
    return summarize(samples, config.noisy_cv, total_seconds=time.perf_counter() - start)


def throughput(batch_size: int, stats: LatencyStats) -> float:
    """Samples per second of back-to-back synchronous runs."""
    return batch_size * 1000.0 / stats.mean
