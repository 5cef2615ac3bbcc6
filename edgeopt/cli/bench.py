"""`edgeopt bench ARTIFACT...` and `edgeopt devices`: measure artifacts, list device profiles."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .executor import EXECUTOR_OPTION, RAY_ADDRESS_OPTION, executor_config
from .output import DEFAULT_OUTPUT, JSON_OPTION_HELP, TRUST_CODE_HELP, console, emit


def _split(value: Optional[str]) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _batch_sizes(value: str) -> list[int]:
    from edgeopt.core.errors import InvalidInput

    try:
        sizes = [int(v) for v in _split(value)]
    except ValueError:
        raise InvalidInput(f"--batch {value!r}: expected comma-separated positive integers, e.g. 1,8") from None
    if not sizes or min(sizes) < 1:
        raise InvalidInput(f"--batch {value!r}: expected comma-separated positive integers, e.g. 1,8")
    return sizes


def _artifact(spec: str, trust_code: bool = False):
    """A zoo model name (cnn, resnet, lstm, bert) or an artifact directory."""
    from edgeopt.core.artifacts import Artifact

    if not Path(spec).exists() and "/" not in spec:
        from edgeopt.core.models.zoo import ZOO, load_zoo_model

        if spec in ZOO:
            return load_zoo_model(spec)
    return Artifact.load(spec, trust_code=trust_code)


def bench(
    artifacts: list[str] = typer.Argument(..., help="Artifact directories (or zoo model names: cnn, resnet, "
                                          "lstm, bert)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime(s), comma-separated: torch, "
                                          "onnxruntime, openvino, tensorrt. Default: each artifact's own runtime."),
    device: str = typer.Option("cpu", "--device", "-d", help="Device profile(s), comma-separated "
                               "(see `edgeopt devices`), e.g. cpu-1t,cpu-2t,edge-1c-512m."),
    batch: str = typer.Option("1", "--batch", "-b", help="Batch sizes, comma-separated, e.g. 1,8."),
    output: Path = typer.Option(DEFAULT_OUTPUT, "--output", "-o", help="Output directory: results go to its "
                                "results.db (created if missing), where recommend, report and gate look."),
    samples: int = typer.Option(2000, "--samples", min=0, help="Seeded test-split subset for accuracy and fidelity; "
                                "0 = the whole split."),
    min_runs: int = typer.Option(30, "--min-runs", min=1, help="Measured runs per round: at least this many ..."),
    min_time: float = typer.Option(0.5, "--min-time", min=0, help="... and at least this many seconds (each of "
                                   "3 rounds in a fresh process; then until the median's CI is within 2%)."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Warm-up runs before timing."),
    timeout: float = typer.Option(900, "--timeout", min=1, help="Seconds per candidate before it is killed "
                                  "and recorded as failed."),
    force: bool = typer.Option(False, "--force", help="Measure again even if the database has the candidate."),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    reference: Optional[list[Path]] = typer.Option(None, "--reference", help="FP32 artifact directory to compare "
                                                   "predictions against (fidelity), when it is not found "
                                                   "beside the artifact or in the zoo. Repeatable."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Extra directory of device profile YAML files."),
    executor: Optional[str] = EXECUTOR_OPTION,
    ray_address: Optional[str] = RAY_ADDRESS_OPTION,
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Measure latency, throughput, peak memory, size, accuracy and fidelity of artifacts.

    Every candidate (artifact x runtime x device profile) runs in its own process with a timeout; a crash,
    hang or out-of-memory is stored as that candidate's failure. Results go to --output's results.db; re-running
    skips what is already measured. Emulated edge profiles are labelled as such.
    """
    from edgeopt.benchmarks import NOISY_EXPLANATION, BenchConfig, LatencyConfig
    from edgeopt.benchmarks import bench as run_bench
    from edgeopt.core.progress import progress_bars
    from edgeopt.executors import get_executor
    from edgeopt.pipeline import RESULTS_DB
    from edgeopt.store import ResultStore

    output.mkdir(parents=True, exist_ok=True)
    db = output / RESULTS_DB
    config = BenchConfig(batch_sizes=_batch_sizes(batch), accuracy_samples=samples or None, timeout_s=timeout,
                         resume=not force,
                         latency=LatencyConfig(min_runs=min_runs, min_seconds=min_time, warmup_runs=warmup))
    runner = get_executor(executor_config(executor, ray_address))
    loaded = [_artifact(a, trust_code) for a in artifacts]
    extra = [profiles] if profiles else None
    with ResultStore(db) as store, progress_bars(enabled=not as_json) as progress:
        rows = run_bench(loaded, runtimes=_split(runtime) or None, devices=_split(device) or ["cpu"], config=config,
                         store=store, progress=progress, references=reference or [], profile_dirs=extra,
                         executor=runner)
        skipped = len(loaded) and not rows

    def render(data):
        if skipped:
            console.print(f"nothing to do: every candidate is already in {db} (use --force to measure again)")
            return
        table = Table(title=f"edgeopt bench -> {db}")
        for column in ("artifact", "fmt/prec", "runtime", "device", "batch", "median ms", "p95 ms", "cv",
                       "samples/s", "peak MB", "size MB", "accuracy", "fidelity", "status"):
            table.add_column(column, justify="right" if column[0].isdigit() or " " in column else "left")
        for m in data:
            s = m["summary"]
            num = (lambda v, f: f.format(v) if v is not None else "-")
            table.add_row(s["artifact"], f"{s['format']}/{s['precision']}", s["runtime"], s["device"], str(s["batch"]),
                          num(s["median_ms"], "{:.3f}"), num(s["p95_ms"], "{:.3f}"),
                          num(s["cv"], "{:.0%}") + (" !" if s["noisy"] else ""), num(s["throughput"], "{:,.0f}"),
                          num(s["peak_rss_mb"], "{:.0f}"), num(s["size_mb"], "{:.2f}"), num(s["accuracy"], "{:.2%}"),
                          num(s["fidelity"], "{:.2%}"),
                          "ok" if s["status"] == "ok" else f"[red]failed[/]: {s['error']}")
        console.print(table)
        if any(m["summary"]["noisy"] for m in data):
            console.print(f"[yellow]! {NOISY_EXPLANATION}[/]")

    emit([{"summary": m.summary(), "measurement": m.model_dump(mode="json")} for m in rows], as_json, render)


