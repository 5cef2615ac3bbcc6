"""torch -> ONNX with dynamic batch (and sequence length for text), self-describing metadata.

Two exporters: "dynamo" (torch.export-based, the default in torch >= 2.9) and "torchscript" (the legacy tracer);
each family's default is in its ExportSpec (the LSTM uses torchscript: torch.export fixes nn.LSTM's sequence
length). Every graph is then pre-processed with onnxruntime's `quant_pre_process` (ONNX shape inference + ORT
basic optimisation, which folds the dynamo LSTM's weight transposes): without it ORT dynamic quantization
silently skips a dynamo-exported LSTM. The exporter used is recorded in the manifest's recipe and in the ONNX
metadata_props, with the input spec, labels, family and source checksum.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import warnings
from contextlib import chdir, contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import Artifact, Format, Precision
from edgeopt.core.errors import CheckpointError, ExportError

from .base import Exporter, first_line
from .specs import ExportSpec, spec_for

MODEL_FILE = "model.onnx"
METADATA_PREFIX = "edgeopt."


class OnnxExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opset: int | None = Field(None, ge=13, le=23, description="ONNX opset; None = the family's (18)")
    exporter: Literal["dynamo", "torchscript"] | None = Field(
        None, description="torch.export-based or the TorchScript tracer; None = the family's default")
    preprocess: bool = Field(True, description="run onnxruntime quant_pre_process so ORT can quantize the graph")


class OnnxExporter(Exporter):
    format = Format.ONNX
    config_class = OnnxExportConfig
    precisions = (Precision.FP32,)
    sources = (Format.TORCH,)

    def export(self, artifact: Artifact, out_dir: Path, precision: Precision, config: OnnxExportConfig) -> Artifact:
        out_dir = Path(out_dir)
        config = resolve(config, artifact)
        export_onnx_file(artifact, out_dir / MODEL_FILE, config)
        child = artifact.derive(out_dir, format=Format.ONNX, precision=precision, model_file=MODEL_FILE,
                                step={"step": "export", "format": "onnx", "exporter": config.exporter,
                                      "opset": config.opset, "preprocessed": config.preprocess})
        write_metadata(out_dir / MODEL_FILE, child, artifact, config)
        return child.save()


def resolve(config: OnnxExportConfig, artifact: Artifact) -> OnnxExportConfig:
    """Fill the family defaults (exporter, opset) so the manifest records what was actually used."""
    spec = spec_for(artifact)
    return config.model_copy(update={"exporter": config.exporter or spec.onnx_exporter,
                                     "opset": config.opset or spec.opset})


def export_onnx_file(artifact: Artifact, path: Path, config: OnnxExportConfig) -> None:
    """The torch module of `artifact` -> one self-contained ONNX file at `path` (weights inside)."""
    from edgeopt.core.models.zoo import load_module
    from edgeopt.core.train import to_tensors

    config = resolve(config, artifact)
    spec = spec_for(artifact)
    module = load_module(artifact)
    example = to_tensors(spec.example_inputs(artifact))
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch_directory() as scratch:
        raw = scratch / "raw.onnx"
        try:
            with quiet_exporter():
                _torch_export(module, example, raw, spec, config)
        except Exception as error:
            raise ExportError(f"{artifact.name}: ONNX export with the {config.exporter} exporter (opset "
                              f"{config.opset}) failed at {failing_op(error, module)}: {first_line(error)}") from error
        _drop_value_info(raw)
        _check_dynamic(raw, spec, artifact, config)
        if config.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            # symbolic shape inference cannot follow BERT's Min(512, sequence) position slice; ONNX shape
            # inference and the ORT optimiser are what quantization needs
            quant_pre_process(str(raw), str(path), skip_symbolic_shape=True)
        else:
            shutil.copyfile(raw, path)


@contextmanager
def scratch_directory() -> Iterator[Path]:
    """A temporary directory that is also the working directory while ONNX tools run: ONNX Runtime's shape
    inference and quantizers drop files (`sym_shape_infer_temp*`, external-data blobs) into the current one."""
    with tempfile.TemporaryDirectory() as scratch, chdir(scratch):
        yield Path(scratch)


@contextmanager
def quiet_exporter():
    """The exporters print progress, deprecation warnings and torchvision notices; a CLI wants none of it."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _torch_export(module, example: dict, path: Path, spec: ExportSpec, config: OnnxExportConfig) -> None:
    import torch

    names = list(spec.input_names)
    if config.exporter == "dynamo":
        dims = {}
        shapes = {name: {axis: dims.setdefault(dim, torch.export.Dim(dim)) for axis, dim in
                         spec.dynamic_axes[name].items()} for name in names}
        torch.onnx.export(module, (), str(path), kwargs=example, input_names=names, output_names=[spec.output_name],
                          dynamic_shapes=shapes, opset_version=config.opset, dynamo=True, external_data=False)
    else:
        torch.onnx.export(module, tuple(example[n] for n in names), str(path), input_names=names,
                          output_names=[spec.output_name], dynamic_axes=spec.dynamic_axes,
                          opset_version=config.opset, dynamo=False)


def _drop_value_info(path: Path) -> None:
    """Drop the exporter's intermediate shape annotations; shape inference recomputes them.

    The dynamo exporter annotates the LSTM output with the traced sequence length (16) although the graph is
    dynamic; ONNX Runtime ignores it but OpenVINO trusts it and then rejects other lengths.
    """
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save(model, str(path))


def _check_dynamic(path: Path, spec: ExportSpec, artifact: Artifact, config: OnnxExportConfig) -> None:
    """An exporter that fixed a dimension meant to be dynamic (batch, sequence) made a wrong graph: fail."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        for axis, name in spec.dynamic_axes.get(tensor.name, {}).items():
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                other = "torchscript" if config.exporter == "dynamo" else "dynamo"
                raise ExportError(f"{artifact.name}: the {config.exporter} exporter fixed dimension {name!r} of "
                                  f"input {tensor.name!r} to {dims[axis].dim_value}; it must stay dynamic "
                                  f"(try exporter={other})")


def failing_op(error: BaseException, module) -> str:
    """Best effort: the aten op or module named in the exporter's error chain, else the model class."""
    seen, texts = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    text = "\n".join(texts)
    match = re.search(r"aten[.:]{1,2}[A-Za-z_][\w.]*", text) or re.search(r"torch\.ops\.[\w.]+", text)
    if match:
        return f"op {match.group(0)}"
    return f"module {type(module).__name__}"


def write_metadata(path: Path, child: Artifact, parent: Artifact, config: OnnxExportConfig | None) -> None:
    """Input spec, labels, family and source checksum go into metadata_props: the file describes itself."""
    import onnx

    model = onnx.load(str(path))
    props = {
        "name": child.name, "family": str(child.family), "precision": str(child.precision),
        "inputs": json.dumps([s.model_dump() for s in child.inputs]), "labels": json.dumps(child.labels),
        "source_sha256": parent.sha256 or "", "preprocess": json.dumps(child.preprocess),
    }
    if config is not None:
        props.update(exporter=config.exporter, opset=str(config.opset))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        entry = existing.get(METADATA_PREFIX + key) or model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    """edgeopt's metadata_props of an ONNX file (without the prefix); CheckpointError when unreadable."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf DecodeError for truncated files
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(error).__name__}: {first_line(error)})") \
            from None
    return {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def check_onnx_file(path: Path) -> None:
    """Fail with CheckpointError for truncated or invalid ONNX files (before a runtime gives a vaguer error)."""
    import onnx

    read_metadata(path)
    try:
        onnx.checker.check_model(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: invalid ONNX model: {first_line(error)}") from None
