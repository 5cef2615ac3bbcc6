"""The Ray executor: a sweep's builds and measurements as Ray tasks across the nodes of a Ray cluster.

Builds: one task per build node, given its parent's task result, so Ray runs parents before children and siblings
in parallel. They write the content-addressed cache under the run's output directory, which every node must reach
at the same path (a shared filesystem); the driver submits each node once and build_node takes the cache's file
lock, so a node is never computed on two machines at once. TensorRT exports ask for a GPU.

Measurements: one task per candidate holding one unit of its profile's device resource (`device:<profile>`, or the
profile's `ray_resource`), so a node started with `ray start --resources '{"device:cpu-1t": 1}'` measures one
candidate at a time, in the same isolated worker subprocess as locally; the rows carry that node's provenance.

Faults: Ray retries a task once when its node or worker dies; when it is lost again, or no node carries its
resource any more, the candidate is recorded failed with the reason and the sweep goes on. Rows reach the driver's
results store one candidate per transaction as they arrive, so a killed driver resumes like a local run.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
from ray.exceptions import RayError

from edgeopt.core.errors import InvalidInput

from . import MeasureJob, OnBuilt, OnResult, failed_rows, measure_one, prepared_inputs

RETRIES = 1  # a task whose node dies runs once more elsewhere, then its candidate fails with the reason
CHECK_S = 2.0  # how often a wait looks for tasks whose device resource has left the cluster


def device_resource(profile) -> str:
    """The Ray resource a node carries to measure under `profile`."""
    return profile.ray_resource or f"device:{profile.name}"


def build_options(node) -> dict[str, Any]:
    """A build holds a CPU; a TensorRT engine is built on the GPU it will run on."""
    gpu = node.kind == "export" and node.params.get("format") == "tensorrt"
    return {"num_cpus": 1, "num_gpus": 1 if gpu else 0, "max_retries": RETRIES}


def measure_options(profile) -> dict[str, Any]:
    """A measurement holds its device (one at a time per device) and a CPU (no build runs beside it there)."""
    return {"num_cpus": 1, "resources": {device_resource(profile): 1}, "max_retries": RETRIES}


def lost(error: Exception) -> str:
    """A failed row's error for a task Ray could not finish (its node died twice, or it was cancelled)."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"lost on the Ray cluster: {type(error).__name__}: {first}".rstrip(": ")


@ray.remote(num_cpus=0)
def _describe_host() -> dict[str, Any]:
    from edgeopt.core.environment import host_description

    return host_description()


def _load(node, cache: Path):
    """A built node's artifact: from the shared cache (a zoo source from this machine's zoo)."""
    from edgeopt.pipeline import build_node

    return build_node(node, None, cache)


