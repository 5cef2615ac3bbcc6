"""The latency harness: statistics, the between-round interval, the stopping rules, warm-up, the noise flag;
CUDA events where a GPU exists."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgeopt.benchmarks.latency import (NOISY_EXPLANATION, CudaEventTimer, LatencyConfig, cpu_timer,
                                        measure_latency, median_ci, summarize, throughput)


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    samples = rng.lognormal(mean=0.0, sigma=0.3, size=500)
    stats = summarize(samples)
    assert stats.count == 500 and stats.rounds == 1
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


def test_between_round_interval_covers_a_remeasured_median():
    """Rounds whose medians shift (a fresh process lands on another memory layout, clock, neighbour) make the
    interval wide enough that the median of a further round falls inside it ~95% of the time, where the
    pooled samples' own CI of the median (thousands of runs) almost never would."""
    rng = np.random.default_rng(2)

    def a_round():
        return rng.normal(1.0 + rng.normal(0, 0.01), 0.02, size=2000)  # 1% between rounds, 2% within

    covered = naive = 0
    for trial in range(300):
        stats = summarize(*(a_round() for _ in range(3)))
        assert stats.rounds == 3 and len(stats.round_medians) == 3
        again = np.median(a_round())
        covered += stats.median_ci_low <= again <= stats.median_ci_high
        low, high = median_ci(np.sort(np.concatenate([a_round() for _ in range(3)])))
        naive += low <= again <= high
    assert covered / 300 >= 0.9
    assert naive / 300 < 0.5


def test_noise_flag_follows_the_width_of_the_stated_interval():
    steady = summarize([10.0, 10.1, 9.9] * 30, [10.02, 10.0, 10.05] * 30, [10.0, 10.01, 9.98] * 30)
    assert not steady.noisy and steady.rounds == 3
    drifting = summarize([10.0] * 50, [12.0] * 50, [9.0] * 50)  # rounds disagree: the interval is wide
    assert drifting.noisy and drifting.median_ci_high - drifting.median_ci_low > 5
    assert not summarize([10.0] * 50, [12.0] * 50, [9.0] * 50, noisy_spread=10).noisy
    spiky = summarize([10.0] * 95 + [200.0] * 5)  # rare slow runs: a large cv, a firm median
    assert spiky.cv > 1 and not spiky.noisy
    assert "cv" in NOISY_EXPLANATION and "interval" in NOISY_EXPLANATION and "\n" not in NOISY_EXPLANATION
    with pytest.raises(ValueError):
        summarize([])


def test_measure_latency_meets_min_runs_and_min_time_and_warms_up():
    calls = []
    config = LatencyConfig(warmup_runs=4, warmup_seconds=0.0, min_runs=5, min_seconds=0.2)
    samples = measure_latency(lambda: (calls.append(1), time.sleep(0.002)), config)
    assert len(samples) >= 5 and sum(samples) >= 190  # ms: time, not count, was the binding limit
    assert len(calls) == len(samples) + 4  # 4 warm-up runs were not timed
    assert 1.5 < np.median(samples) < 50  # milliseconds


def test_measure_latency_keeps_timing_until_the_median_is_pinned_down():
    rng = np.random.default_rng(3)
    spread = LatencyConfig(warmup_runs=0, warmup_seconds=0, min_runs=10, min_seconds=0, target_ci=0.02,
                           max_seconds=5)
    jittery = measure_latency(lambda: time.sleep(rng.choice([0.0002, 0.0004, 0.0008])), spread)
    low, high = median_ci(np.sort(jittery))
    median = np.median(jittery)
    assert len(jittery) > 10  # 10 runs of a three-valued latency cannot pin the median within 2%
    assert max(median - low, high - median) <= 0.02 * median
    steady = measure_latency(lambda: None, spread)
    assert len(steady) < 1000  # a steady call stops as soon as its CI is tight


def test_measure_latency_stops_at_max_seconds_for_slow_models():
    config = LatencyConfig(warmup_runs=0, warmup_seconds=0, min_runs=1000, min_seconds=0, max_seconds=0.05)
    assert 1 <= len(measure_latency(lambda: time.sleep(0.01), config)) < 1000


def test_config_validation():
    with pytest.raises(ValueError):
        LatencyConfig(min_runs=10, max_runs=5)
    with pytest.raises(ValueError):
        LatencyConfig(min_runs=0)
    with pytest.raises(ValueError):
        LatencyConfig(rounds=0)


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
