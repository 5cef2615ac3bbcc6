"""edgeopt.benchmarks: measure artifacts on runtimes and device profiles.

    from edgeopt.benchmarks import bench, BenchConfig
    from edgeopt.store import ResultStore
    rows = bench(["path/to/artifact"], runtimes=["onnxruntime"], devices=["cpu-1t", "edge-1c-512m"],
                 config=BenchConfig(batch_sizes=[1, 8]), store=ResultStore("results.db"))

Latency (warm-up, percentiles, the median's interval between independent rounds, noise flag), peak memory per
batch size, size, parameters, MACs, accuracy through the artifact's own runtime and fidelity to its FP32 parent,
each candidate in fresh worker processes.
"""
from .latency import NOISY_EXPLANATION, LatencyConfig, measure_latency, summarize
from .profiles import DeviceProfile, get_profile, list_profiles
from .results import ArtifactInfo, LatencyStats, Measurement
from .sweep import BenchConfig, Candidate, bench, plan

__all__ = ["NOISY_EXPLANATION", "ArtifactInfo", "BenchConfig", "Candidate", "DeviceProfile", "LatencyConfig",
           "LatencyStats", "Measurement", "bench", "get_profile", "list_profiles", "measure_latency", "plan", "summarize"]
