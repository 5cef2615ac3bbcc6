"""TensorRT: deserialize an engine built by edgeopt.export.tensorrt and run it on an NVIDIA GPU.

Written against the TensorRT 10 Python API (named I/O tensors, `execute_async_v3`); device buffers are torch
CUDA tensors, so no second CUDA binding is needed. Engines are tied to the GPU model and TensorRT version that
built them. Only CUDA devices are accepted: a `cpu` device is refused before anything is imported, so a CPU
device profile can never be measured on a GPU under its name.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from edgeopt.core.artifacts import Format
from edgeopt.core.errors import BackendUnavailable, CheckpointError, InvalidInput

from .base import Availability, Runtime, RuntimeConfig

INSTALL_HINT = "on an NVIDIA machine `pip install edgeopt[tensorrt]` (tensorrt>=10, cuda-python)"


def require_tensorrt():
    """The tensorrt module, or BackendUnavailable saying what to install."""
    try:
        import tensorrt
    except ImportError as error:
        raise BackendUnavailable(f"TensorRT is not installed: {INSTALL_HINT} ({error})") from None
    return tensorrt


def cuda_device(device: str) -> str:
    """`cuda` or `cuda:N` as `cuda:N`; any other device is refused, never quietly mapped onto a GPU."""
    kind, _, index = device.lower().partition(":")
    if kind != "cuda" or not (index or "0").isdigit():
        raise InvalidInput(f"TensorRT runs on CUDA GPUs (device cuda or cuda:N), not {device!r}; measure this "
                           "engine on a cuda:N device profile")
    return f"cuda:{index or 0}"


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    formats = (Format.TENSORRT,)

    def __init__(self, artifact, config: RuntimeConfig | None = None):
        super().__init__(artifact, config)
        device = cuda_device(self.config.device)  # before any import: a CPU profile must never run on a GPU
        probe = self.availability()
        if not probe.ok:
            raise BackendUnavailable(probe.reason)
        if device not in probe.devices:
            raise BackendUnavailable(f"TensorRT: no {device} here; this machine has {', '.join(probe.devices)}")
        import torch

        trt = require_tensorrt()
        self.device = torch.device(device)
        torch.cuda.set_device(self.device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.trt_runtime = trt.Runtime(self.logger)
        self.engine = self.trt_runtime.deserialize_cuda_engine(artifact.model_path.read_bytes())
        if self.engine is None:
            raise CheckpointError(f"{artifact.model_path}: TensorRT cannot deserialize this engine (corrupt, or "
                                  f"built by another TensorRT version / GPU; this is TensorRT {trt.__version__})")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.stream = torch.cuda.Stream(self.device)

    @classmethod
    @cache
    def availability(cls) -> Availability:
        try:
            trt = require_tensorrt()
        except BackendUnavailable as error:
            return Availability(False, str(error))
        import torch

        if not torch.cuda.is_available():
            return Availability(False, "TensorRT needs an NVIDIA GPU and a CUDA build of torch; none is visible here",
                                version=trt.__version__)
        devices = tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
        return Availability(True, devices=devices, version=trt.__version__)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        self.check_inputs(inputs)
        buffers = {}
        for name in self.input_names:
            value = np.ascontiguousarray(inputs[name], dtype=self.dtypes[name])  # e.g. int64 ids -> int32 engine
            buffers[name] = torch.from_numpy(value).to(self.device)
            self.context.set_input_shape(name, tuple(value.shape))
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=self.dtypes[name])).dtype
            buffers[name] = torch.empty(shape, dtype=dtype, device=self.device)
        for name, tensor in buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        with torch.cuda.stream(self.stream):
            # inputs were copied on the current stream; make the engine's stream wait for them
            self.stream.wait_stream(torch.cuda.default_stream(self.device))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.artifact.model_path}: TensorRT execution failed")
        self.stream.synchronize()
        return buffers[self.output_names[0]].float().cpu().numpy()

    def close(self) -> None:
        self.context = self.engine = self.trt_runtime = None
