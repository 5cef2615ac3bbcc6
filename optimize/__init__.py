"""edgeopt.optimize: model-shrinking steps, each a plain function `Artifact -> Artifact` with a pydantic config.

prune (torch -> smaller torch), distill (torch teacher -> torch student), quantize (ONNX / OpenVINO ->
INT8 / FP16). They compose: prune -> distill -> export -> quantize. One explicit registry, STEPS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from .distill import DistillConfig, distill
from .prune import PruneConfig, prune
from .quantize import QuantizeConfig, quantize


@dataclass(frozen=True)
class Step:
    """A registered step: its function `(artifact, config, out_dir, progress=None) -> Artifact` and config type."""

    name: str
    run: Callable
    config_class: type[BaseModel]


STEPS: dict[str, Step] = {
    "prune": Step("prune", prune, PruneConfig),
    "distill": Step("distill", distill, DistillConfig),
    "quantize": Step("quantize", quantize, QuantizeConfig),
}


def list_steps() -> list[str]:
    return sorted(STEPS)


__all__ = ["DistillConfig", "PruneConfig", "QuantizeConfig", "STEPS", "Step", "distill", "list_steps", "prune",
           "quantize"]
