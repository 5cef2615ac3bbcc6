"""Which model fits: a Budget, the feasible candidates, Pareto frontiers, one pick per family, what to relax.

Works on `Row`s (edgeopt.results), one per stored measurement, so it is pure and fast: no model is loaded.
Accuracies of different families are measured on different data sets and never compared with each other:
frontiers, picks and nearest misses are all per family.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from edgeopt.core.artifacts import Family
from edgeopt.core.errors import InvalidInput
from edgeopt.core.strict import StrictModel
from edgeopt.results import Row

Percentile = Literal["mean", "median", "p90", "p95", "p99", "max"]
# The one default a budget's latency limit applies to, for recommend, gate and the config alike.
DEFAULT_PERCENTILE: Percentile = "p95"
DEFAULT_BATCH = 1
# Candidates within this many accuracy points of the best feasible one (beyond sampling noise) count as "as
# accurate"; the pick is then the fastest of them (a 0.1 pt gain is not worth a 2x slower model on an edge device).
ACCURACY_SLACK_PT = 0.5
NEAR_MISSES_PER_FAMILY = 3
# The unit a relaxation is stated in, per limit: what a user types on the command line.
UNITS = {"max_latency_ms": "ms", "max_memory_mb": "MB", "max_size_mb": "MB", "min_accuracy": "pt"}


class Budget(StrictModel):
    """What a deployment can afford. Unset limits do not constrain; device/batch/family/model/recipe narrow the
    candidates the limits apply to."""

    device: str | None = Field(None, description="device profile the budget is for (cpu-2t, cuda:0, ...)")
    batch: int | None = Field(DEFAULT_BATCH, ge=1, description="batch size the latency is measured at")
    percentile: Percentile = Field(DEFAULT_PERCENTILE, description="latency statistic the limit applies to")
    max_latency_ms: float | None = Field(None, gt=0)
    max_memory_mb: float | None = Field(None, gt=0, description="peak RSS (CPU) or peak GPU memory (cuda)")
    max_size_mb: float | None = Field(None, gt=0, description="deployable model file size")
    min_accuracy: float | None = Field(None, ge=0, le=1, description="fraction, e.g. 0.90")
    family: Family | None = None
    model: str | None = Field(None, description="only this config model name")
    recipe: str | None = Field(None, description="only this config recipe name")

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
        scope += [f"{name} {value}" for name, value in (("family", self.family), ("model", self.model),
                                                       ("recipe", self.recipe)) if value]
        return ", ".join(scope + (parts or ["no limits"]))


class Margin(BaseModel):
    """One limit of a budget against one candidate: its value, the limit, and the distance in the limit's unit."""

    constraint: str
    value: float | None
    limit: float
    unit: str = Field(description="ms, MB or pt (accuracy points)")
    headroom: float | None = Field(description="how far inside the limit, in `unit`; negative: beyond it by this much")

    @property
    def ok(self) -> bool:
        return self.headroom is not None and self.headroom >= 0

    @property
    def relative_miss(self) -> float:
        """How far beyond the limit, relative to it (0 when met; 10 when not measured, i.e. far)."""
        if self.headroom is None:
            return 10.0
        return max(0.0, -self.headroom / (100 * self.limit if self.unit == "pt" else self.limit))

    def describe(self) -> str:
        flag = "--" + self.constraint.replace("_", "-")
        if self.value is None:
            return f"{flag}: not measured for this candidate"
        shown = f"{self.value:.4g}" if self.unit == "pt" else _round(self.value)
        if self.ok:
            return f"{flag} {self.limit:g}: {shown} ({_amount(self.headroom, self.unit)} to spare)"
        change = -self.headroom if self.constraint.startswith("max_") else self.headroom
        return f"{flag} {self.limit:g} -> {shown} ({change:+.3g} {self.unit})"


class NearMiss(BaseModel):
    """A candidate of a family with nothing feasible, the limits it misses, and how close it came."""

    row: Row
    blockers: list[Margin]
    distance: float = Field(description="sum of relative violations; smaller = closer to fitting")


