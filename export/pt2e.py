"""What the torch.export-based edge formats (ExecuTorch, LiteRT) share: bounded dynamic shapes and PT2E INT8.

torch.export traces the module with a dynamic batch (and text sequence length) up to stated upper bounds. A
family whose sequence length torch.export specialises (nn.LSTM, `ExportSpec.static_sequence`) is traced at its
bound instead; the runtimes fit inputs to it (`edgeopt.runtimes.bounded`). INT8 is PT2E: the backend's
quantizer (symmetric, per-channel weights) annotates the graph, observers see real training samples (like the
ORT and NNCF paths), then quantize/dequantize pairs are folded in. The bounds and the quantization used go into
the manifest's export step, where the runtimes read them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Precision
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import ExportError

from .base import first_line
from .onnx import failing_op
from .specs import spec_for

CALIBRATION_BATCH = 32


class BoundedExportConfig(BaseModel):
    """Shape bounds and PT2E INT8 options of the torch.export-based formats."""

    model_config = ConfigDict(extra="forbid")
    max_batch: int = Field(64, ge=2, le=4096, description="upper bound of the dynamic batch dimension")
    max_sequence: int | None = Field(None, ge=2, le=4096, description="text: upper bound of the sequence length "
                                     "(the fixed length where the family's is static); None = the preprocessor's "
                                     "max_len, the longest input it makes")
    activations: Literal["static", "dynamic"] = Field(
        "static", description="INT8 activations: static (scales calibrated on real samples; full INT8) or dynamic "
                              "(quantized at run time; dynamic-range INT8, no calibration)")
    calibration_samples: int = Field(512, ge=1, le=50000, description="INT8 static: real samples to calibrate on")
    calibration_split: Literal["train", "val"] = Field("train", description="INT8 static: split they come from")
    seed: int = Field(0, description="INT8 static: seeds the choice of calibration samples")


class Traced:
    """A module traced for export: its real example inputs, bounded dynamic shapes and the manifest step."""

    def __init__(self, artifact: Artifact, config: BoundedExportConfig, step: dict[str, Any]):
        import torch

        from edgeopt.core.models.zoo import load_module
        from edgeopt.core.train import to_tensors

        self.artifact, self.spec = artifact, spec_for(artifact)
        if self.spec.is_text and config.max_sequence is None:
            config = config.model_copy(update={"max_sequence": artifact.preprocess.get("max_len", 128)})
        self.config = config
        self.module = load_module(artifact).eval()
        self.example = to_tensors(self.spec.sample_inputs(artifact, dataset_of(artifact).test,
                                                          self.spec.example_batch, self.fixed_sequence))
        bounds = {"batch": config.max_batch, "sequence": config.max_sequence}
        dims: dict[str, Any] = {}
        self.shapes = {name: {axis: dims.setdefault(dim, torch.export.Dim(dim, min=1, max=bounds[dim]))
                              for axis, dim in self.spec.dynamic_axes[name].items()
                              if not (dim == "sequence" and self.spec.static_sequence)}
                       for name in self.spec.input_names}
        self.step = {"step": "export", **step, "max_batch": config.max_batch}
        if self.spec.is_text:
            self.step.update(max_sequence=config.max_sequence, static_sequence=self.spec.static_sequence,
                             pad_values=self.spec.pad_values)

    def inputs_at(self, batch: int, sequence: int | None) -> dict:
        """Real test inputs at a static batch size (and sequence length), for formats traced per shape."""
        from edgeopt.core.train import to_tensors

        return to_tensors(self.spec.sample_inputs(self.artifact, dataset_of(self.artifact).test, batch, sequence))

    def planned_shapes(self) -> dict[str, list[int]]:
        """The input shapes a program must plan memory for: the example's, dynamic axes at their bounds."""
        bounds = {"batch": self.config.max_batch, "sequence": self.config.max_sequence}
        shapes = {name: list(self.example[name].shape) for name in self.spec.input_names}
        for name, shape in shapes.items():
            for axis, dim in self.spec.dynamic_axes[name].items():
                shape[axis] = bounds[dim]
        return shapes

    @property
    def fixed_sequence(self) -> int | None:
        """The sequence length traced: the bound where it is static, else the spec's example length."""
        return self.config.max_sequence if self.spec.static_sequence else self.spec.example_seq_length

    def export(self, module=None):
        """torch.export of `module` (default: the artifact's) with the bounded dynamic shapes."""
        import torch

        module = self.module if module is None else module
        try:
            return torch.export.export(module, (), self.example, dynamic_shapes=self.shapes)
        except Exception as error:
            raise ExportError(f"{self.artifact.name}: torch.export failed at {failing_op(error, module)}: "
                              f"{first_line(error)}") from error

    def quantize(self, quantizer, precision: Precision, **convert_options):
        """PT2E with `quantizer` (whose config must match `config.activations`): observers calibrated on real
        samples unless activations are dynamic. Returns the converted module; records the scheme."""
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from edgeopt.core.train import to_tensors

        assert precision == Precision.INT8
        config, spec = self.config, self.spec
        prepared = prepare_pt2e(self.export().module(), quantizer)
        quantization: dict[str, Any] = {"scheme": "pt2e", "symmetric": True, "per_channel": True,
                                        "activations": config.activations}
        if config.activations == "static":
            split = dataset_of(self.artifact).split(config.calibration_split).subset(config.calibration_samples,
                                                                                     config.seed)
            sequence = config.max_sequence if spec.static_sequence else None
            for start in range(0, len(split), CALIBRATION_BATCH):
                batch = min(CALIBRATION_BATCH, len(split) - start)
                prepared(**to_tensors(spec.sample_inputs(self.artifact, split, batch, sequence, start)))
            quantization.update(calibration_samples=len(split), calibration_split=config.calibration_split,
                                seed=config.seed)
        self.step["quantization"] = quantization
        return convert_pt2e(prepared, **convert_options)


@contextmanager
def generic_convolutions() -> Iterator[None]:
    """Tracing CPU convolutions through oneDNN/NNPACK guards the batch below 16 (their dispatch threshold),
    which silently narrows a program's batch bound to 15; the generic kernel adds no such guard."""
    import torch

    with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
        yield

