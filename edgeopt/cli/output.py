"""Output helpers shared by CLI commands: JSON for machines on stdout, rich tables for people."""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

from rich.console import Console

console = Console()
console_err = Console(file=sys.stderr)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print `data` as JSON (stdout, nothing else) or through `render` for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        render(data)


JSON_OPTION_HELP = "Print machine-readable JSON on stdout instead of tables."
