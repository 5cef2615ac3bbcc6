"""Which model fits: a Budget, the feasible candidates, Pareto frontiers, one pick per family, what to relax.

Works on `Row`s (edgeopt.results), one per stored measurement, so it is pure and fast: no model is loaded.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Family
from edgeopt.results import Row

Percentile = Literal["mean", "median", "p90", "p95", "p99", "max"]
# Candidates within this many accuracy points of the best feasible one count as "as accurate"; the pick is
# then the fastest of them (a 0.1 pt gain is not worth a 2x slower model on an edge device).
ACCURACY_SLACK_PT = 0.5


class Budget(BaseModel):
    """What a deployment can afford. Unset limits do not constrain; device/batch/family narrow the candidates."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(None, description="device profile the budget is for (cpu-2t, cuda:0, ...)")
    batch: int | None = Field(1, ge=1, description="batch size the latency is measured at")
    percentile: Percentile = Field("p95", description="latency statistic the limit applies to")
    max_latency_ms: float | None = Field(None, gt=0)
    max_memory_mb: float | None = Field(None, gt=0, description="peak RSS (CPU) or peak GPU memory (cuda)")
    max_size_mb: float | None = Field(None, gt=0, description="deployable model file size")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="fraction, e.g. 0.90")
    family: Family | None = None
    model: str | None = Field(None, description="only this config model name")

    def limits(self) -> list[tuple[str, str, float]]:
        """(constraint, row metric, limit) for each limit that is set."""
        pairs = [("max_latency_ms", f"latency:{self.percentile}", self.max_latency_ms),
                 ("max_memory_mb", "memory_mb", self.max_memory_mb),
                 ("max_size_mb", "size_mb", self.max_size_mb),
                 ("min_accuracy", "accuracy", self.min_accuracy)]
        return [(name, metric, limit) for name, metric, limit in pairs if limit is not None]

    def describe(self) -> str:
        parts = [f"{name.replace('_', '-')} {limit:g}" for name, _, limit in self.limits()]
        scope = [f"device {self.device}" if self.device else "any device",
                 f"batch {self.batch}" if self.batch else "any batch", f"latency {self.percentile}"]
        if self.family:
            scope.append(f"family {self.family}")
        if self.model:
            scope.append(f"model {self.model}")
        return ", ".join(scope + (parts or ["no limits"]))


class Blocker(BaseModel):
    """One constraint a candidate misses, and how far the limit would have to move to admit it."""

    constraint: str
    value: float | None
    limit: float
    relax_to: float | None = Field(description="the limit that would admit this candidate")
    relax_by_pct: float | None = Field(description="relative change of the limit, percent")

    def describe(self) -> str:
        flag = "--" + self.constraint.replace("_", "-")
        if self.value is None:
            return f"{flag}: not measured for this candidate"
        return f"{flag} {self.limit:g} -> {_round(self.relax_to)} ({self.relax_by_pct:+.0f}%)"


class NearMiss(BaseModel):
    row: Row
    blockers: list[Blocker]
    distance: float = Field(description="sum of relative violations; smaller = closer to fitting")


class Pick(BaseModel):
    family: str
    row: Row
    reason: str


class Recommendation(BaseModel):
    budget: Budget
    considered: int = Field(description="successful measurements matching device/batch/family")
    failed: int = Field(description="candidates in scope whose build or measurement failed")
    feasible: list[Row]
    picks: list[Pick]
    frontiers: dict[str, list[Row]] = Field(description="Pareto frontier of accuracy vs latency / memory_mb / "
                                                        "size_mb among the candidates considered")
    near_misses: list[NearMiss]

    @property
    def ok(self) -> bool:
        return bool(self.feasible)


def metric(row: Row, name: str) -> float | None:
    if name.startswith("latency:"):
        return row.latency_ms(name.split(":", 1)[1])
    return getattr(row, name)


