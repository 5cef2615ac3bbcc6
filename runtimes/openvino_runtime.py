"""OpenVINO: IR (xml + bin) or ONNX files on CPU, and on Intel GPU/NPU when present.

The math runs at the precision the artifact's label says, never the hardware's silent default (bf16 on CPUs
with avx512_bf16 or AMX): fp32 and INT8 (its float ops) compile with INFERENCE_PRECISION_HINT f32, bf16 with
bf16, fp16 with f16 where the device has fp16 math (else its fp16-stored weights run in f32). What actually
ran is read back from the compiled model (`executed_precision`) and recorded with every measurement.
"""
from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np

from edgeopt.core.artifacts import Format, Precision
from edgeopt.core.errors import BackendUnavailable, CheckpointError

from .base import Availability, Runtime, RuntimeConfig

PRECISION_HINT = {Precision.FP32: "f32", Precision.FP16: "f16", Precision.BF16: "bf16", Precision.INT8: "f32"}
HINT_NAME = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
CAPABILITY_PRECISION = {"FP32": "fp32", "BF16": "bf16", "FP16": "fp16", "INT8": "int8"}  # what the CPU computes in


class OpenVINORuntime(Runtime):
    name = "openvino"
    formats = (Format.OPENVINO, Format.ONNX)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        import openvino as ov

        self.ov = ov
        core = ov.Core()
        self.device = self.config.device.upper()
        known = core.available_devices
        if not any(d == self.device or d.split(".")[0] == self.device for d in known):
            raise BackendUnavailable(f"OpenVINO device {self.device!r} is not available here (available: "
                                     f"{', '.join(known)}); GPU/NPU need Intel hardware and its driver")
        hint = self.config.precision_hint or PRECISION_HINT.get(artifact.precision, "f32")
        if hint == "f16" and "FP16" not in core.get_property(self.device, "OPTIMIZATION_CAPABILITIES"):
            hint = "f32"  # no fp16 math here: fp16-stored weights are decompressed, as OpenVINO deploys them
        properties = {"INFERENCE_PRECISION_HINT": hint}
        if self.config.threads:
            properties["NUM_STREAMS"] = "1"
            if self.device == "CPU":
                properties["INFERENCE_NUM_THREADS"] = str(self.config.threads)
        try:
            model = core.read_model(str(artifact.model_path))
        except Exception as error:  # OpenVINO raises a generic RuntimeError for unreadable files
            raise CheckpointError(f"{artifact.model_path}: OpenVINO cannot read it: "
                                  f"{str(error).strip().splitlines()[0]}") from None
        self.compiled = core.compile_model(model, self.device, properties)
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            import openvino as ov
        except ImportError:
            return Availability(False, "openvino is not installed: `pip install openvino`")
        core = ov.Core()
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") if "CPU" in core.available_devices else []
        precisions = [name for cap, name in CAPABILITY_PRECISION.items() if cap in capabilities]
        return Availability(True, devices=tuple(core.available_devices), version=ov.get_version(),
                            extra={"precisions": precisions})

    @property
    def executed_precision(self) -> str:
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        ran = HINT_NAME.get(ran, ran)
        return f"int8 (float ops {ran})" if self.artifact.precision == Precision.INT8 else ran

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """Inputs are set on the reused request once, sharing their memory; the call is a bare `infer()` (what
        benchmark_app times) and returns a view of the request's output buffer."""
        self.check_inputs(inputs)
        request, output = self.request, self.output
        arrays = {name: np.ascontiguousarray(value) for name, value in inputs.items()}  # alive while bound
        for name, value in arrays.items():
            request.set_tensor(name, self.ov.Tensor(value, shared_memory=True))

        def call() -> np.ndarray:
            assert arrays  # the shared input buffers stay referenced by this call
            request.infer()
            return request.get_tensor(output).data

        return call

    def close(self) -> None:
        self.request = self.compiled = None
