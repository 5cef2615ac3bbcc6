"""Turn what a user names on the command line into an artifact: a zoo name, an artifact directory, or a
plain ONNX file (wrapped as an ONNX artifact with its family's preprocessing and data set)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from edgeopt.core.artifacts import MANIFEST, Artifact, Family, Format, TensorSpec, output_directory
from edgeopt.core.data import load_dataset
from edgeopt.core.errors import InvalidInput
from edgeopt.core.paths import cache_dir

from .onnx import MODEL_FILE, check_onnx_file
from .specs import spec_for

DEFAULT_DATASETS = {Family.CNN: "fashion-mnist", Family.LSTM: "rotten-tomatoes", Family.BERT: "rotten-tomatoes"}
ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16"}


def resolve_artifact(model: str, family: str | None = None, dataset: str | None = None,
                     trust_code: bool = False) -> Artifact:
    """A zoo model name, an artifact directory (or its artifact.json), or an .onnx file; `trust_code` is the
    user's consent to run a module factory the artifact names."""
    from edgeopt.core.models.zoo import ZOO, load_zoo_model

    path = Path(model).expanduser()
    if path.is_dir() or path.name == MANIFEST:
        return Artifact.load(path, trust_code=trust_code)
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise InvalidInput(f"{path}: model files must be .onnx (or give an artifact directory / zoo name); "
                               "torch checkpoints need their architecture, so train or import them as artifacts")
        if family is None:
            raise InvalidInput(f"{path}: a plain ONNX file needs --family (cnn, lstm or bert)")
        return import_onnx(path, family, dataset)
    if model in ZOO:
        return load_zoo_model(model)
    raise InvalidInput(f"{model}: not a zoo model ({', '.join(ZOO)}), an artifact directory or an .onnx file")


def import_onnx(path: Path, family: Family | str, dataset: str | None = None, out_dir: Path | None = None) -> Artifact:
    """Wrap a user ONNX file as an artifact (cached by content), so it can be exported, run and benchmarked.

    Its inputs must carry the family's names (cnn: pixel_values; lstm: input_ids; bert: input_ids +
    attention_mask); preprocessing is the family's default (images normalised like Fashion-MNIST, the LSTM
    vocabulary rebuilt from the data set's train split like the zoo's, the MiniLM WordPiece tokenizer for BERT).
    """
    import onnx

    family = Family(family)
    path = Path(path)
    check_onnx_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out_dir = Path(out_dir) if out_dir else cache_dir() / "imported" / f"{path.stem}-{digest[:12]}"
    if (out_dir / MANIFEST).exists():
        return Artifact.load(out_dir)
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [_tensor_spec(t) for t in graph.input if t.name not in initializers]
    spec = spec_for(family)
    if sorted(t.name for t in inputs) != sorted(spec.input_names):
        raise InvalidInput(f"{path}: inputs {[t.name for t in inputs]}; a {family} model needs "
                           f"{list(spec.input_names)} (rename the ONNX inputs)")
    data = load_dataset(dataset or DEFAULT_DATASETS[family])
    preprocessor = _default_preprocessor(family, data, inputs)
    with output_directory(out_dir) as staging:
        shutil.copyfile(path, staging / MODEL_FILE)
        if hasattr(preprocessor, "save"):
            preprocessor.save(staging)
        artifact = Artifact(name=path.stem, family=family, format=Format.ONNX, model_file=MODEL_FILE,
                            preprocess=preprocessor.to_spec(), inputs=inputs,
                            outputs=[_tensor_spec(t) for t in graph.output], labels=data.classes,
                            dataset=data.describe(),
                            recipe=[{"step": "import", "source": str(path), "sha256": digest}])
        artifact.path = staging
        artifact.save()
    artifact.path = out_dir
    return artifact


def _tensor_spec(value_info) -> TensorSpec:
    tensor = value_info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or f"dim{i}")
             for i, d in enumerate(tensor.shape.dim)]
    dtype = ONNX_DTYPES.get(tensor.elem_type)
    if dtype is None:
        raise InvalidInput(f"input {value_info.name!r} has ONNX element type {tensor.elem_type}; expected "
                           "float32, float16, int32 or int64")
    return TensorSpec(name=value_info.name, dtype=dtype, shape=shape)


def _default_preprocessor(family: Family, data, inputs: list[TensorSpec]):
    from edgeopt.core.preprocess import ImagePreprocessor, VocabEncoder, WordPieceEncoder

    if family == Family.CNN:
        shape = inputs[0].shape
        channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 1
        size = shape[-1] if isinstance(shape[-1], int) else 28
        return ImagePreprocessor(channels=channels, size=size)
    if family == Family.LSTM:
        return VocabEncoder.build(data.train.inputs, max_size=12000, min_count=2, max_len=64)
    from edgeopt.core.models.bert import minilm_path

    return WordPieceEncoder.from_pretrained(minilm_path(), 128)
