"""The latency harness, one for every runtime: warm up, time runs until the median is pinned down, summarise.

Runs are timed one by one with `time.perf_counter_ns` (the call returns host numpy, so it is synchronous);
on CUDA a `CudaEventTimer` brackets each run with CUDA events and synchronises, so queued kernels are counted.

One process's samples say little about what a re-measurement gives (its CI of the median is ~0.05% wide while
fresh runs differ by ~1%), so a candidate is measured in several independent rounds, each in a fresh worker
process, and `summarize` states the between-round interval of the median.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Protocol

import numpy as np
from pydantic import Field, model_validator

from edgeopt.core.strict import StrictModel

from .results import LatencyStats

NOISY_EXPLANATION = ("noisy: the stated 95% interval of the median (between independent rounds) is wider than "
                     "the configured share of it, so smaller differences are not meaningful; cv is std/mean of "
                     "single runs, which rare slow runs (interrupts, other processes) inflate without moving "
                     "the median")

# two-sided 95% quantiles of Student's t by degrees of freedom (a prediction interval from a few rounds)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


class LatencyConfig(StrictModel):
    """How long to warm up and measure, per batch size and round."""

    warmup_runs: int = Field(5, ge=0, description="warm-up runs (at least this many) ...")
    warmup_seconds: float = Field(0.3, ge=0, description="... and at least this long")
    min_runs: int = Field(30, ge=1, description="measured runs per round: at least this many ...")
    min_seconds: float = Field(0.5, ge=0, description="... and at least this long")
    target_ci: float = Field(0.02, gt=0, description="then keep timing until the 95% CI of the round's median "
                                                     "is within this share of it (or max_seconds)")
    max_seconds: float = Field(10.0, gt=0, description="stop a round after this long even if min_runs or "
                                                       "target_ci is not reached (slow models); the count is "
                                                       "recorded")
    max_runs: int = Field(100_000, ge=1)
    rounds: int = Field(3, ge=1, description="independent rounds, each in a fresh worker process; the stated "
                                             "interval of the median is between rounds")
    noisy_spread: float = Field(0.05, gt=0, description="flag as noisy when the stated interval of the median "
                                                        "reaches further than this share of it")

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


def _ci_within(samples: list[float], target: float) -> bool:
    """Whether the 95% CI of the median reaches no further than `target` x median on either side."""
    values = np.sort(np.asarray(samples))
    low, high = median_ci(values)
    median = float(np.median(values))
    return max(median - low, high - median) <= target * median


def summarize(*rounds: list[float] | np.ndarray, noisy_spread: float = 0.05,
              total_seconds: float | None = None) -> LatencyStats:
    """Statistics of raw per-run latencies (ms), one argument per independent round.

    Percentiles, mean and cv are over all runs pooled. The interval of the median is a 95% prediction interval
    for the median of one more round (Student's t over the round medians), never narrower than the pooled
    samples' own CI of the median; with one round it is that CI alone.
    """
    rounds = [np.asarray(r, dtype=np.float64) for r in rounds if len(r)]
    if not rounds:
        raise ValueError("no latency samples to summarise")
    values = np.sort(np.concatenate(rounds))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    median = float(np.median(values))
    low, high = median_ci(values)
    half = max(median - low, high - median)
    medians = [float(np.median(r)) for r in rounds]
    if len(medians) > 1:
        df = len(medians) - 1
        t = T95.get(df, 1.96 + 2.5 / df)
        half = max(half, t * float(np.std(medians, ddof=1)) * math.sqrt(1 + 1 / len(medians)))
        low, high = median - half, median + half
    p90, p95, p99 = (float(v) for v in np.percentile(values, [90, 95, 99]))
    return LatencyStats(mean=mean, median=median, p90=p90, p95=p95, p99=p99, min=float(values[0]),
                        max=float(values[-1]), std=std, cv=std / mean if mean > 0 else 0.0, median_ci_low=low,
                        median_ci_high=high, rounds=len(rounds), round_medians=medians, count=int(values.size),
                        total_seconds=float(total_seconds if total_seconds is not None else values.sum() / 1e3),
                        noisy=bool(half > noisy_spread * median))


def measure_latency(run: Callable[[], object], config: LatencyConfig, timer: Timer = cpu_timer) -> list[float]:
    """One round: warm up, then time `run()` until min_runs and min_seconds are met and the CI of the median
    is within target_ci (checked as the count grows by a tenth), or max_seconds. Returns the samples (ms)."""
    start, index = time.perf_counter(), 0
    while index < config.warmup_runs or time.perf_counter() - start < config.warmup_seconds:
        run()
        index += 1
    samples: list[float] = []
    start, check_at = time.perf_counter(), config.min_runs
    while len(samples) < config.max_runs:
        elapsed = time.perf_counter() - start
        if samples and elapsed >= config.max_seconds:
            break
        if len(samples) >= check_at and elapsed >= config.min_seconds:
            if _ci_within(samples, config.target_ci):
                break
            check_at = len(samples) + max(1, len(samples) // 10)
        samples.append(timer(run))
    return samples


def throughput(batch_size: int, stats: LatencyStats) -> float:
    """Samples per second of back-to-back synchronous runs."""
    return batch_size * 1000.0 / stats.mean
