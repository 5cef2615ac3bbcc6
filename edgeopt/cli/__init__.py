"""The `edgeopt` command: a thin typer shell over the Python API. Heavy libraries are imported lazily."""
from __future__ import annotations

import sys

import typer

from edgeopt.core.errors import EdgeoptError

from .doctor import doctor
from .output import console_err
from .zoo import zoo_app

app = typer.Typer(
    name="edgeopt",
    help="Which version of my model fits my resources? Prune, quantize, distill, export and benchmark models.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
app.add_typer(zoo_app, name="zoo")
app.command()(doctor)


def main() -> None:
    """Entry point: user errors print one clear line (no traceback) and exit with status 2."""
    try:
        app()
    except EdgeoptError as error:
        console_err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]")
        sys.exit(130)
