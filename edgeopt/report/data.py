"""The figures every report shows, computed once: rows, what each technique bought, frontiers, failures.

`ReportData` is also the JSON report (every figure, for machines) and what `edgeopt gate` reads back.
A run also keeps its report context (budget, notes, config, which candidates) in results.db, so
`edgeopt report` re-renders exactly the run's report from the database alone.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from edgeopt.core.errors import InvalidInput
from edgeopt.recommend import Budget, NearMiss, Pick, Recommendation, pareto, recommend
from edgeopt.results import Row, rows_of

SCHEMA_VERSION = 1
HOST_KEYS = ("cpu_model", "arch", "logical_cores", "isa", "memory_bytes", "gpus", "python", "git", "versions")
# One rule for colouring an accuracy change everywhere: green when nothing was lost, red beyond this loss.
ACCURACY_LOSS_PT = 1.0
RUN_KEY = "report"  # results.db run_metadata key of the run's report context


class Gain(BaseModel):
    """A candidate against its model's FP32 torch reference at the same device and batch size."""

    candidate_id: str
    model: str
    recipe: str
    runtime: str
    device: str
    batch_size: int
    reference: str = Field(description="candidate id of the FP32 torch-eager reference")
    speedup: float | None = Field(None, description="reference median latency / this median latency")
    accuracy_delta_pt: float | None = Field(None, description="accuracy change in percentage points")
    accuracy_delta_ci_pt: tuple[float, float] | None = Field(
        None, description="95% Wilson interval of this accuracy, minus the reference accuracy, in points")
    size_ratio: float | None = Field(None, description="reference size / this size")
    memory_ratio: float | None = None


class ReportData(BaseModel):
    schema_version: int = SCHEMA_VERSION
    title: str = "edgeopt report"
    generated: str = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    rows: list[Row]
    gains: list[Gain] = Field(default_factory=list)
    frontiers: dict[str, list[str]] = Field(default_factory=dict,
                                            description="'device b<batch>' -> candidate ids on the accuracy vs "
                                                        "median latency frontier")
    budget: Budget | None = Field(None, description="the budget the recommendation and the plots' limits use")
    recommendation: Recommendation | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="skipped runtimes/devices and why")

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    @property
    def ok_rows(self) -> list[Row]:
        return [r for r in self.rows if r.ok]

    def groups(self) -> list[tuple[str, int]]:
        """(device, batch) pairs present, in a stable order."""
        return sorted({(r.device, r.batch_size) for r in self.ok_rows})

    def gain_of(self, row: Row) -> Gain | None:
        return next((g for g in self.gains if g.candidate_id == row.candidate_id
                     and g.batch_size == row.batch_size), None)

    def accuracy_ok(self, gain: Gain) -> bool:
        """Within the budget's minimum accuracy, or (without one) losing at most ACCURACY_LOSS_PT points."""
        row = next(r for r in self.rows if r.candidate_id == gain.candidate_id and r.batch_size == gain.batch_size)
        if self.budget is not None and self.budget.min_accuracy is not None:
            return row.accuracy is not None and row.accuracy >= self.budget.min_accuracy
        return gain.accuracy_delta_pt is not None and gain.accuracy_delta_pt >= -ACCURACY_LOSS_PT

    def agreement_notes(self) -> list[str]:
        """Models measured on data without labels: their 'accuracy' is agreement, and the report says so."""
        return [f"{model}: its data set has no labels, so every accuracy figure of {model} is top-1 agreement with "
                "its FP32 source model (the source's own predictions are the reference; the source scores 100%)"
                for model in sorted({r.model for r in self.rows if r.agreement})]

    def distillations(self) -> list[str]:
        """One sentence per distilled student: its accuracy with the teacher next to the same student trained
        without it, saying plainly when the teacher did not help (a small data set can make it hurt)."""
        lines, seen = [], set()
        for row in self.rows:
            d = row.distillation
            if not d or "baseline_test_accuracy" not in d or (row.model, d.get("student")) in seen:
                continue
            seen.add((row.model, d.get("student")))
            gain = 100 * (d["distilled_test_accuracy"] - d["baseline_test_accuracy"])
            noise = _difference_noise_pt(d["baseline_test_accuracy"], d.get("eval_samples"))
            verdict = ("distillation helped" if gain > noise else
                       f"no clear difference (within the ±{noise:.1f} pt that {d.get('eval_samples')} test samples "
                       "can tell apart)" if gain > -noise else
                       "distillation did NOT help: the student alone was better")
            lines.append(f"{row.model} → {d.get('student')} student: {d['distilled_test_accuracy']:.2%} with the "
                         f"teacher ({d['teacher_test_accuracy']:.2%}), {d['baseline_test_accuracy']:.2%} trained "
                         f"alone ({gain:+.2f} pt, torch, {d.get('eval_samples', '?')} test samples): {verdict}")
        return lines

    def answers(self) -> list["Answer"]:
        """Per family: the pick (or nothing) with its gain over the FP32 model, and the nearest misses."""
        rec = self.recommendation
        if rec is None:
            return []
        families = sorted({r.family for r in self.ok_rows})
        return [Answer(family=family, pick=next((p for p in rec.picks if p.family == family), None),
                       gain=next((self.gain_of(p.row) for p in rec.picks if p.family == family), None),
                       misses=[m for m in rec.near_misses if m.row.family == family]) for family in families]