def lift_thread_cap(num_cpus: int) -> None:
    """Ray sets OMP_NUM_THREADS to a task's CPUs when the user set none; edgeopt's builds and measurement workers
    take the machine's default threads instead, as with the local executor (a fine-tuning on 1 thread gives
    other weights than on 2, so the two executors would not build the same artifacts)."""
    if os.environ.get("OMP_NUM_THREADS") != str(num_cpus):
        return  # the user's own setting, or lifted already in this worker process
    del os.environ["OMP_NUM_THREADS"]
    if "torch" in sys.modules:  # imported under the cap: set what a fresh process would take
        import psutil

        sys.modules["torch"].set_num_threads(psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@ray.remote
def _build(node, parent: dict | None, cache: str) -> dict[str, str]:
    """One build step on this node; `parent` is the parent task's outcome, so Ray runs this after it."""
    from edgeopt.pipeline import _error_text, build_node

    lift_thread_cap(build_options(node)["num_cpus"])
    if parent is not None and "error" in parent:
        return {"error": f"not built: its {node.parent.kind} step failed: {parent['error']}"}
    try:
        artifact = build_node(node, _load(node.parent, Path(cache)) if node.parent else None, Path(cache))
    except Exception as error:  # noqa: BLE001 - a failed build is recorded; the sweep goes on
        return {"error": _error_text(error)}
    return {"path": str(artifact.path)}


@ray.remote
def _measure(job: MeasureJob, references: tuple[Path, ...]) -> list:
    """One candidate measured on this node (it carries the device resource the task asked for)."""
    from edgeopt.benchmarks.sweep import Lineage
    from edgeopt.core.environment import provenance

    lift_thread_cap(measure_options(job.candidate.profile)["num_cpus"])  # the worker takes the profile's threads
    node = {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "resource": device_resource(job.candidate.profile)}
    host = {**provenance(), "ray": node}
    lineage = Lineage.around([job.candidate.artifact], references)
    with tempfile.TemporaryDirectory(prefix="edgeopt-inputs-") as tmp:
        return measure_one(job, prepared_inputs(Path(tmp)), lineage, {}, host)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self._hosts: dict[str, dict[str, Any]] = {}

    def connect(self) -> None:
        """Join the cluster at `address` (`auto`: the one `ray start` runs here; `ray://head:10001`), or with no
        address $RAY_ADDRESS, else start Ray on this machine with one unit of every profile's device resource."""
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"address": self.address, "logging_level": "WARNING", "log_to_driver": False}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            from edgeopt.benchmarks.profiles import list_profiles

            options["resources"] = {device_resource(p): 1 for p in list_profiles().values()}
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InvalidInput(f"--ray-address {self.address or os.environ.get('RAY_ADDRESS')}: cannot join a "
                               f"Ray cluster: {str(error).splitlines()[0]}") from None

    def host(self, profile) -> dict[str, Any] | None:
        """The host description of a node carrying the profile's device resource (what its rows are keyed by)."""
        self.connect()
        resource = device_resource(profile)
        if resource not in ray.cluster_resources():
            raise InvalidInput(
                f"device {profile.name}: no node of the Ray cluster carries the resource {resource}; start one "
                f"with `ray start --address <head> --resources '{json.dumps({resource: 1})}'` (see docs/scale.md)")
        if profile.remote is not None:  # a board measured through its agent: the board is the host
            return None
        if resource not in self._hosts:
            self._hosts[resource] = ray.get(_describe_host.options(resources={resource: 1e-3}).remote())
        return self._hosts[resource]

    def build(self, nodes, cache: Path, progress: Callable | None = None, on_built: OnBuilt | None = None):
        self.connect()
        cache = Path(cache).resolve()
        refs: dict[str, ray.ObjectRef] = {}
        for node in nodes:  # parents come first: each child is handed its parent's pending result
            parent = refs.get(node.parent.key) if node.parent else None
            refs[node.key] = _build.options(**build_options(node)).remote(node, parent, str(cache))
        by_ref = {ref: node for node, ref in zip(nodes, refs.values())}
        built, errors = {}, {}
        for ref, outcome in self._gather({ref: None for ref in by_ref}):
            node = by_ref[ref]
            if isinstance(outcome, Exception):
                errors[node.key] = lost(outcome)
            elif "error" in outcome:
                errors[node.key] = outcome["error"]
            else:
                built[node.key] = _load(node, cache)
            if on_built:
                on_built(node)
        return built, errors

    def measure(self, jobs: list[MeasureJob], on_result: OnResult, references: tuple[Path, ...] = ()) -> None:
        from edgeopt.core.environment import provenance

        self.connect()
        references = tuple(Path(r).resolve() for r in references)
        pending = {}
        for job in jobs:
            artifact = job.candidate.artifact.model_copy()
            artifact.path = Path(artifact.path).resolve()  # the same path on every node
            job = MeasureJob(job.id, type(job.candidate)(artifact, job.candidate.runtime, job.candidate.profile,
                                                         job.candidate.key), job.config)
            ref = _measure.options(**measure_options(job.candidate.profile)).remote(job, references)
            pending[ref] = job
        resources = {ref: device_resource(job.candidate.profile) for ref, job in pending.items()}
        for ref, outcome in self._gather(resources):
            job = pending[ref]
            on_result(job, failed_rows(job, lost(outcome), provenance()) if isinstance(outcome, Exception)
                      else outcome)

    def _gather(self, refs: dict[ray.ObjectRef, str | None]) -> Iterator[tuple[ray.ObjectRef, Any]]:
        """Each task's result (or its RayError) as it finishes. A task waiting for a resource that no node
        carries any more (its nodes died) would wait forever: it is cancelled and given as lost."""
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=CHECK_S)
            for ref in ready:
                try:
                    yield ref, ray.get(ref)
                except RayError as error:
                    yield ref, error
            if ready:
                continue
            present = ray.cluster_resources()
            for ref in [r for r in waiting if refs[r] and refs[r] not in present]:
                waiting.remove(ref)
                ray.cancel(ref)
                yield ref, RuntimeError(f"no node of the cluster carries {refs[ref]} any more (its node was lost)")
