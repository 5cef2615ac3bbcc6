"""The one Exporter interface: write a child artifact in another format; `export_artifact` checks its parity."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from edgeopt.core.artifacts import Artifact, Format, Precision


class Exporter(ABC):
    format: ClassVar[Format]
    config_class: ClassVar[type[BaseModel]]
    precisions: ClassVar[tuple[Precision, ...]]
    sources: ClassVar[tuple[Format, ...]]   # artifact formats this exporter starts from

    @abstractmethod
    def export(self, artifact: Artifact, out_dir: Path, precision: Precision, config: BaseModel) -> Artifact:
        """Write the child artifact into `out_dir` and return it saved (the parity check comes after)."""

    def unavailable(self) -> str | None:
        """Why this exporter cannot run here (its converter is an optional extra), or None; cheap to call."""
        return None


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def first_line(error: BaseException) -> str:
    """The first line of an error message (libraries put pages of context after it), without colour codes."""
    text = ANSI_ESCAPE.sub("", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
