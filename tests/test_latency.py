"""The latency harness: statistics, the stopping rule, warm-up, the noise flag; CUDA events where a GPU exists."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgeopt.benchmarks.latency import (CudaEventTimer, LatencyConfig, cpu_timer, measure_latency, median_ci,
                                        summarize, throughput)


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    samples = rng.lognormal(mean=0.0, sigma=0.3, size=500)
    stats = summarize(samples)
    assert stats.count == 500
    assert stats.mean == pytest.approx(samples.mean())
    assert stats.median == pytest.approx(np.median(samples))
    assert stats.p90 == pytest.approx(np.percentile(samples, 90))
    assert stats.p95 == pytest.approx(np.percentile(samples, 95))
    assert stats.p99 == pytest.approx(np.percentile(samples, 99))
    assert stats.min == pytest.approx(samples.min()) and stats.max == pytest.approx(samples.max())
    assert stats.std == pytest.approx(samples.std(ddof=1))
    assert stats.cv == pytest.approx(stats.std / stats.mean)
    assert stats.min <= stats.median_ci_low <= stats.median <= stats.median_ci_high <= stats.max
    assert stats.median <= stats.p90 <= stats.p95 <= stats.p99 <= stats.max


def test_median_ci_covers_the_true_median_and_narrows_with_samples():
    rng = np.random.default_rng(1)
    widths, covered = [], 0
    for n in (30, 300, 3000):
        low, high = median_ci(np.sort(rng.exponential(size=n)))
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    for trial in range(200):  # a 95% interval should cover the true median (ln 2) about 95% of the time
        low, high = median_ci(np.sort(rng.exponential(size=101)))
        covered += low <= np.log(2) <= high
    assert 0.90 <= covered / 200 <= 0.995


def test_noise_flag_follows_cv_threshold():
    steady = summarize([10.0, 10.1, 9.9, 10.0, 10.05] * 10)
    assert not steady.noisy and steady.cv < 0.01
    jumpy = summarize([10.0, 30.0] * 20)
    assert jumpy.noisy
    assert not summarize([10.0, 30.0] * 20, noisy_cv=1.0).noisy
    with pytest.raises(ValueError):
        summarize([])


def test_measure_latency_meets_min_runs_and_min_time_and_warms_up():
    calls = []

    def run(batch):
        calls.append(batch["x"][0])
        time.sleep(0.002)

    batches = [{"x": np.array([i])} for i in range(3)]
    config = LatencyConfig(warmup_runs=4, warmup_seconds=0.0, min_runs=5, min_seconds=0.2)
    stats = measure_latency(run, batches, config)
    assert stats.count >= 5 and stats.total_seconds >= 0.2
    assert stats.count > 5  # 0.2 s of ~2 ms runs: time, not count, was the binding limit
    assert len(calls) == stats.count + 4  # 4 warm-up runs were not timed
    assert set(calls) == {0, 1, 2}  # every real batch was used
    assert 1.5 < stats.median < 50  # milliseconds


def test_measure_latency_stops_at_max_seconds_for_slow_models():
    config = LatencyConfig(warmup_runs=0, warmup_seconds=0, min_runs=1000, min_seconds=0, max_seconds=0.05)
    stats = measure_latency(lambda b: time.sleep(0.01), [{}], config)
    assert 1 <= stats.count < 1000


def test_config_validation():
    with pytest.raises(ValueError):
        LatencyConfig(min_runs=10, max_runs=5)
    with pytest.raises(ValueError):
        LatencyConfig(min_runs=0)


def test_throughput_and_cpu_timer():
    stats = summarize([2.0, 2.0, 2.0])
    assert throughput(8, stats) == pytest.approx(4000.0)
    assert cpu_timer(lambda: time.sleep(0.01)) >= 9.0


@pytest.mark.cuda
def test_cuda_event_timer_counts_gpu_work():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    x = torch.randn(2048, 2048, device="cuda")
    timer = CudaEventTimer("cuda:0")
    small = timer(lambda: x[:64, :64] @ x[:64, :64])
    big = timer(lambda: [x @ x for _ in range(10)])
    assert big > small > 0
