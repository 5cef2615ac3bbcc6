"""ONNX Runtime: the CPU execution provider everywhere; CUDA, TensorRT or OpenVINO providers when installed."""
from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np
from pydantic import Field

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import BackendUnavailable, CheckpointError

from .base import Availability, Runtime, RuntimeConfig

# config.device -> execution provider; "cuda:1" selects device_id 1.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider"}


class OnnxRuntimeConfig(RuntimeConfig):
    graph_optimization: str = Field("all", pattern="^(disabled|basic|extended|all)$",
                                    description="ORT graph optimisation level")


class OnnxRuntimeRuntime(Runtime):
    name = "onnxruntime"
    formats = (Format.ONNX,)
    config_class = OnnxRuntimeConfig

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        import onnxruntime as ort

        kind, _, index = self.config.device.lower().partition(":")
        provider = PROVIDERS.get(kind)
        if provider is None:
            raise BackendUnavailable(f"onnxruntime device {self.config.device!r} unknown; expected one of "
                                     f"{', '.join(PROVIDERS)}")
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(f"ONNX Runtime here has no {provider} (it has "
                                     f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for "
                                     "cuda/tensorrt or onnxruntime-openvino for openvino")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        levels = ort.GraphOptimizationLevel
        options.graph_optimization_level = {
            "disabled": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
            "extended": levels.ORT_ENABLE_EXTENDED, "all": levels.ORT_ENABLE_ALL}[self.config.graph_optimization]
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
            options.inter_op_num_threads = 1
        providers = [(provider, {"device_id": int(index)}) if index and kind != "openvino" else provider]
        if provider != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")  # ops the accelerator lacks fall back to the CPU
        try:
            self.session = ort.InferenceSession(str(artifact.model_path), options, providers=providers)
        except Exception as error:  # ORT raises InvalidProtobuf / Fail / InvalidGraph for broken files
            raise CheckpointError(f"{artifact.model_path}: ONNX Runtime cannot load it: "
                                  f"{str(error).splitlines()[0]}") from None
        self.output_name = self.session.get_outputs()[0].name

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError:
            return Availability(False, "onnxruntime is not installed: `pip install onnxruntime`")
        providers = ort.get_available_providers()
        devices = tuple(kind for kind, provider in PROVIDERS.items() if provider in providers)
        return Availability(True, devices=devices, version=ort.__version__, extra={"providers": providers})

    def bind(self, inputs: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        """The feed is checked and made contiguous once; the call is what a bare `session.run` loop times."""
        self.check_inputs(inputs)
        feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        names, run = [self.output_name], self.session.run
        return lambda: run(names, feed)[0]

    def close(self) -> None:
        self.session = None
