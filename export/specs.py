"""Per-family export knowledge as data: input names, dynamic axes, opset, tolerances, sample inputs.

One `ExportSpec` per family (like Optimum's `BertOnnxConfig`); exporters and the parity check read it and
never branch on the family themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edgeopt.core.artifacts import Artifact, Family, Precision, TensorSpec
from edgeopt.core.data import Split, dataset_of
from edgeopt.core.errors import InvalidInput


@dataclass(frozen=True)
class Tolerance:
    """When a child's logits pass against its parent's, over `ExportSpec.parity_samples` real test samples.

    Every logit: max|child - parent| <= atol + rtol * max|parent|. Top-1: a flip is a near-tie when the parent's
    top-2 margin is below `near_tie` x its logit scale (the std of its logits over the samples): such a call is a
    coin toss for any rounding, so it is counted and reported, never failed. Clear disagreements (flips with a
    wider margin) may be at most `max_clear` of the samples that are not near-ties.
    """

    atol: float
    rtol: float
    near_tie: float
    max_clear: float

    def limit(self, largest_logit: float) -> float:
        """The largest allowed logit error, given the largest reference logit (in absolute value)."""
        return self.atol + self.rtol * largest_logit

    def allowed_clear(self, decided: int) -> int:
        """Clear disagreements allowed among `decided` (not near-tie) samples: a tolerance that allows any allows
        at least one, so a small test split (under 34 samples at 3%) does not round the allowance down to none."""
        allowed = int(self.max_clear * decided + 1e-9)
        return max(1, allowed) if self.max_clear > 0 and decided else allowed

    def as_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol, "near_tie": self.near_tie, "max_clear": self.max_clear}


# Tolerances on logits. fp32 differences are kernel reordering only: no clear disagreement. fp16 rounds weights
# and activations; int8 moves logits by up to ~1 (one outlier logit of a dynamically quantized BERT at sequence
# 128) while the class stays the same; its accuracy drop is measured separately, on the whole test split.
# Over 128 samples, the zoo's INT8 artifacts show 0 clear disagreements (their flips are near-ties), so 3% (3 of
# ~120) leaves room for an unlucky draw, while an export with 10% clear flips fails with P > 99.7% (binomial).
FP32 = Tolerance(atol=1e-4, rtol=1e-4, near_tie=1e-3, max_clear=0.0)
FP16 = Tolerance(atol=2e-2, rtol=1e-2, near_tie=0.05, max_clear=0.01)
INT8 = Tolerance(atol=1.0, rtol=0.25, near_tie=0.1, max_clear=0.03)


@dataclass(frozen=True)
class ExportSpec:
    family: Family
    input_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]   # input/output name -> {axis: dimension name}
    pad_values: dict[str, int] = field(default_factory=dict)  # text inputs: value used to pad to a fixed length
    output_name: str = "logits"
    opset: int = 18
    onnx_exporter: str = "dynamo"   # the default torch.onnx exporter for the family (see LSTM below)
    # torch.export specialises the sequence length (nn.LSTM): ExecuTorch and LiteRT trace it at its upper bound
    # and their runtimes right-pad shorter inputs with `pad_values`
    static_sequence: bool = False
    tolerances: dict[Precision, Tolerance] = field(default_factory=lambda: {
        Precision.FP32: FP32, Precision.FP16: FP16, Precision.BF16: FP16, Precision.INT8: INT8})
    parity_batch_sizes: tuple[int, ...] = (1, 7)   # the dynamic batch axis, checked case by case
    parity_samples: int = 128   # test samples over which top-1 agreement is counted (at the last sequence length)
    parity_seq_lengths: tuple[int | None, ...] = (None,)   # ascending; None: the family has no sequence axis
    example_batch: int = 2       # torch.export specialises dimensions of size 1, so trace with 2 ...
    example_seq_length: int | None = None  # ... and a sequence length that is neither 0 nor 1
    # TensorRT optimisation profile per dynamic dimension name: (min, opt, max)
    shape_ranges: dict[str, tuple[int, int, int]] = field(default_factory=lambda: {
        "batch": (1, 8, 64), "sequence": (1, 64, 256)})

    @property
    def is_text(self) -> bool:
        return self.parity_seq_lengths != (None,)

    def tolerance(self, precision: Precision | str) -> Tolerance:
        return self.tolerances[Precision(precision)]

    def sample_inputs(self, artifact: Artifact, split: Split, batch_size: int,
                      seq_length: int | None = None, start: int = 0) -> dict[str, np.ndarray]:
        """Real inputs: `batch_size` test samples, texts padded/truncated to exactly `seq_length` tokens (each
        text cut at the artifact's max_len first, as the deployed model receives it)."""
        from edgeopt.core.models.zoo import preprocessor_of

        if len(split) < start + batch_size:
            raise InvalidInput(f"{split.name} split has {len(split)} samples; need {start + batch_size}")
        raw = split.inputs[start:start + batch_size]
        preprocessor = preprocessor_of(artifact)
        if seq_length is None:
            return preprocessor(raw)
        arrays = preprocessor(list(raw), max_len=min(seq_length, artifact.preprocess.get("max_len") or seq_length))
        padded = {}
        for name, value in arrays.items():
            value = value[:, :seq_length]
            padding = ((0, 0), (0, seq_length - value.shape[1]))
            padded[name] = np.pad(value, padding, constant_values=self.pad_values.get(name, 0)).astype(value.dtype)
        return padded

    def output_spec(self, artifact: Artifact) -> TensorSpec:
        """The parent's recorded output width (a model may have more outputs than its data set has classes)."""
        width = artifact.outputs[0].shape[-1] if artifact.outputs else len(artifact.labels)
        return TensorSpec(name=self.output_name, dtype="float32", shape=["batch", width])

    def example_inputs(self, artifact: Artifact) -> dict[str, np.ndarray]:
        """What exporters trace with: real test samples at the example batch size and sequence length."""
        return self.sample_inputs(artifact, dataset_of(artifact).test, self.example_batch, self.example_seq_length)


TEXT_AXES = {0: "batch", 1: "sequence"}

SPECS: dict[Family, ExportSpec] = {
    Family.CNN: ExportSpec(
        family=Family.CNN, input_names=("pixel_values",),
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}),
    Family.LSTM: ExportSpec(
        family=Family.LSTM, input_names=("input_ids",),
        dynamic_axes={"input_ids": TEXT_AXES, "logits": {0: "batch"}},
        pad_values={"input_ids": 0}, parity_seq_lengths=(5, 128), example_seq_length=16,
        # torch.export specialises nn.LSTM's sequence length to the traced one (torch 2.13); the TorchScript
        # exporter keeps it dynamic and its graph is quantized by ORT without pre-processing
        onnx_exporter="torchscript", static_sequence=True),
    Family.BERT: ExportSpec(
        family=Family.BERT, input_names=("input_ids", "attention_mask"),
        dynamic_axes={"input_ids": TEXT_AXES, "attention_mask": TEXT_AXES, "logits": {0: "batch"}},
        pad_values={"input_ids": 0, "attention_mask": 0},  # [PAD] is id 0 in the (MiniLM) BERT vocabulary
        parity_seq_lengths=(5, 128), example_seq_length=16),
}


def spec_for(source: Family | str | Artifact) -> ExportSpec:
    """The export spec of a family, or of an artifact: an artifact's inputs are the ones it records (a user's
    text module: input_ids alone or with attention_mask, padded with its vocabulary's pad id; an imported ONNX
    image model: its graph's input name)."""
    if not isinstance(source, Artifact):
        return SPECS[Family(source)]
    spec = SPECS[Family(source.family)]
    names = tuple(t.name for t in source.inputs) or spec.input_names
    pad_id = source.preprocess.get("pad_id", 0)
    if names == spec.input_names and pad_id == 0:
        return spec
    if not spec.is_text:  # an imported image model's own input name
        return replace(spec, input_names=names, dynamic_axes={**{n: {0: "batch"} for n in names},
                                                              spec.output_name: {0: "batch"}})
    return replace(spec, input_names=names, dynamic_axes={**{n: TEXT_AXES for n in names}, "logits": {0: "batch"}},
                   pad_values={n: pad_id if n == "input_ids" else 0 for n in names})
