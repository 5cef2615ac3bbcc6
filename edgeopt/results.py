"""Results as flat, typed rows: one `Row` per stored Measurement, what recommend, reports and the gate read.

A candidate id is `model/recipe/runtime/device#hash` (one artifact on one runtime under one device profile,
measured at each batch size). The part before `#` plus the batch size is the stable key a CI gate matches
across runs; the hash changes whenever anything that shapes the result changes (recipe parameters,
input model, measurement settings), so a changed candidate is re-measured instead of resumed.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from edgeopt.benchmarks.results import Measurement


def candidate_id(model: str, recipe: str, runtime: str, device: str, digest: str) -> str:
    return f"{model}/{recipe}/{runtime}/{device}#{digest[:12]}"


def candidate_key(candidate: str) -> str:
    """The stable part of a candidate id (what a baseline and a current run are matched on, with the batch)."""
    return candidate.split("#", 1)[0]


def describe_step(step: dict[str, Any]) -> str:
    """A recipe step as one short string, e.g. `quantize(int8, static)`; keeps only the informative values."""
    name = step.get("step", "?")
    values = [f"{v}" if k in ("precision", "mode", "student", "format", "method") else f"{k}={v}"
              for k, v in step.items()
              if k not in ("step", "finetune", "train", "history") and v not in (None, False, [], {})
              and not isinstance(v, (dict, list))]
    return f"{name}({', '.join(values[:4])})" if values else name


class Row(BaseModel):
    """One measurement, flattened: what a table row, a plot point or a gate check needs."""

    candidate_id: str
    model: str
    recipe: str
    family: str
    format: str
    precision: str
    runtime: str
    device: str
    emulated: bool = False
    batch_size: int
    latency: dict[str, float] = Field(default_factory=dict, description="ms: mean, median, p90, p95, p99, ...")
    median_ci_low: float | None = None
    median_ci_high: float | None = None
    noisy: bool = False
    throughput: float | None = None
    memory_mb: float | None = Field(None, description="peak GPU memory on cuda devices, else peak RSS")
    size_mb: float | None = None
    params: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    accuracy_samples: int | None = None
    fidelity: float | None = None
    status: str = "ok"
    error: str | None = None
    steps: list[str] = Field(default_factory=list, description="the recipe, one short string per step")
    distillation: dict[str, Any] | None = Field(None, description="a distilled student's accuracy with the teacher "
                                                                  "and trained alone (see ArtifactInfo)")
    agreement: bool = Field(False, description="accuracy is top-1 agreement with the source model (no labels)")
    sha256: str = ""
    artifact_path: str | None = Field(None, description="where the measured artifact is (what to deploy)")
    parent: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    created: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> str:
        return f"{candidate_key(self.candidate_id)}/b{self.batch_size}"

    @property
    def label(self) -> str:
        return f"{self.model}/{self.recipe} {self.runtime}"

    @property
    def accuracy_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the accuracy (fractions), from the number of samples it was measured on."""
        if self.accuracy is None or not self.accuracy_samples:
            return None
        from edgeopt.core.stats import wilson_interval

        return wilson_interval(self.accuracy, self.accuracy_samples)

    def latency_ms(self, statistic: str = "median") -> float | None:
        return self.latency.get("median" if statistic == "p50" else statistic)

    @classmethod
    def of(cls, m: Measurement) -> "Row":
        model, recipe = _names(m)
        lat = m.latency
        latency = {k: getattr(lat, k) for k in ("mean", "median", "p90", "p95", "p99", "min", "max", "std", "cv")} \
            if lat else {}
        memory = m.gpu_peak_mb if m.device.startswith("cuda") and m.gpu_peak_mb is not None else m.peak_rss_mb
        return cls(candidate_id=m.candidate_id, model=model, recipe=recipe, family=m.artifact.family,
                   format=m.artifact.format, precision=m.artifact.precision, runtime=m.runtime, device=m.device,
                   emulated=m.emulated, batch_size=m.batch_size, latency=latency,
                   median_ci_low=lat.median_ci_low if lat else None, median_ci_high=lat.median_ci_high if lat else None,
                   noisy=bool(lat and lat.noisy), throughput=m.throughput, memory_mb=memory, size_mb=m.size_mb,
                   params=m.params, macs=m.macs, accuracy=m.accuracy, accuracy_samples=m.accuracy_samples,
                   fidelity=m.fidelity, status=m.status, error=m.error,
                   steps=[describe_step(s) for s in m.artifact.recipe if s.get("step") != "train"],
                   distillation=m.artifact.distillation, agreement=m.artifact.agreement,
                   sha256=m.artifact.sha256, artifact_path=m.artifact.path, parent=m.artifact.parent,
                   provenance=m.provenance, created=m.created)


def _names(m: Measurement) -> tuple[str, str]:
    """Model and recipe names from a pipeline candidate id; other ids fall back to the artifact name."""
    parts = candidate_key(m.candidate_id).split("/")
    if len(parts) == 4:
        return parts[0], parts[1]
    return m.artifact.name, "-"


def rows_of(measurements: list[Measurement], latest_only: bool = True) -> list[Row]:
    """Rows, keeping only the newest measurement per stable key (older hashes are superseded runs)."""
    rows = [Row.of(m) for m in measurements]
    if not latest_only:
        return rows
    newest: dict[str, Row] = {}
    for row in rows:
        kept = newest.get(row.key)
        if kept is None or row.created >= kept.created:
            newest[row.key] = row
    return list(newest.values())
