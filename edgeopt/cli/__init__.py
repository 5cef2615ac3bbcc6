"""The `edgeopt` command: a thin typer shell over the Python API. Heavy libraries are imported lazily."""
from __future__ import annotations

import sys

import typer
from rich.markup import escape

from edgeopt.core.errors import EdgeoptError
from edgeopt.core.quiet import quiet_library_logs

from . import agent as agent_cli
from . import bench
from .doctor import doctor
from .export import export, predict
from .fit import fit_command
from . import optimize as optimize_cli
from . import run as sweep
from .output import console_err
from .zoo import zoo_app

app = typer.Typer(
    name="edgeopt",
    help="Which version of my model fits my resources? Prune, quantize, distill, export and benchmark models.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from edgeopt import __version__

        print(f"edgeopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Options that come before any command (the help text is the app's)."""


app.add_typer(zoo_app, name="zoo")
app.command()(doctor)
app.command()(export)
app.command()(predict)
app.command("init")(sweep.init_command)
app.command("run")(sweep.run_command)
app.command("recommend")(sweep.recommend_command)
app.command("report")(sweep.report_command)
app.command("gate")(sweep.gate_command)
app.command("fit")(fit_command)
app.command("schema")(sweep.schema_command)
app.command()(bench.bench)
app.add_typer(agent_cli.devices_app, name="devices")
app.add_typer(agent_cli.agent_app, name="agent")
app.command()(agent_cli.deploy)
app.command("prune")(optimize_cli.prune_command)
app.command("distill")(optimize_cli.distill_command)
app.command("quantize")(optimize_cli.quantize_command)


def main() -> None:
    """Entry point: user errors print one clear line (no traceback) and exit with status 2."""
    quiet_library_logs()
    try:
        app()
    except EdgeoptError as error:
        console_err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]")
        sys.exit(130)
