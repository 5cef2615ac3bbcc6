"""`edgeopt init | run | recommend | report | gate | schema`: thin shells over edgeopt.api."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgeopt.recommend import DEFAULT_BATCH, DEFAULT_PERCENTILE

from .executor import EXECUTOR_OPTION, RAY_ADDRESS_OPTION, executor_config
from .output import DEFAULT_OUTPUT, JSON_OPTION_HELP, OUTPUT_HELP, RESULTS_HELP, console, console_err, emit


# ---------------------------------------------------------------- helpers


def _budget(**limits):
    from pydantic import ValidationError

    from edgeopt.config import format_validation_error
    from edgeopt.core.errors import InvalidInput
    from edgeopt.recommend import Budget

    try:
        return Budget(**limits)
    except ValidationError as error:
        raise InvalidInput(f"budget: {format_validation_error(error, Budget)}") from None


def _fmt(value, spec: str = "{:.3g}") -> str:
    return "-" if value is None else spec.format(value)


# ---------------------------------------------------------------- commands


def init_command(
    path: Path = typer.Argument(Path("edgeopt.yaml"), help="Where to write the starter config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Write a commented starter config (the built-in default) to edit for your models and devices."""
    from edgeopt.config import DEFAULT_CONFIG
    from edgeopt.core.errors import InvalidInput

    if path.exists() and not force:
        raise InvalidInput(f"{path}: already exists; pass --force to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEFAULT_CONFIG, path)
    emit({"path": str(path)}, as_json,
         lambda data: console.print(f"wrote {data['path']}; check it with `edgeopt run --config {data['path']} "
                                    "--dry-run`"))


def run_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (default: the built-in one)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help=OUTPUT_HELP + " Default: the config's."),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Only this config model (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan of candidates; build nothing."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel build processes (measurements stay serial)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Measure candidates that failed before again."),
    executor: Optional[str] = EXECUTOR_OPTION,
    ray_address: Optional[str] = RAY_ADDRESS_OPTION,
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Run the sweep: build every candidate (cached), verify, measure, store, and write the reports.

    Resumable: run it again after an interruption and finished candidates are not redone. Exit status 1
    when some candidates failed (they are in the report with their errors).
    """
    from edgeopt.api import Pipeline
    from edgeopt.core.progress import progress_bars

    pipeline = Pipeline(config, output=output)
    pipeline.config.executor = executor_config(executor, ray_address, pipeline.config.executor)
    if models:
        pipeline.select(models)
    if dry_run:
        plan = pipeline.plan()
        data = {"output": str(pipeline.output), "candidates": plan.describe(), "notes": plan.notes,
                "build_steps": len(plan.nodes)}

        def render(data):
            table = Table(title=f"plan: {len(data['candidates'])} candidates, {data['build_steps']} build steps")
            for column in ("model", "recipe", "runtime", "device", "batches", "build"):
                table.add_column(column)
            for c in data["candidates"]:
                table.add_row(c["model"], c["recipe"], c["runtime"], c["device"],
                              ",".join(map(str, c["batch_sizes"])), " → ".join(c["build"]))
            console.print(table)
            for note in data["notes"]:
                console.print(f"[yellow]note:[/] {escape(note)}")

        emit(data, as_json, render)
        return
    with progress_bars(enabled=not as_json) as progress:
        result = pipeline.run(jobs=jobs, progress=progress, retry_failed=retry_failed)
    summary = result.summary()

    def render(data):
        failed = f", [red]{data['failed']} failed[/]" if data["failed"] else ""
        console.print(f"{data['candidates']} candidates: {data['measured']} measured, {data['resumed']} already "
                      f"stored{failed} ({data['seconds']:.0f} s)")
        for note in data["notes"]:
            console.print(f"[yellow]note:[/] {escape(note)}")
        for fmt, path in data["reports"].items():
            console.print(f"report ({fmt}): {path}")

    emit(summary, as_json, render)
    raise typer.Exit(result.exit_code)


def recommend_command(
    device: Optional[str] = typer.Option(None, help="Device profile the budget is for (e.g. cpu-2t)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Latency limit in ms at --percentile."),
    percentile: str = typer.Option(DEFAULT_PERCENTILE, help="Latency statistic: mean, median, p90, p95, p99, max."),
    batch: int = typer.Option(DEFAULT_BATCH, help="Batch size the latency limit applies to."),
    max_memory_mb: Optional[float] = typer.Option(None, help="Peak memory limit (RSS on CPU, GPU memory on cuda)."),
    max_size_mb: Optional[float] = typer.Option(None, help="Model file size limit."),
    min_accuracy: Optional[float] = typer.Option(
        None, "--min-accuracy", "--min-agreement", help="Minimum accuracy as a fraction (0.90); for a model "
        "measured without labels it is top-1 agreement with its source model, so say --min-agreement."),
    family: Optional[str] = typer.Option(None, help="Only this family: cnn, lstm or bert."),
    model: Optional[str] = typer.Option(None, help="Only this config model name."),
    recipe: Optional[str] = typer.Option(None, help="Only this config recipe name."),
    results: Path = typer.Option(DEFAULT_OUTPUT, help=RESULTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Which candidate fits a budget: the feasible ones, the Pareto frontier, one pick per family with the
    reason and its artifact, and for families where nothing fits, the nearest misses and what to relax.

    Exit status 1 when nothing fits."""
    from edgeopt.gate import load_results
    from edgeopt.recommend import check_device, recommend

    budget = _budget(device=device, max_latency_ms=max_latency_ms, percentile=percentile, batch=batch,
                     max_memory_mb=max_memory_mb, max_size_mb=max_size_mb, min_accuracy=min_accuracy,
                     family=family, model=model, recipe=recipe)
    rows = load_results(results)
    check_device(rows, budget)
    rec = recommend(rows, budget)

    def render(_):
        console.print(f"budget: {escape(budget.describe())}: {rec.considered} candidates considered, "
                      f"{len(rec.feasible)} feasible" + (f", {rec.failed} failed" if rec.failed else ""))
        if rec.feasible:
            several = len({r.device for r in rec.feasible}) > 1
            table = Table(title="feasible (fastest first)")
            columns = ["model", "recipe", "runtime", "precision"] + (["device"] if several else []) + [
                f"{budget.percentile} ms", "accuracy", "memory MB", "size MB", "Pareto"]
            for column in columns:
                table.add_column(column)
            for r in rec.feasible:
                table.add_row(r.model, r.recipe, r.runtime, r.precision, *([r.device] if several else []),
                              _fmt(r.latency_ms(budget.percentile)), _fmt(r.accuracy, "{:.2%}"),
                              _fmt(r.memory_mb, "{:.0f}"), _fmt(r.size_mb), "yes" if rec.on_frontier(r) else "")
            console.print(table)
        for pick in rec.picks:
            console.print(f"[bold green]{pick.family}[/]: {escape(pick.row.label)} ({pick.row.precision}) — "
                          f"{escape(pick.reason)}")
            console.print(f"  artifact: {escape(pick.row.artifact_path or 'path not recorded')}")
            if pick.margins:
                console.print("  against the budget: " + escape("; ".join(m.describe() for m in pick.margins)))
        if rec.near_misses:
            console.print("nothing fits; nearest misses (what to relax):" if not rec.feasible else
                          "families with nothing feasible — nearest misses:")
            for miss in rec.near_misses:
                console.print(f"  {escape(miss.row.label)} ({miss.row.family}"
                              + (f", {miss.row.device}" if budget.device is None else "") + "): "
                              + escape("; ".join(b.describe() for b in miss.blockers)))
        if not rec.feasible and not rec.near_misses:
            console.print("[red]no measured candidates match the device/batch/family/model/recipe[/]")

    emit(rec.model_dump(mode="json"), as_json, render)
    raise typer.Exit(0 if rec.ok else 1)

