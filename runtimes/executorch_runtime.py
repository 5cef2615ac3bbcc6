"""ExecuTorch: .pte programs with the XNNPACK delegate on the CPU, through `executorch.runtime`.

Threads: XNNPACK runs on ExecuTorch's one process-wide thread pool, resized with `_unsafe_reset_threadpool`
(like torch.set_num_threads, the last runtime loaded in a process sets it; measurements run one per process).
Ops XNNPACK did not take run on the portable kernels single-threaded; the export's `metrics["delegation"]`
lists them.
"""
from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Callable

import numpy as np

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import CheckpointError

from .base import Availability, Runtime, RuntimeConfig
from .bounded import fit_inputs

INSTALL = "pip install 'edgeopt[executorch]'"


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    formats = (Format.EXECUTORCH,)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime as Loader

        self.require_cpu("XNNPACK")
        if self.config.threads:
            _unsafe_reset_threadpool(self.config.threads)
        try:
            self.method = Loader.get().load_program(artifact.model_path).load_method("forward")
        except Exception as error:  # the loader raises a bare RuntimeError for truncated or foreign files
            raise CheckpointError(f"{artifact.model_path}: ExecuTorch cannot load it: "
                                  f"{str(error).strip().splitlines()[0]}") from None

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            from executorch.runtime import Runtime as Loader
        except ImportError:
            return Availability(False, f"executorch is not installed: `{INSTALL}`")
        backends = Loader.get().backend_registry.registered_backend_names
        if "XnnpackBackend" not in backends:
            return Availability(False, f"this executorch build has no XNNPACK backend (it has "
                                       f"{', '.join(backends) or 'none'}); `{INSTALL}`")
        return Availability(True, devices=("cpu",), version=metadata.version("executorch"),
                            extra={"backends": list(backends)})

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """Inputs are checked against the bounds, padded and wrapped once; the call is a bare `Method.execute`."""
        import torch

        self.check_inputs(inputs)
        fitted = fit_inputs(self.artifact, inputs)
        args = [torch.from_numpy(fitted[spec.name]) for spec in self.inputs]
        execute = self.method.execute
        return lambda: execute(args)[0].numpy()

    def close(self) -> None:
        self.method = None