def devices(
    ctx: typer.Context,
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Extra directory of device profile YAML files."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """List device profiles: this host's CPU (all cores, 1 and 2 threads), CUDA GPUs when present, and
    edge boards emulated here by threads, pinned cores and a memory cap, and real boards measured through
    their device agent (remote; `edgeopt devices add`). Add your own as YAML files in ~/.config/edgeopt/profiles."""
    from edgeopt.benchmarks import list_profiles
    from edgeopt.core.paths import config_dir

    if ctx.invoked_subcommand:  # `edgeopt devices add ...`
        return
    rows = [{**p.model_dump(), "warnings": p.host_warnings()}
            for p in list_profiles([profiles] if profiles else None).values()]

    def render(data):
        table = Table(title=f"device profiles (yours: {config_dir() / 'profiles'})")
        for column in ("name", "device", "threads", "cores", "memory", "kind", "description"):
            table.add_column(column)
        for p in data:
            table.add_row(p["name"], p["device"], str(p["threads"] or "default"), str(p["cores"] or "all"),
                          f"{p['memory_mb']} MB" if p["memory_mb"] else "-",
                          "remote" if p["remote"] else "emulated" if p["emulated"] else "this host",
                          p["description"])
        console.print(table)
        for warning in (w for p in data for w in p["warnings"]):
            console.print(f"[yellow]warning:[/] {escape(warning)}")

    emit(rows, as_json, render)
