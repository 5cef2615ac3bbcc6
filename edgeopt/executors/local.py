"""The local executor (default): builds in this process or a pool of `jobs` processes, measurements one at a time.

Measurements are serialised so they do not disturb each other; each runs in its own isolated worker subprocess.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from . import MeasureJob, OnBuilt, OnResult, measure_one, prepared_inputs


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    def host(self, profile) -> None:
        return None

    def build(self, nodes, cache: Path, progress: Callable | None = None, on_built: OnBuilt | None = None):
        from edgeopt.pipeline import build_all

        return build_all(nodes, cache, jobs=self.jobs, progress=progress if self.jobs <= 1 else None,
                         on_built=on_built)

    def measure(self, jobs: list[MeasureJob], on_result: OnResult, references: tuple[Path, ...] = ()) -> None:
        from edgeopt.benchmarks.sweep import Lineage
        from edgeopt.core.environment import provenance

        lineage = Lineage.around([job.candidate.artifact for job in jobs], references)
        host = provenance()
        predictions: dict = {}  # FP32 parents' predictions, reused for their children's fidelity
        with tempfile.TemporaryDirectory(prefix="edgeopt-inputs-") as tmp:
            inputs_for = prepared_inputs(Path(tmp))
            for job in jobs:
                on_result(job, measure_one(job, inputs_for, lineage, predictions, host))
