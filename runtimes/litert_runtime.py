"""LiteRT (formerly TensorFlow Lite): .tflite files through ai-edge-litert's Interpreter with XNNPACK on the CPU.

Threads: the Interpreter's `num_threads` (per interpreter; None = LiteRT's default). The file holds one
signature per static batch size; a batch runs in the next size up (`bounded`). Full-INT8 files take and give
int8: inputs are quantized and logits dequantized with the tensors' own scale and zero point; token ids go in
as the int32 the converter makes of int64. `bind` runs the signature once
(which resizes, allocates and sets the inputs), then the call is only the signature's subgraph `Invoke` and
reading its output: what `SignatureRunner.__call__` does without re-setting the inputs every call.
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


class LiteRTRuntime(Runtime):
    name = "litert"
    formats = (Format.LITERT,)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        from ai_edge_litert.interpreter import Interpreter

        self.require_cpu("XNNPACK")
        try:
            self.interpreter = Interpreter(model_path=str(artifact.model_path), num_threads=self.config.threads)
            self.signatures = self.interpreter.get_signature_list()
        except (ValueError, RuntimeError) as error:  # "Model provided has model identifier ..." for foreign files
            raise CheckpointError(f"{artifact.model_path}: LiteRT cannot load it: "
                                  f"{str(error).strip().splitlines()[0]}") from None

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return Availability(False, "ai-edge-litert is not installed: `pip install 'edgeopt[litert]'`")
        return Availability(True, devices=("cpu",), version=metadata.version("ai-edge-litert"))

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """Inputs fitted and set once in the signature of the batch; the call is its `Invoke` + the output."""
        self.check_inputs(inputs)
        batch = next(iter(inputs.values())).shape[0]
        fitted = fit_inputs(self.artifact, inputs)
        name = f"batch_{next(iter(fitted.values())).shape[0]}"
        if name not in self.signatures:
            raise CheckpointError(f"{self.artifact.model_path}: no signature {name!r} (it has "
                                  f"{', '.join(self.signatures)}); export it again with `edgeopt export`")
        runner = self.interpreter.get_signature_runner(name)
        inputs_detail, output_detail = runner.get_input_details(), next(iter(runner.get_output_details().values()))
        runner(**{key: _as_input(value, inputs_detail[key]) for key, value in fitted.items()})
        wrapper, subgraph = runner._interpreter_wrapper, runner._subgraph_index  # what __call__ invokes
        invoke, get, output = wrapper.Invoke, wrapper.GetTensor, output_detail["index"]
        scale, zero = output_detail["quantization"]

        def call() -> np.ndarray:
            invoke(subgraph)
            logits = get(output, subgraph)[:batch]
            return (logits.astype(np.float32) - zero) * scale if scale else logits

        return call

    def close(self) -> None:
        self.interpreter = None


def _as_input(value: np.ndarray, detail: dict) -> np.ndarray:
    """What the input tensor takes: int64 ids as the converter's int32; for a full-INT8 model, floats quantized
    with the tensor's scale and zero point."""
    scale, zero = detail["quantization"]
    if scale and np.issubdtype(value.dtype, np.floating):
        limits = np.iinfo(detail["dtype"])
        return np.clip(np.round(value / scale) + zero, limits.min, limits.max).astype(detail["dtype"])
    return value.astype(detail["dtype"], copy=False)
