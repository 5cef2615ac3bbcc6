"""What the Ray executor costs per candidate: a synthetic plan of N no-op candidates on a local Ray cluster.

Each candidate is what the executor submits for a real one: a build task chained to a shared source build (the
executor's build options), then a measurement task holding one unit of a device resource (its measure options),
gathered by the executor's own loop. The tasks do nothing, so the wall time is the scheduling overhead: per
candidate (wall / N) and per measurement on one device (wall of the measurement phase / measurements per device,
the serial part that a real measurement's seconds add to). Then a 10-node estimate from these figures.

    python benchmarks/ray_overhead.py                      # N = 10, 100, 1000 on 2 device nodes
    python benchmarks/ray_overhead.py --sizes 10,100 --devices 3 --candidate-s 60
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import ray
from ray.cluster_utils import Cluster

from edgeopt.executors.ray import RayExecutor, build_options, measure_options


@ray.remote
def _build(parent: dict | None) -> dict:
    return {"path": "synthetic"}


@ray.remote
def _measure(index: int) -> list:
    return [index]


def sweep(n: int, devices: int) -> tuple[float, float, float]:
    """(total, build phase, measure phase) seconds for n synthetic candidates over `devices` device nodes."""
    executor = RayExecutor()
    started = time.perf_counter()
    node = SimpleNamespace(kind="export", params={"format": "onnx"})
    source = _build.options(**build_options(node)).remote(None)
    builds = {_build.options(**build_options(node)).remote(source): None for _ in range(n)}
    for _ in executor._gather(builds):
        pass
    built = time.perf_counter()
    profiles = [SimpleNamespace(name=f"synthetic-{d}", ray_resource=None) for d in range(devices)]
    measures = {}
    for index in range(n):
        profile = profiles[index % devices]
        measures[_measure.options(**measure_options(profile)).remote(index)] = f"device:{profile.name}"
    for _ in executor._gather(measures):
        pass
    done = time.perf_counter()
    return done - started, built - started, done - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="plan sizes N, comma-separated")
    parser.add_argument("--devices", type=int, default=2, help="device nodes (one device resource each)")
    parser.add_argument("--candidate-s", type=float, default=16.0, help="a real candidate's seconds, build and "
                        "measurement, for the estimate (16: the default CNN family, 28 candidates in 455 s here)")
    args = parser.parse_args()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for d in range(args.devices):
        cluster.add_node(num_cpus=1, resources={f"device:synthetic-{d}": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        sweep(10, args.devices)  # warm the workers: the first tasks start Python processes
        print(f"local Ray cluster: head + {args.devices} device nodes, 1 CPU each; no-op build and measure tasks")
        print(f"{'N':>6} {'wall s':>8} {'build s':>8} {'measure s':>9} {'ms/candidate':>13} "
              f"{'ms/measurement on a device':>27}")
        per_device = []
        for n in (int(s) for s in args.sizes.split(",")):
            total, build, measure = sweep(n, args.devices)
            serial = 1000 * measure / (n / args.devices)
            per_device.append(serial)
            print(f"{n:>6} {total:>8.2f} {build:>8.2f} {measure:>9.2f} {1000 * total / n:>13.2f} {serial:>27.2f}")
    finally:
        ray.shutdown()
        cluster.shutdown()
    overhead = max(per_device) / 1000
    print(f"\n10-node estimate, assuming: each node carries one device resource and one CPU slot for builds, a "
          f"candidate takes {args.candidate_s:g} s of build and measurement work, the shared cache and the driver's "
          f"SQLite store keep up, and this machine's worst per-measurement overhead ({1000 * overhead:.1f} ms) "
          f"holds per node:")
    for n in (100, 1000, 10000):
        print(f"  N={n:>5}: ~{n * (args.candidate_s + overhead) / 10 / 60:7.1f} min on 10 nodes, "
              f"~{n * args.candidate_s / 60:7.1f} min on one machine; scheduling adds "
              f"{100 * overhead / args.candidate_s:.2f}%")

if __name__ == "__main__":
    main()
