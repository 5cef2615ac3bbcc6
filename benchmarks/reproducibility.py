"""Does the stated interval of the median cover what a re-measurement gives? A script that prints the figure.

    python benchmarks/reproducibility.py ARTIFACT_DIR... [--runs 5] [--device cpu-1t] [--batch 1]

Measures the artifacts `--runs` times from scratch (every run a full `bench`: fresh worker processes, nothing
reused), all artifacts in each run so drift hits them alike, then counts, over every ordered pair of runs
(i, j), whether run j's median falls inside run i's stated interval [median_ci_low, median_ci_high].
The goal is 9 in 10 or better.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu-1t")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measurement (default: the harness's)")
    args = parser.parse_args(argv)

    from edgeopt.benchmarks import BenchConfig, LatencyConfig, bench
    from edgeopt.core.artifacts import Artifact

    latency = LatencyConfig(**({"rounds": args.rounds} if args.rounds else {}))
    config = BenchConfig(batch_sizes=[args.batch], latency=latency, accuracy_samples=64)
    artifacts = [Artifact.load(path) for path in args.artifacts]
    runs: dict[str, list] = {}
    for run in range(args.runs):
        for row in bench(artifacts, devices=[args.device], config=config):
            if row.status != "ok":
                print(f"{row.candidate_id}: failed: {row.error}")
                return 1
            runs.setdefault(f"{row.artifact.name} {row.artifact.format} {row.runtime}", []).append(row.latency)
        print(f"run {run + 1}/{args.runs} done", flush=True)
    print(f"{latency.rounds} rounds per measurement, batch {args.batch}, {args.device}")
    print(f"{'candidate':<36}{'medians (ms)':<44}{'spread':>8}{'stated ±':>10}{'covered':>10}")
    inside = total = 0
    for name, stats in runs.items():
        pairs = [(a, b) for a, b in itertools.permutations(stats, 2)]
        hits = sum(a.median_ci_low <= b.median <= a.median_ci_high for a, b in pairs)
        inside, total = inside + hits, total + len(pairs)
        medians = [s.median for s in stats]
        spread = (max(medians) - min(medians)) / min(medians)
        stated = sum((s.median_ci_high - s.median) / s.median for s in stats) / len(stats)
        print(f"{name:<36}{' '.join(f'{m:.4f}' for m in medians):<44}{spread:>7.1%}{stated:>9.1%}"
              f"{hits:>6}/{len(pairs)}")
    print(f"re-measured medians inside the stated interval: {inside}/{total} = {inside / total:.0%} (goal >= 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
