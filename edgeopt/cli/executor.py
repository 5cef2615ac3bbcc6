"""`--executor` and `--ray-address`: the options `run`, `bench` and `fit` share to choose where work runs."""
from __future__ import annotations

from typing import Optional

import typer

EXECUTOR_OPTION = typer.Option(None, "--executor", help="Where builds and measurements run: local (this machine; "
                               "the default) or ray (a Ray cluster, pip install edgeopt with its ray extra; see "
                               "docs/scale.md).")
RAY_ADDRESS_OPTION = typer.Option(None, "--ray-address", help="With --executor ray: the cluster to join, auto (the "
                                  "one `ray start` runs here) or ray://head:10001. Default: $RAY_ADDRESS, else Ray "
                                  "started on this machine.")


def executor_config(kind: Optional[str], address: Optional[str], base=None):
    """The ExecutorConfig the options give, over `base` (a config's `executor:`); a bad kind is a user error."""
    from pydantic import ValidationError

    from edgeopt.config import ExecutorConfig, format_validation_error
    from edgeopt.core.errors import InvalidInput

    base = base or ExecutorConfig()
    try:
        return ExecutorConfig(kind=kind or base.kind, address=address if address is not None else base.address)
    except ValidationError as error:
        raise InvalidInput(f"--executor: {format_validation_error(error, ExecutorConfig)}") from None
