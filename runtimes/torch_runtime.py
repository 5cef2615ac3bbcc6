"""Eager PyTorch: the reference every exported artifact is checked against; CPU, or CUDA when present."""
from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import BackendUnavailable

from .base import Availability, Runtime, RuntimeConfig


class TorchRuntime(Runtime):
    name = "torch"
    formats = (Format.TORCH,)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        import torch

        from edgeopt.core.models.zoo import load_module

        self.device = torch.device(self.config.device.lower())
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {self.config.device!r} needs a CUDA GPU and a CUDA build of torch "
                                     "(this torch sees no GPU); use --device cpu")
        if self.device.type not in ("cpu", "cuda"):
            raise BackendUnavailable(f"the torch runtime runs on cpu or cuda, not {self.config.device!r}")
        if self.config.threads:
            torch.set_num_threads(self.config.threads)  # process-wide: torch has no per-model thread pool
        # fp16 / bf16 artifacts are the fp32 weights cast at load time (what torch users deploy on GPUs)
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(str(artifact.precision), torch.float32)
        self.model = load_module(artifact).to(self.device, dtype=self.dtype).eval()

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            import torch
        except ImportError:
            return Availability(False, "torch is not installed: `pip install torch`")
        devices = ("cpu",) + tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
        return Availability(True, devices=devices, version=torch.__version__)

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """Inputs are moved to the device and cast once; the call runs the model and returns host logits."""
        import torch

        self.check_inputs(inputs)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in inputs.items()}
        tensors = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in tensors.items()}

        def call() -> np.ndarray:
            with torch.inference_mode():
                return self.model(**tensors).float().cpu().numpy()

        return call

    def close(self) -> None:
        self.model = None