def limit_name(constraint: str, budget: Budget) -> tuple[str, str]:
    """What a budget limit is called in a report, and its comparison sign: ("p95 latency", "≤")."""
    return {"max_latency_ms": (f"{budget.percentile} latency", "≤"), "max_memory_mb": ("peak memory", "≤"),
            "max_size_mb": ("file size", "≤"), "min_accuracy": ("accuracy", "≥")}[constraint]


def _difference_noise_pt(accuracy: float, samples: int | None) -> float:
    """Half-width in points of the 95% interval of the difference of two accuracies near `accuracy`, each on
    `samples` test samples: a smaller difference between two students is not evidence either way."""
    if not samples:
        return 0.0
    return 100 * 1.96 * (2 * max(accuracy * (1 - accuracy), 1e-4) / samples) ** 0.5


class Answer(BaseModel):
    family: str
    pick: Pick | None
    gain: Gain | None
    misses: list[NearMiss]


def is_reference(row: Row) -> bool:
    """The FP32 torch-eager model with no optimisation step: what every gain is measured against."""
    return row.runtime == "torch" and row.precision == "fp32" and not row.steps


def compute_gains(rows: list[Row]) -> list[Gain]:
    references = {(r.model, r.device, r.batch_size): r for r in rows if r.ok and is_reference(r)}
    gains = []
    for row in rows:
        ref = references.get((row.model, row.device, row.batch_size))
        if not row.ok or ref is None or ref is row:
            continue
        gains.append(Gain(
            candidate_id=row.candidate_id, model=row.model, recipe=row.recipe, runtime=row.runtime,
            device=row.device, batch_size=row.batch_size, reference=ref.candidate_id,
            speedup=_ratio(ref.latency_ms("median"), row.latency_ms("median")),
            accuracy_delta_pt=(100 * (row.accuracy - ref.accuracy)
                               if row.accuracy is not None and ref.accuracy is not None else None),
            accuracy_delta_ci_pt=(tuple(100 * (bound - ref.accuracy) for bound in row.accuracy_ci)
                                  if row.accuracy_ci and ref.accuracy is not None else None),
            size_ratio=_ratio(ref.size_mb, row.size_mb), memory_ratio=_ratio(ref.memory_mb, row.memory_mb)))
    return gains


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def build_report(rows: list[Row], budget: Budget | None = None, provenance: dict[str, Any] | None = None,
                 config: dict[str, Any] | None = None, notes: list[str] | None = None,
                 title: str = "edgeopt report", generated: str | None = None) -> ReportData:
    rows = sorted(rows, key=lambda r: (r.model, r.device, r.batch_size, r.recipe, r.runtime))
    frontiers = {}
    for device, batch in sorted({(r.device, r.batch_size) for r in rows if r.ok}):
        group = [r for r in rows if r.ok and r.device == device and r.batch_size == batch]
        frontiers[f"{device} b{batch}"] = [r.candidate_id for r in pareto(group, "latency:median")]
    if provenance is None:  # the machine, not one measurement's settings
        first = next((r.provenance for r in rows if r.provenance), {})
        provenance = {k: v for k, v in first.items() if k in HOST_KEYS}
    return ReportData(title=title, rows=rows, gains=compute_gains(rows), frontiers=frontiers, budget=budget,
                      recommendation=recommend(rows, budget) if budget else None, provenance=provenance,
                      config=config or {}, notes=notes or [],
                      **({"generated": generated} if generated else {}))


class RunContext(BaseModel):
    """What a run's report holds beyond its measurements, kept in results.db (run_metadata)."""

    title: str
    generated: str
    budget: Budget | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    candidates: list[str] = Field(default_factory=list, description="candidate ids the run's report shows")


def save_run(store_path: str | Path, data: ReportData) -> None:
    """Keep the report's context beside the results, so `edgeopt report` gives the run's report again."""
    from edgeopt.store import ResultStore

    context = RunContext(title=data.title, generated=data.generated, budget=data.budget, config=data.config,
                         notes=data.notes, candidates=sorted({r.candidate_id for r in data.rows}))
    with ResultStore(store_path) as store:
        store.set_meta(RUN_KEY, context.model_dump(mode="json"))


def report_from_store(store_path: str | Path, title: str | None = None) -> ReportData:
    """The last run's report from results.db alone; a database without a run context gives every newest row."""
    from edgeopt.store import ResultStore

    with ResultStore(store_path) as store:
        raw = store.get_meta(RUN_KEY)
        if raw is None:
            return build_report(rows_of(store.measurements(latest=True)), title=title or "edgeopt report")
        context = RunContext.model_validate(raw)
        rows = rows_of(store.measurements(candidate_id=context.candidates, latest=True)) if context.candidates \
            else []
    return build_report(rows, budget=context.budget, config=context.config, notes=context.notes,
                        title=title or context.title, generated=context.generated)


def load_report(path: str | Path) -> ReportData:
    """A JSON report written by `edgeopt run`/`edgeopt report`; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such report file (write one with `edgeopt report --format json`)")
    try:
        return ReportData.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as error:
        raise InvalidInput(f"{path}: not an edgeopt JSON report: {str(error).splitlines()[0]}") from None