class Pick(BaseModel):
    """The recommended candidate of one family, why, and its figures against every limit of the budget."""

    family: str
    row: Row
    reason: str
    margins: list[Margin] = Field(description="each budget limit against this pick (all met)")


class Recommendation(BaseModel):
    """What `recommend` found under a budget; `ok` when something fits."""

    budget: Budget
    considered: int = Field(description="successful measurements matching device/batch/family/model/recipe")
    failed: int = Field(description="candidates in scope whose build or measurement failed")
    feasible: list[Row]
    picks: list[Pick] = Field(description="one per family with a feasible candidate")
    frontiers: dict[str, dict[str, list[Row]]] = Field(
        description="family -> cost (latency / memory_mb / size_mb) -> Pareto frontier of accuracy vs that cost")
    near_misses: list[NearMiss] = Field(description="for each family with nothing feasible, its nearest misses")

    @computed_field
    @property
    def ok(self) -> bool:
        return bool(self.feasible)

    def on_frontier(self, row: Row) -> bool:
        return any(row.candidate_id == r.candidate_id and row.batch_size == r.batch_size
                   for rows in self.frontiers.get(row.family, {}).values() for r in rows)


def metric(row: Row, name: str) -> float | None:
    """A row's figure by name: `latency:<statistic>` or a Row field (memory_mb, size_mb, accuracy)."""
    if name.startswith("latency:"):
        return row.latency_ms(name.split(":", 1)[1])
    return getattr(row, name)


def in_scope(row: Row, budget: Budget) -> bool:
    """Whether the budget's device/batch/family/model/recipe cover this row."""
    return ((budget.device is None or row.device == budget.device)
            and (budget.batch is None or row.batch_size == budget.batch)
            and all(value is None or getattr(row, name) == value
                    for name, value in (("family", budget.family), ("model", budget.model),
                                        ("recipe", budget.recipe))))


def check_device(rows: list[Row], budget: Budget) -> None:
    """A budget for a device nothing was measured on is a typo or a missing run: say which devices there are."""
    known = sorted({r.device for r in rows})
    if budget.device is not None and budget.device not in known:
        raise InvalidInput(f"device {budget.device!r}: no results for it; measured devices: "
                           f"{', '.join(known) or 'none'}")


def margins(row: Row, budget: Budget) -> list[Margin]:
    """Every limit of the budget against this candidate, in the limit's unit."""
    found = []
    for name, metric_name, limit in budget.limits():
        value = metric(row, metric_name)
        unit = UNITS[name]
        if value is None:
            headroom = None
        elif unit == "pt":
            headroom = 100 * (value - limit)
        else:
            headroom = limit - value
        found.append(Margin(constraint=name, value=value, limit=limit, unit=unit, headroom=headroom))
    return found


def blockers(row: Row, budget: Budget) -> list[Margin]:
    """The limits this candidate misses (or was not measured for)."""
    return [m for m in margins(row, budget) if not m.ok]


def accuracy_noise_pt(a: Row, b: Row) -> float:
    """Half-width in points of the 95% interval of the difference of two accuracies (0 without sample counts).

    The two Wilson half-widths combined in quadrature: a smaller difference may be sampling noise alone.
    """
    halves = [(ci[1] - ci[0]) / 2 for ci in (a.accuracy_ci, b.accuracy_ci) if ci is not None]
    return 100 * math.sqrt(sum(h * h for h in halves))


def as_accurate(row: Row, best: Row, slack_pt: float = ACCURACY_SLACK_PT) -> bool:
    """True unless `best` is more than `slack_pt` points more accurate beyond sampling noise."""
    if row.accuracy is None or best.accuracy is None:
        return row.accuracy is None and best.accuracy is None
    return 100 * (best.accuracy - row.accuracy) <= slack_pt + accuracy_noise_pt(row, best) + 1e-9


