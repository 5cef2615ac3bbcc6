"""What a benchmark produces: one `Measurement` per (candidate, batch size), the row the results store keeps.

The pipeline, the recommender and the reports read these; every field is plain data (JSON round-trips).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ArtifactInfo(BaseModel):
    """Which artifact was measured: enough to trace it without opening the directory."""

    model_config = ConfigDict(extra="forbid")
    name: str
    sha256: str
    path: str
    family: str
    format: str
    precision: str
    recipe: list[dict[str, Any]] = Field(default_factory=list)
    parent: str | None = None
    distillation: dict[str, Any] | None = Field(None, description="a distilled student's test accuracy (torch, "
                                                "at the end of training) with its teacher's and the same student's "
                                                "trained without the teacher")
    agreement: bool = Field(False, description="the data set has no labels: accuracy is top-1 agreement with the "
                                               "source model, whose predictions are the reference")

    @classmethod
    def of(cls, artifact) -> "ArtifactInfo":
        summary = artifact.metrics.get("distill") or {}
        keys = ("teacher", "student", "teacher_test_accuracy", "distilled_test_accuracy", "baseline_test_accuracy",
                "distillation_gain", "eval_samples")
        distillation = {k: summary[k] for k in keys if k in summary} or None
        return cls(name=artifact.name, sha256=artifact.sha256, path=str(artifact.path), family=str(artifact.family),
                   format=str(artifact.format), precision=str(artifact.precision), recipe=artifact.recipe,
                   parent=artifact.parent, distillation=distillation,
                   agreement=bool((artifact.dataset or {}).get("reference_labels")))


class LatencyStats(BaseModel):
    """Latency of one batch in milliseconds: order statistics over every timed run, spread, and the interval
    a re-measurement of the median is expected in (from independent rounds)."""

    model_config = ConfigDict(extra="forbid")
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    std: float
    cv: float = Field(description="coefficient of variation, std / mean")
    median_ci_low: float = Field(description="95% interval of the median that a re-measurement falls in: a "
                                             "prediction interval from the medians of `rounds` independent "
                                             "rounds (fresh processes), at least the pooled runs' own CI of "
                                             "the median; with one round, only that CI")
    median_ci_high: float
    rounds: int = Field(1, description="independent rounds (fresh worker processes) the interval is taken over")
    round_medians: list[float] = Field(default_factory=list)
    count: int
    total_seconds: float = Field(description="wall time of the measured runs")
    noisy: bool = Field(description="the interval of the median is wider than the configured share of it "
                                    "(see benchmarks.latency.NOISY_EXPLANATION)")
    unit: Literal["ms"] = "ms"


class Measurement(BaseModel):
    """One candidate (artifact x runtime x device profile) at one batch size.

    A failed candidate (crash, hang, out of memory, load error) is still a Measurement: status "failed"
    with the error, so a sweep records it and goes on.
    """

    model_config = ConfigDict(extra="forbid")
    candidate_id: str
    artifact: ArtifactInfo
    runtime: str
    device: str = Field(description="device profile name (cpu, cpu-1t, edge-1c-512m, cuda:0, ...)")
    emulated: bool = Field(False, description="an edge device emulated on this host (threads, cores, memory cap)")
    batch_size: int
    latency: LatencyStats | None = None
    throughput: float | None = Field(None, description="samples per second at this batch size (batch / mean)")
    peak_rss_mb: float | None = Field(None, description="peak resident memory of the measuring process at this "
                                                        "batch size (interpreter + runtime + model + inference at "
                                                        "this and smaller batch sizes; the accuracy pass apart)")
    gpu_peak_mb: float | None = Field(None, description="peak GPU memory at this batch size, where the runtime "
                                                        "reports it (torch on CUDA); absent otherwise, with a "
                                                        "warning saying why")
    executed_precision: str | None = Field(None, description="the precision the runtime actually computed in "
                                                             "(read back from it; the artifact's label may differ)")
    size_mb: float | None = None
    params: int | None = None
    macs: int | None = Field(None, description="multiply-accumulates per sample (batch 1)")
    accuracy: float | None = None
    accuracy_samples: int | None = None
    fidelity: float | None = Field(None, description="top-1 agreement with the nearest FP32 ancestor")
    fidelity_reference: str | None = Field(None, description="sha256 of the artifact fidelity compares against")
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """The handful of numbers a table shows."""
        lat = self.latency
        return {"candidate": self.candidate_id, "artifact": self.artifact.name, "format": self.artifact.format,
                "precision": self.artifact.precision, "runtime": self.runtime,
                "device": self.device + (" (emulated)" if self.emulated else ""), "batch": self.batch_size,
                "median_ms": lat.median if lat else None, "p95_ms": lat.p95 if lat else None,
                "cv": lat.cv if lat else None, "noisy": lat.noisy if lat else None,
                "throughput": self.throughput, "peak_rss_mb": self.peak_rss_mb, "size_mb": self.size_mb,
                "accuracy": self.accuracy, "fidelity": self.fidelity, "status": self.status, "error": self.error}
