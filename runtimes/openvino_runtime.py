"""OpenVINO: IR (xml + bin) or ONNX files on CPU, and on Intel GPU/NPU when present.

`precision_hint="f32"` keeps CPU math in fp32 (parity checks); None lets the hardware choose (bf16 on AMX CPUs,
fp16 on GPU), which is what a speed measurement wants.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import BackendUnavailable, CheckpointError

from .base import Availability, Runtime, RuntimeConfig


class OpenVINORuntime(Runtime):
    name = "openvino"
    formats = (Format.OPENVINO, Format.ONNX)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        import openvino as ov

        core = ov.Core()
        self.device = self.config.device.upper()
        known = core.available_devices
        if not any(d == self.device or d.split(".")[0] == self.device for d in known):
            raise BackendUnavailable(f"OpenVINO device {self.device!r} is not available here (available: "
                                     f"{', '.join(known)}); GPU/NPU need Intel hardware and its driver")
        properties: dict[str, str] = {}
        if self.config.precision_hint:
            properties["INFERENCE_PRECISION_HINT"] = self.config.precision_hint
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
        return Availability(True, devices=tuple(ov.Core().available_devices), version=ov.get_version())

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.check_inputs(inputs)
        result = self.request.infer({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return np.array(result[self.output], dtype=np.float32)  # copy: the request reuses its buffers

    def close(self) -> None:
        self.request = self.compiled = None