def report_command(
    results: Path = typer.Option(DEFAULT_OUTPUT, help=RESULTS_HELP),
    out: Path = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Directory for report.html / report.md / "
                                                                     "report.json."),
    formats: str = typer.Option("html,md,json", "--format", help="Comma-separated: html, md, json."),
    title: Optional[str] = typer.Option(None, help="Report title (default: the run's)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Render reports from stored results: self-contained HTML, a Markdown summary, JSON with every figure.

    From a results.db this is the run's own report again (its budget, recommendation, notes and config)."""
    from edgeopt.core.errors import InvalidInput
    from edgeopt.gate import results_path
    from edgeopt.report import FORMATS, load_report, report_from_store, write_reports

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise InvalidInput(f"--format {formats!r}: expected a comma-separated list of {', '.join(FORMATS)}")
    results = results_path(results)
    if results.suffix == ".json":
        data = load_report(results)
        data.title = title or data.title
    else:
        data = report_from_store(results, title)
    paths = write_reports(data, out, chosen)
    emit({k: str(v) for k, v in paths.items()}, as_json,
         lambda data: [console.print(f"report ({k}): {v}") for k, v in data.items()])


def gate_command(
    current: Path = typer.Option(DEFAULT_OUTPUT, help="This run: a results.db, a JSON report, or the directory "
                                                      "holding them (default ./edgeopt-out)."),
    baseline: Optional[Path] = typer.Option(None, help="The baseline run (a results.db, a JSON report or their "
                                                       "directory); omit to check budgets only."),
    max_accuracy_drop: Optional[float] = typer.Option(0.5, help="Allowed accuracy drop in percentage points, "
                                                                "beyond the 95% interval of the difference."),
    max_latency_regression: str = typer.Option("10%", help="Allowed latency increase beyond measurement noise: "
                                                           "10% or 0.1 (a bare 10 is an error); empty to skip."),
    percentile: str = typer.Option("median", help="Latency statistic compared: median (has a CI), p95, ..."),
    compare_across_hosts: bool = typer.Option(False, "--compare-across-hosts",
                                              help="Compare latency even when the runs were measured on different "
                                                   "host classes (CPU model, cores, ISA, GPUs)."),
    fail_on_missing: bool = typer.Option(False, help="Fail when a baseline candidate was not measured (it is "
                                                     "reported either way)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Absolute budget: latency at --budget-percentile."),
    budget_percentile: str = typer.Option(DEFAULT_PERCENTILE, help="Latency statistic for --max-latency-ms."),
    max_memory_mb: Optional[float] = typer.Option(None, help="Absolute budget: peak memory."),
    max_size_mb: Optional[float] = typer.Option(None, help="Absolute budget: model file size."),
    min_accuracy: Optional[float] = typer.Option(None, help="Absolute budget: accuracy fraction."),
    device: Optional[str] = typer.Option(None, help="Budgets apply to this device profile only."),
    batch: int = typer.Option(DEFAULT_BATCH, help="Budgets apply to this batch size only."),
    family: Optional[str] = typer.Option(None, help="Budgets apply to this family only (cnn, lstm, bert)."),
    model: Optional[str] = typer.Option(None, help="Budgets apply to this config model only."),
    recipe: Optional[str] = typer.Option(None, help="Budgets apply to this config recipe only (e.g. the "
                                                    "deployed int8, not the fp32 baseline)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Directory to write gate.md (for a PR "
                                                                       "comment) and gate.xml (JUnit) into."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """CI gate: exit 1 on an accuracy drop or a latency regression beyond noise, a failed candidate, or a
    broken absolute budget; prints Markdown (for a PR comment), writes JUnit XML with --output."""
    from edgeopt.gate import gate, write_outputs

    limits = dict(max_latency_ms=max_latency_ms, max_memory_mb=max_memory_mb, max_size_mb=max_size_mb,
                  min_accuracy=min_accuracy)
    budget = None
    if any(v is not None for v in limits.values()):
        budget = _budget(device=device, batch=batch, percentile=budget_percentile, family=family, model=model,
                         recipe=recipe, **limits)
    result = gate(baseline, current, max_accuracy_drop=max_accuracy_drop,
                  max_latency_regression=max_latency_regression or None, percentile=percentile, budget=budget,
                  fail_on_missing=fail_on_missing, across_hosts=compare_across_hosts)
    if output is not None:
        write_outputs(result, output)
    # Raw text, not through rich: Markdown table rows must not be wrapped at the terminal's width.
    emit({"passed": result.passed, **result.model_dump(mode="json")}, as_json,
         lambda _: sys.stdout.write(result.markdown()))
    if not as_json:
        console_err.print(result.summary())
    raise typer.Exit(result.exit_code)


def schema_command(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the schema here instead of stdout."),
    as_json: bool = typer.Option(False, "--json", help="Accepted for consistency: the schema is JSON either way."),
) -> None:
    """Print the JSON Schema of the YAML config (for editors and validation in CI)."""
    from edgeopt.config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
        if not as_json:
            console_err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
