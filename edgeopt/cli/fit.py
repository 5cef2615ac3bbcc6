"""`edgeopt fit`: a thin shell over edgeopt.fit (the budget-driven search)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgeopt.recommend import DEFAULT_BATCH, DEFAULT_PERCENTILE

from .executor import EXECUTOR_OPTION, RAY_ADDRESS_OPTION, executor_config
from .output import DEFAULT_OUTPUT, JSON_OPTION_HELP, OUTPUT_HELP, console, console_err, emit
from .run import _budget, _fmt


def fit_command(
    model: str = typer.Argument(..., help="Zoo model to search from: cnn, resnet, lstm, bert."),
    device: str = typer.Option(..., help="Device profile the budget is for (e.g. cpu-1t; see `edgeopt devices`)."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Latency limit in ms at --percentile."),
    percentile: str = typer.Option(DEFAULT_PERCENTILE, help="Latency statistic: mean, median, p90, p95, p99, max."),
    batch: int = typer.Option(DEFAULT_BATCH, help="Batch size the latency limit applies to."),
    max_memory_mb: Optional[float] = typer.Option(None, help="Peak memory limit (RSS on CPU, GPU memory on cuda)."),
    max_size_mb: Optional[float] = typer.Option(None, help="Model file size limit."),
    min_accuracy: Optional[float] = typer.Option(None, help="Lowest accuracy, as a fraction (0.9)."),
    time_budget: Optional[str] = typer.Option(None, help="Stop starting trials after this long: 90s, 20m, 1h."),
    trials: Optional[int] = typer.Option(None, min=1, help="Stop after this many finished trials (20 if neither "
                                                           "this nor --time-budget is given)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel build processes (measurements stay serial)."),
    runtimes: Optional[list[str]] = typer.Option(None, "--runtime", help="Search only this runtime (repeatable; "
                                                                        "default: every one the device runs)."),
    max_train_samples: Optional[int] = typer.Option(None, min=1, help="Cap every training schedule (a quick "
                                                                      "search; less accurate)."),
    output: Path = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help=OUTPUT_HELP + " Also holds fit.db."),
    seed: int = typer.Option(0, help="Seeds the sampler, data subsets and training."),
    executor: Optional[str] = EXECUTOR_OPTION,
    ray_address: Optional[str] = RAY_ADDRESS_OPTION,
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Search prune/distill, precision and runtime for the most accurate model that fits the budget, measured.

    Structures beyond the latency/memory/size limits are rejected before any training; the best trials are
    re-measured with full settings. Resumable: the same command continues a killed search. Exit status 1 when
    nothing fits (the nearest candidates and what to relax are printed).
    """
    from edgeopt.fit import fit

    budget = _budget(device=device, batch=batch, percentile=percentile, max_latency_ms=max_latency_ms,
                     max_memory_mb=max_memory_mb, max_size_mb=max_size_mb, min_accuracy=min_accuracy)
    say = None if as_json else (
        lambda message: console_err.print(escape(message), highlight=False, soft_wrap=True))
    result = fit(model, budget, trials=trials, time_budget=time_budget, jobs=jobs, output=output, seed=seed,
                 runtimes=runtimes, max_train_samples=max_train_samples, progress=say,
                 executor=executor_config(executor, ray_address))
    emit(result.model_dump(mode="json") | {"ok": result.ok, "relax": result.relax()}, as_json,
         lambda _: _render(result))
    raise typer.Exit(0 if result.ok else 1)


def _render(result) -> None:
    p = result.budget.percentile
    states = [t.state for t in result.trials]
    console.print(f"{len(states)} trials ({states.count('complete')} complete, {states.count('pruned')} pruned, "
                  f"{states.count('failed')} failed, {states.count('repeat')} repeated proposals) in "
                  f"{result.seconds:.0f} s; budget: {result.budget.describe()}")
    if result.winner is not None:
        row = result.winner.row
        console.print(f"[bold green]winner:[/] {escape(row.label)} on {row.device}: accuracy "
                      f"{_fmt(row.accuracy, '{:.2%}')}, {p} {_fmt(row.latency_ms(p), '{:.4g}')} ms, memory "
                      f"{_fmt(row.memory_mb, '{:.0f}')} MB, size {_fmt(row.size_mb, '{:.3g}')} MB")
        console.print(f"  artifact: {row.artifact_path}\n  recipe: {' -> '.join(row.steps) or 'as is'}")
    else:
        console.print("[bold red]nothing fits[/]" + (" (no structure meets the cost limits)" if result.impossible
                                                      else ""))
        for line in result.relax():
            console.print(f"  nearest: {escape(line)}")
    if result.comparison:
        console.print(f"compared with the default recipes: {escape(result.comparison)}")
    if result.frontier:
        table = Table(title=f"measured frontier: accuracy vs {p} latency")
        for column in ("recipe", "runtime", "accuracy", f"{p} ms", "memory MB", "size MB"):
            table.add_column(column)
        for row in result.frontier:
            table.add_row(row.recipe, row.runtime, _fmt(row.accuracy, "{:.2%}"), _fmt(row.latency_ms(p), "{:.4g}"),
                          _fmt(row.memory_mb, "{:.0f}"), _fmt(row.size_mb, "{:.3g}"))
        console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"search state: {result.storage} (study {result.study}; the same command resumes it)")
