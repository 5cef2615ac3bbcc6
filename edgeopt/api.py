"""The Python API: `Pipeline` (load a config, plan, run, query, recommend, report) plus `Budget` and `gate`.

The CLI is a thin shell over exactly these calls, so anything a command does a CI script can do in Python:

    from edgeopt import Pipeline, Budget, gate

    pipeline = Pipeline("edgeopt.yaml")          # or Pipeline() for the built-in default config
    result = pipeline.run()                      # resumable; result.reports["html"] is the report
    pick = pipeline.recommend(Budget(device="cpu-1t", max_latency_ms=5, min_accuracy=0.9)).picks
    verdict = gate("baseline/report.json", result.reports["json"], max_accuracy_drop=0.5)

`fit("cnn", Budget(device="cpu-1t", max_latency_ms=0.12), time_budget="20m")` searches recipes for the most
accurate model that fits (edgeopt.fit). A finished run needs no config: `load_results("edgeopt-out")` (a results.db, a report.json or their directory)
gives its rows, which `recommend(rows, budget)` and `gate(...)` take as they are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeopt.config import Config, load_config
from edgeopt.fit import FitResult, fit
from edgeopt.gate import GateResult, gate, load_results
from edgeopt.recommend import Budget, Recommendation, check_device, recommend
from edgeopt.report import FORMATS, ReportData, build_report, save_run, write_reports
from edgeopt.results import Row


class Pipeline:
    """A sweep defined by a config (a YAML path, a dict, a Config, or None for the built-in default)."""

    def __init__(self, config: Config | str | Path | dict | None = None, output: str | Path | None = None):
        self.config = load_config(config)
        if output is not None:
            self.config.output = Path(output)

    def select(self, models: list[str]) -> "Pipeline":
        """Keep only these config models (e.g. `edgeopt run -m cnn`)."""
        from edgeopt.core.errors import InvalidInput

        unknown = sorted(set(models) - set(self.config.models))
        if unknown:
            raise InvalidInput(f"model(s) {', '.join(unknown)} not in the config; it has "
                               f"{', '.join(self.config.models)}")
        self.config.models = {k: v for k, v in self.config.models.items() if k in models}
        return self

    @property
    def output(self) -> Path:
        return Path(self.config.output)

    @property
    def store_path(self) -> Path:
        from edgeopt.pipeline import RESULTS_DB

        return self.output / RESULTS_DB

    def plan(self):
        """The candidates this config expands to (nothing is built or measured)."""
        from edgeopt.pipeline import make_plan

        return make_plan(self.config)

    def run(self, jobs: int = 1, progress: Callable | None = None, retry_failed: bool = False,
            report: bool = True):
        """Build, verify, measure and store what the store lacks, then write report.html/.md/.json.

        Returns a RunResult (rows, counts, report paths); `result.exit_code` is 1 when a candidate failed.
        """
        from edgeopt.pipeline import run_sweep

        result = run_sweep(self.config, jobs=jobs, progress=progress, retry_failed=retry_failed)
        if report:
            result.reports = self.write_report(result.rows, notes=result.plan.notes)
        return result

    def results(self, all_runs: bool = False) -> list[Row]:
        """Stored results of this config's candidates (or, with all_runs, everything in the store)."""
        from edgeopt.core.errors import InvalidInput
        from edgeopt.pipeline import plan_rows
        from edgeopt.results import rows_of
        from edgeopt.store import ResultStore

        if not self.store_path.exists():
            raise InvalidInput(f"{self.store_path}: no results yet; run `edgeopt run` first")
        with ResultStore(self.store_path) as store:
            if all_runs:
                return rows_of(store.measurements(latest=True))
            return plan_rows(store, self.plan())

    def recommend(self, budget: Budget, all_runs: bool = False) -> Recommendation:
        """What fits `budget` among the same rows `results(all_runs)` gives (this config's candidates by default)."""
        rows = self.results(all_runs=all_runs)
        check_device(rows, budget)
        return recommend(rows, budget)

    def report(self, budget: Budget | None = None, rows: list[Row] | None = None) -> ReportData:
        """The figures of a report (rows, gains, frontiers, recommendation under `budget` or the config's)."""
        rows = self.results() if rows is None else rows
        return build_report(rows, budget=budget or self.config.budget,
                            config=self.config.model_dump(mode="json", exclude_none=True))

    def write_report(self, rows: list[Row] | None = None, notes: list[str] | None = None,
                     formats: tuple[str, ...] = FORMATS, out_dir: str | Path | None = None,
                     budget: Budget | None = None) -> dict[str, Path]:
        """Write report.html / report.md / report.json (to the output directory by default); returns their paths."""
        data = self.report(budget, rows)
        data.notes = notes or []
        if self.store_path.exists():  # `edgeopt report` re-renders this report from results.db
            save_run(self.store_path, data)
        return write_reports(data, Path(out_dir) if out_dir else self.output, formats)


__all__ = ["Budget", "Config", "FitResult", "GateResult", "Pipeline", "Recommendation", "ReportData", "Row", "fit",
           "gate", "load_config", "load_results", "recommend"]
