"""The one Runtime interface every backend implements: load an artifact, describe it, run a batch, close."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Format, TensorSpec
from edgeopt.core.errors import BackendUnavailable, InvalidInput


@dataclass(frozen=True)
class Availability:
    """Whether a runtime can be used on this machine, on which devices, and if not, what to install."""

    ok: bool
    reason: str = ""
    devices: tuple[str, ...] = ()
    version: str = ""
    extra: dict = field(default_factory=dict)


class RuntimeConfig(BaseModel):
    """Options every runtime understands; a runtime may subclass it with its own typed options."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field("cpu", description="cpu, cuda, cuda:N, or an OpenVINO device name (CPU, GPU, NPU)")
    threads: int | None = Field(None, ge=1, description="intra-op threads; None = the runtime's default")
    precision_hint: str | None = Field(None, description="OpenVINO INFERENCE_PRECISION_HINT (f32, bf16, f16); "
                                                          "None = the artifact's own precision")


class Runtime(ABC):
    """Load once, then run batches of named numpy inputs; returns the logits as a numpy array.

    A backend implements `bind` (inputs prepared once, a bare inference call returned) or, at least, `run`.
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[Format, ...]]
    config_class: ClassVar[type[RuntimeConfig]] = RuntimeConfig

    def __init__(self, artifact: Artifact, config: RuntimeConfig | None = None):
        if artifact.format not in self.formats:
            raise InvalidInput(f"{artifact.path}: runtime {self.name!r} runs {', '.join(self.formats)} artifacts, "
                               f"not {artifact.format}")
        self.artifact = artifact
        self.config = config or self.config_class()

    def require_cpu(self, kernels: str) -> None:
        """A CPU-only runtime refuses any other device instead of silently running on the CPU."""
        if self.config.device.lower() != "cpu":
            raise BackendUnavailable(f"the {self.name} runtime runs on cpu ({kernels}), not {self.config.device!r}")

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Probe (cheaply, without loading a model) whether this runtime works here."""

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.artifact.inputs

    @property
    def executed_precision(self) -> str:
        """The precision the math actually runs in (a runtime may differ from the artifact's label)."""
        return str(self.artifact.precision)

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """Check and prepare `inputs` once; the returned call only runs inference (what the harness times).

        Its result may be a view of the runtime's own buffers, valid until the next call; `run` copies.
        """
        self.check_inputs(inputs)
        return lambda: self.run(inputs)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """One batch of named inputs -> logits (batch x classes), float32, owned by the caller."""
        return np.array(self.bind(inputs)(), dtype=np.float32)

    def close(self) -> None:
        """Release the model and any device memory."""

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """Fail with a clear message when names, ranks or dtypes do not match the artifact's input spec."""
        expected = {spec.name: spec for spec in self.inputs}
        missing = sorted(set(expected) - set(inputs))
        unknown = sorted(set(inputs) - set(expected))
        if missing or unknown:
            raise InvalidInput(f"{self.artifact.path}: inputs {sorted(inputs)} given; expected {sorted(expected)}")
        for name, spec in expected.items():
            value = inputs[name]
            if value.ndim != len(spec.shape) or any(isinstance(d, int) and d != s for d, s in zip(spec.shape, value.shape)):
                raise InvalidInput(f"{self.artifact.path}: input {name!r} has shape {list(value.shape)}; "
                                   f"expected {spec.shape}")
            if str(value.dtype) != spec.dtype:
                raise InvalidInput(f"{self.artifact.path}: input {name!r} has dtype {value.dtype}; "
                                   f"expected {spec.dtype}")
