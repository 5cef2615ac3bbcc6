"""Output helpers shared by CLI commands: JSON for machines on stdout, rich tables for people."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

# Where `run` and `bench` write and where `recommend`, `report` and `gate` look by default (the config's default
# output; a directory holding results.db and report.json).
DEFAULT_OUTPUT = Path("edgeopt-out")
OUTPUT_HELP = "Output directory: results.db, reports (default ./edgeopt-out, where the other commands look)."
RESULTS_HELP = "Stored results: a results.db, a JSON report, or the directory holding them (default ./edgeopt-out)."

console = Console()
console_err = Console(file=sys.stderr)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print `data` as JSON (stdout, nothing else) or through `render` for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        render(data)


JSON_OPTION_HELP = "Print machine-readable JSON on stdout instead of tables."
TRUST_CODE_HELP = ("Run the module factory (your Python code) that an artifact's manifest names; without it such "
                   "an artifact is refused. Only for artifacts you trust.")
FORCE_OUTPUT_HELP = "Replace the artifact already in --output (a directory edgeopt did not make is never touched)."
