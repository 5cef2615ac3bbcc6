"""edgeopt.optimize: model-shrinking steps, each a plain function `Artifact -> Artifact` with a pydantic config.

prune (torch -> smaller torch), distill (torch teacher -> torch student), sequence (text: fewer tokens per
text), quantize (ONNX / OpenVINO -> INT8 / FP16). They compose: prune -> distill -> sequence -> export ->
quantize. One explicit registry, STEPS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from .distill import DistillConfig, distill
from .prune import PruneConfig, prune
from .quantize import QuantizeConfig, quantize
from .sequence import SequenceConfig, shorten


@dataclass(frozen=True)
class Step:
    """A registered step: its function `(artifact, config, out_dir, progress=None) -> Artifact` and config type."""

    name: str
    run: Callable
    config_class: type[BaseModel]


STEPS: dict[str, Step] = {
    "prune": Step("prune", prune, PruneConfig),
    "distill": Step("distill", distill, DistillConfig),
    "sequence": Step("sequence", shorten, SequenceConfig),
    "quantize": Step("quantize", quantize, QuantizeConfig),
}


def list_steps() -> list[str]:
    return sorted(STEPS)


__all__ = ["DistillConfig", "PruneConfig", "QuantizeConfig", "STEPS", "SequenceConfig", "Step", "distill",
           "list_steps", "prune", "quantize", "shorten"]
