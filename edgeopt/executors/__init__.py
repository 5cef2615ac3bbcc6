"""Executors: where a sweep's builds and measurements run. `local` (the default, needs nothing) or `ray`.

`edgeopt run`, `edgeopt bench` and `edgeopt fit` plan, store and report the same way whatever the executor; only
these calls differ, so a sweep moves from a laptop to a cluster by one setting (`--executor ray` or `executor:` in
the config) and gives the same candidates. Each kind is one module; `get_executor` is the one way to make one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from edgeopt.core.errors import BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    from edgeopt.benchmarks.profiles import DeviceProfile
    from edgeopt.benchmarks.results import Measurement
    from edgeopt.benchmarks.sweep import BenchConfig, Candidate
    from edgeopt.config import ExecutorConfig
    from edgeopt.core.artifacts import Artifact
    from edgeopt.pipeline import Node

KINDS = ("local", "ray")
RAY_MISSING = "the ray executor needs Ray, which is not installed: pip install 'edgeopt[ray]'"


@dataclass(frozen=True)
class MeasureJob:
    """One candidate to measure at `config.batch_sizes`; its rows are stored under `id`."""

    id: str
    candidate: "Candidate"
    config: "BenchConfig"


OnBuilt = Callable[["Node"], None]
OnResult = Callable[[MeasureJob, list["Measurement"]], None]


class Executor(Protocol):
    """Runs a sweep's work; the caller plans before and stores after (one transaction per candidate)."""

    name: str

    def host(self, profile: "DeviceProfile") -> dict[str, Any] | None:
        """The host description measurements under `profile` are keyed by (None: this machine's)."""

    def build(self, nodes: list["Node"], cache: Path, progress: Callable | None = None,
              on_built: OnBuilt | None = None) -> tuple[dict[str, "Artifact"], dict[str, str]]:
        """Build every node, parents first (given in that order); artifacts and errors by node key."""

    def measure(self, jobs: list[MeasureJob], on_result: OnResult, references: tuple[Path, ...] = ()) -> None:
        """Measure every job, calling `on_result` here in the driver as each candidate's rows arrive (a failure
        is failed rows, never an exception, so the sweep goes on)."""


def get_executor(config: "ExecutorConfig | None" = None, jobs: int = 1) -> Executor:
    """The executor a config names; `jobs` is the local executor's build processes (Ray schedules by resources)."""
    from edgeopt.config import ExecutorConfig

    config = config or ExecutorConfig()
    if config.kind == "ray":
        try:
            from .ray import RayExecutor
        except ImportError as error:
            if error.name != "ray" and not str(error.name or "").startswith("ray."):
                raise
            raise BackendUnavailable(RAY_MISSING) from None
        return RayExecutor(config.address)
    if config.address is not None:
        raise InvalidInput(f"executor address {config.address!r}: an address goes with the ray executor "
                           "(--executor ray --ray-address ...)")
    from .local import LocalExecutor

    return LocalExecutor(jobs)


def prepared_inputs(directory: Path) -> Callable[["Artifact", "BenchConfig"], tuple[str, Path]]:
    """`inputs_for(artifact, config)`: real test inputs prepared into `directory`, once per preprocessing."""
    from edgeopt.benchmarks.sweep import inputs_key, prepare_inputs

    inputs: dict[str, Path] = {}

    def inputs_for(artifact, config) -> tuple[str, Path]:
        key = inputs_key(artifact, config)
        if key not in inputs:
            inputs[key] = prepare_inputs(artifact, config, directory)
        return key, inputs[key]

    return inputs_for


def measure_one(job: MeasureJob, inputs_for, lineage, predictions: dict, host: dict) -> list["Measurement"]:
    """One candidate measured in this process's isolated worker subprocesses (locally and inside a Ray task
    alike); an unexpected error becomes the candidate's failed rows."""
    from edgeopt.benchmarks.sweep import measure_candidate
    from edgeopt.pipeline import _error_text

    try:
        rows = measure_candidate(job.candidate, job.config, lambda artifact: inputs_for(artifact, job.config),
                                 lineage, predictions, host, job.config.timeout_s)
    except Exception as error:  # noqa: BLE001 - recorded as the candidate's failure; the sweep goes on
        return failed_rows(job, _error_text(error), host)
    return [m.model_copy(update={"candidate_id": job.id}) for m in rows]


def failed_rows(job: MeasureJob, error: str, host: dict) -> list["Measurement"]:
    """A failed row per batch size: the candidate could not be measured (why is in `error`)."""
    from edgeopt.benchmarks.results import ArtifactInfo, Measurement

    c = job.candidate
    return [Measurement(candidate_id=job.id, artifact=ArtifactInfo.of(c.artifact), runtime=c.runtime,
                        device=c.profile.name, emulated=c.profile.emulated, batch_size=b, status="failed",
                        error=error, provenance=host) for b in job.config.batch_sizes]