def pareto(rows: list[Row], cost: str) -> list[Row]:
    """Rows no other row beats on both lower `cost` and higher accuracy, cheapest first.

    Only meaningful within one family (one data set): callers group first."""
    scored = [(metric(r, cost), r.accuracy, r) for r in rows]
    scored = [s for s in scored if s[0] is not None and s[1] is not None]
    scored.sort(key=lambda s: (s[0], -s[1]))
    frontier, best = [], -1.0
    for _, accuracy, row in scored:
        if accuracy > best:
            frontier.append(row)
            best = accuracy
    return frontier


def pick_reason(row: Row, pool: list[Row], budget: Budget, best: Row) -> str:
    latency = row.latency_ms(budget.percentile)
    facts = [f"{budget.percentile} {latency:.3g} ms at batch {row.batch_size} on {row.device}"]
    if row.accuracy is not None:
        facts.append(f"accuracy {row.accuracy:.2%}")
    if row.size_mb is not None:
        facts.append(f"{row.size_mb:.3g} MB file")
    if row.memory_mb is not None:
        facts.append(f"{row.memory_mb:.0f} MB peak memory")
    if best.accuracy is None:
        return f"fastest of the {len(pool)} feasible {row.family} candidate(s): " + ", ".join(facts)
    return (f"fastest of the {len(pool)} feasible {row.family} candidate(s) not shown to be more than "
            f"{ACCURACY_SLACK_PT} pt less accurate (95% CI) than the best ({best.accuracy:.2%}): " + ", ".join(facts))


def _pick(family: str, pool: list[Row], budget: Budget) -> Pick:
    speed = lambda r: (r.latency_ms(budget.percentile), -(r.accuracy or 0))  # noqa: E731
    best = max(pool, key=lambda r: (r.accuracy or 0, -r.latency_ms(budget.percentile)))
    choice = min((r for r in pool if as_accurate(r, best)), key=speed)
    return Pick(family=family, row=choice, reason=pick_reason(choice, pool, budget, best),
                margins=margins(choice, budget))


def recommend(rows: list[Row], budget: Budget, near_misses: int = NEAR_MISSES_PER_FAMILY) -> Recommendation:
    """The feasible candidates (fastest first), one pick per family, per-family Pareto frontiers, and for every
    family with nothing feasible its `near_misses` nearest misses with what to relax."""
    scope = [r for r in rows if in_scope(r, budget)]
    ok = [r for r in scope if r.ok and r.latency_ms(budget.percentile) is not None]
    feasible = sorted((r for r in ok if not blockers(r, budget)),
                      key=lambda r: (r.latency_ms(budget.percentile), -(r.accuracy or 0)))
    families = sorted({r.family for r in ok})
    picks, misses, frontiers = [], [], {}
    for family in families:
        members = [r for r in ok if r.family == family]
        frontiers[family] = {("latency" if cost.startswith("latency") else cost): pareto(members, cost)
                             for cost in (f"latency:{budget.percentile}", "memory_mb", "size_mb")}
        pool = [r for r in feasible if r.family == family]
        if pool:
            picks.append(_pick(family, pool, budget))
            continue
        missed = [NearMiss(row=r, blockers=b, distance=sum(m.relative_miss for m in b))
                  for r in members for b in [blockers(r, budget)]]
        misses += sorted(missed, key=lambda m: m.distance)[:near_misses]
    return Recommendation(budget=budget, considered=len(ok), failed=sum(1 for r in scope if not r.ok),
                          feasible=feasible, picks=picks, frontiers=frontiers, near_misses=misses)


def _amount(value: float, unit: str) -> str:
    return f"{value:.3g} {unit}" if unit == "pt" else f"{_round(value)} {unit}"


def _round(value: float | None) -> str:
    if value is None:
        return "?"
    magnitude = abs(value)
    return f"{value:.4g}" if magnitude < 1 else f"{value:.3g}" if magnitude < 100 else f"{value:.0f}"