def in_scope(row: Row, budget: Budget) -> bool:
    return ((budget.device is None or row.device == budget.device)
            and (budget.batch is None or row.batch_size == budget.batch)
            and (budget.family is None or row.family == budget.family)
            and (budget.model is None or row.model == budget.model))


def blockers(row: Row, budget: Budget) -> list[Blocker]:
    found = []
    for name, metric_name, limit in budget.limits():
        value = metric(row, metric_name)
        if value is None:
            found.append(Blocker(constraint=name, value=None, limit=limit, relax_to=None, relax_by_pct=None))
            continue
        too_low = name.startswith("min_")
        if (value < limit) if too_low else (value > limit):
            found.append(Blocker(constraint=name, value=value, limit=limit, relax_to=value,
                                 relax_by_pct=100 * (value - limit) / limit))
    return found


def pareto(rows: list[Row], cost: str) -> list[Row]:
    """Rows no other row beats on both lower `cost` and higher accuracy, cheapest first."""
    scored = [(metric(r, cost), r.accuracy, r) for r in rows]
    scored = [s for s in scored if s[0] is not None and s[1] is not None]
    scored.sort(key=lambda s: (s[0], -s[1]))
    frontier, best = [], -1.0
    for _, accuracy, row in scored:
        if accuracy > best:
            frontier.append(row)
            best = accuracy
    return frontier


def pick_reason(row: Row, pool: list[Row], budget: Budget, best_accuracy: float) -> str:
    latency = row.latency_ms(budget.percentile)
    facts = [f"{budget.percentile} {latency:.3g} ms at batch {row.batch_size} on {row.device}"]
    if row.accuracy is not None:
        facts.append(f"accuracy {row.accuracy:.2%}")
    if row.size_mb is not None:
        facts.append(f"{row.size_mb:.3g} MB file")
    if row.memory_mb is not None:
        facts.append(f"{row.memory_mb:.0f} MB peak memory")
    return (f"fastest of the {len(pool)} feasible {row.family} candidate(s) within {ACCURACY_SLACK_PT} pt of the "
            f"best feasible accuracy ({best_accuracy:.2%}): " + ", ".join(facts))


def recommend(rows: list[Row], budget: Budget, max_near_misses: int = 5) -> Recommendation:
    scope = [r for r in rows if in_scope(r, budget)]
    ok = [r for r in scope if r.ok and r.latency_ms(budget.percentile) is not None]
    feasible = sorted((r for r in ok if not blockers(r, budget)),
                      key=lambda r: (r.latency_ms(budget.percentile), -(r.accuracy or 0)))
    picks = []
    for family in sorted({r.family for r in feasible}):
        pool = [r for r in feasible if r.family == family]
        best = max((r.accuracy or 0) for r in pool)
        close = [r for r in pool if (r.accuracy or 0) >= best - ACCURACY_SLACK_PT / 100]
        choice = min(close, key=lambda r: (r.latency_ms(budget.percentile), -(r.accuracy or 0)))
        picks.append(Pick(family=family, row=choice, reason=pick_reason(choice, pool, budget, best)))
    misses = []
    feasible_families = {r.family for r in feasible}
    for row in ok:
        found = blockers(row, budget)
        if found and row.family not in feasible_families:
            distance = sum(abs(b.relax_by_pct) / 100 if b.relax_by_pct is not None else 10.0 for b in found)
            misses.append(NearMiss(row=row, blockers=found, distance=distance))
    misses.sort(key=lambda m: m.distance)
    frontiers = {cost: pareto(ok, cost) for cost in (f"latency:{budget.percentile}", "memory_mb", "size_mb")}
    frontiers = {("latency" if k.startswith("latency") else k): v for k, v in frontiers.items()}
    return Recommendation(budget=budget, considered=len(ok), failed=sum(1 for r in scope if not r.ok),
                          feasible=feasible, picks=picks, frontiers=frontiers, near_misses=misses[:max_near_misses])


def _round(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.4g}" if value < 1 else f"{value:.3g}" if value < 100 else f"{value:.0f}"
