"""The model zoo: the seed's CNN, a ResNet teacher, the seed's LSTM and a MiniLM BERT, trained on real data.

Lookup order for a trained checkpoint: the user cache (`edgeopt zoo train` writes there), then the small
checkpoints bundled in the package. A checkpoint that fails its sha256 or does not match its architecture
raises CheckpointError; it is never silently retrained over.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..artifacts import Artifact, Family, Format, TensorSpec, check_output, output_directory
from ..data import Dataset, dataset_of, load_dataset
from ..errors import CheckpointError, InvalidInput
from ..paths import BUNDLED_WEIGHTS_DIR, cache_dir
from ..preprocess import ImagePreprocessor, Preprocessor, VocabEncoder, WordPieceEncoder, load_preprocessor
from ..train import TrainConfig, evaluate, fit, seed_everything, to_tensors
from . import build_module, load_torch_model, save_torch_model
from .bert import BertClassifier, minilm_path


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: Family
    dataset: str
    description: str
    train_config: TrainConfig
    target_accuracy: float
    make: Callable[[Dataset], tuple[torch.nn.Module, dict[str, Any], Preprocessor]]


def _make_cnn(data: Dataset):
    arch = {"builder": "cnn", "num_classes": len(data.classes)}
    return build_module(arch), arch, ImagePreprocessor()


def _make_resnet(data: Dataset):
    arch = {"builder": "resnet", "num_classes": len(data.classes), "widths": [32, 64, 128], "blocks": [2, 2, 2]}
    return build_module(arch), arch, ImagePreprocessor()


def _make_lstm(data: Dataset):
    encoder = VocabEncoder.build(data.train.inputs, max_size=12000, min_count=2, max_len=64)
    arch = {"builder": "lstm", "vocab_size": len(encoder.vocab), "embed_dim": 128, "hidden": 128,
            "num_classes": len(data.classes)}
    return build_module(arch), arch, encoder


def _make_bert(data: Dataset):
    source = minilm_path()
    model = BertClassifier.from_pretrained(source, num_labels=len(data.classes), allow_new_head=True)
    return model, {"builder": "bert", "source": "all-MiniLM-L6-v2"}, WordPieceEncoder.from_pretrained(source, 64)


ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in (
    ZooEntry("cnn", Family.CNN, "fashion-mnist", "the seed's CNNModel: 2 conv + 2 fc, 28x28",
             TrainConfig(epochs=10, batch_size=128, lr=2e-3, weight_decay=1e-4, bf16=True), 0.91, _make_cnn),
    ZooEntry("resnet", Family.CNN, "fashion-mnist", "ResNet teacher: 3 stages x 2 basic blocks, ~75 M MACs",
             TrainConfig(epochs=12, batch_size=128, lr=3e-3, weight_decay=5e-4, bf16=True, channels_last=True,
                         augment=True, label_smoothing=0.1), 0.93, _make_resnet),
    ZooEntry("lstm", Family.LSTM, "rotten-tomatoes", "the seed's RNNModel: embedding + LSTM(128) + linear",
             TrainConfig(epochs=8, batch_size=64, lr=2e-3, weight_decay=1e-4), 0.72, _make_lstm),
    ZooEntry("bert", Family.BERT, "rotten-tomatoes", "BERT (all-MiniLM-L6-v2, 6 layers, 384 hidden), fine-tuned",
             TrainConfig(epochs=2, batch_size=32, lr=5e-5, weight_decay=0.01, bf16=True, grad_clip=1.0), 0.78,
             _make_bert),
)}


def zoo_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise InvalidInput(f"unknown zoo model {name!r}; expected one of {', '.join(ZOO)}")
    return ZOO[name]


def zoo_locations(name: str) -> list[Path]:
    return [cache_dir() / "zoo" / name, BUNDLED_WEIGHTS_DIR / name]


def find_zoo_checkpoint(name: str) -> Artifact | None:
    """The trained checkpoint for `name` (verified), or None when none exists yet."""
    zoo_entry(name)
    for location in zoo_locations(name):
        if (location / "artifact.json").exists():
            return Artifact.load(location)
    return None


def count_macs_params(model: torch.nn.Module, example_inputs: dict[str, np.ndarray]) -> tuple[int, int]:
    """MACs and parameters at batch 1: the project's one counter (manifests, pruning targets, fidelity).

    torch's FlopCounterMode counts at the aten level, so every convolution, linear layer, matmul and attention
    is counted whatever module class calls it (a Conv2d subclass with same padding included). Fused kernels
    it cannot see (aten::lstm; MultiheadAttention's inference fast path) are counted analytically instead:
    each such layer's count is replaced by `FUSED_MACS`.
    """
    from torch.utils.flop_counter import FlopCounterMode

    inputs = {k: v[:1] for k, v in to_tensors(example_inputs).items()}
    counter = FlopCounterMode(display=False)
    corrections: list[int] = []  # per fused layer: its analytic MACs minus what the counter saw in it

    def before(module, args):
        corrections.append(counter.get_total_flops() // 2)

    def after(module, args, _output):
        analytic = next(count for kind, count in FUSED_MACS.items() if isinstance(module, kind))
        corrections[-1] += analytic(module, args) - counter.get_total_flops() // 2

    was_training = model.training
    model.eval()
    fused = [m for m in model.modules() if isinstance(m, tuple(FUSED_MACS))]
    hooks = [h for m in fused for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        with torch.no_grad(), counter:
            model(**inputs)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return int(counter.get_total_flops() // 2 + sum(corrections)), int(params)


def _recurrent_macs(module: torch.nn.RNNBase, args) -> int:
    data = args[0]
    batch, steps = (data.shape[0], data.shape[1]) if module.batch_first else (data.shape[1], data.shape[0])
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else module.hidden_size * directions
        total += gates * module.hidden_size * (in_size + module.hidden_size)
    return total * directions * batch * steps


def _attention_macs(module: torch.nn.MultiheadAttention, args) -> int:
    """q/k/v and output projections, plus QK^T and attention x V."""
    query, key = args[0], args[1]
    batch, queries, keys = ((query.shape[0], query.shape[1], key.shape[1]) if module.batch_first
                            else (query.shape[1], query.shape[0], key.shape[0]))
    embed = module.embed_dim
    projections = queries * embed * embed * 2 + keys * embed * (module.kdim + module.vdim)
    return batch * (projections + 2 * queries * keys * embed)


FUSED_MACS = {torch.nn.RNNBase: _recurrent_macs, torch.nn.MultiheadAttention: _attention_macs}


def train_zoo_model(name: str, force: bool = False, out: Path | None = None, progress=None,
                    max_train_samples: int | None = None, epochs: int | None = None,
                    dataset: str | None = None) -> Artifact:
    """Train a zoo model on its data set (or on `dataset`: the lstm and bert recipes on a user's text CSV,
    vocabulary or classification head built for its classes) and save checkpoint + manifest (sha256, data
    hashes, metrics, versions)."""
    entry = zoo_entry(name)
    destination = check_output(out or zoo_locations(name)[0], force=force)  # before hours of training
    data = load_dataset(dataset or entry.dataset)
    if data.kind != ("image" if entry.family == Family.CNN else "text") or not data.labelled:
        raise InvalidInput(f"{dataset}: zoo model {name!r} trains on labelled "
                           f"{'images' if entry.family == Family.CNN else 'texts (a CSV text,label)'}")
    seed_everything(entry.train_config.seed)  # weight initialisation is part of the seeded run
    model, arch, preprocessor = entry.make(data)
    updates = {k: v for k, v in (("max_train_samples", max_train_samples), ("epochs", epochs)) if v is not None}
    config = entry.train_config.model_copy(update=updates)
    result = fit(model, preprocessor, data.train, data.val, config, progress=progress)
    model.eval()
    test_accuracy = evaluate(model, preprocessor, data.test)

    return save_torch_artifact(
        model, arch, preprocessor, destination, name=name, family=entry.family, data=data, force=force,
        recipe=[{"step": "train", **config.model_dump()}],
        metrics={"test_accuracy": test_accuracy, "val_accuracy": result.best_val_accuracy,
                 "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 1),
                 "history": result.history})


def save_torch_artifact(model: torch.nn.Module, arch: dict[str, Any], preprocessor: Preprocessor,
                        destination: Path, *, name: str, family: Family, data: Dataset,
                        recipe: list[dict[str, Any]] | None = None, metrics: dict[str, Any] | None = None,
                        parent: str | None = None, force: bool = False) -> Artifact:
    """Write a torch-format artifact through `output_directory` (staged, then swapped in; an existing artifact
    is replaced only with `force`): weights, preprocessing, manifest.

    MACs and parameters at batch 1 are added to the metrics; the output width is the model's, as it computes
    it (a 1000-way head on 3-class data stays 1000 wide), never assumed from the data's class count.
    """
    model.eval()
    example = preprocessor(data.test.inputs[:2])
    macs, params = count_macs_params(model, example)
    with torch.no_grad():
        width = int(model(**to_tensors(example)).shape[-1])
    with output_directory(destination, force=force) as staging:
        model_file = save_torch_model(model, staging, arch)
        if isinstance(preprocessor, (VocabEncoder, WordPieceEncoder)):
            preprocessor.save(staging)
        artifact = Artifact(
            name=name, family=family, format=Format.TORCH, model_file=model_file, arch=arch,
            preprocess=preprocessor.to_spec(), inputs=preprocessor.input_specs(), labels=data.classes,
            outputs=[TensorSpec(name="logits", dtype="float32", shape=["batch", width])],
            dataset=data.describe(), recipe=recipe or [], parent=parent,
            metrics={**(metrics or {}), "macs": macs, "params": params},
        )
        artifact.path = staging
        artifact.save()
    artifact.path = Path(destination)
    return artifact


def load_zoo_model(name: str, train_if_missing: bool = False, progress=None) -> Artifact:
    """The trained zoo model; trains it first (cached under the user cache) when allowed and none exists."""
    artifact = find_zoo_checkpoint(name)
    if artifact is not None:
        return artifact
    if not train_if_missing:
        raise CheckpointError(f"zoo model {name!r} is not trained yet; run `edgeopt zoo train {name}`")
    return train_zoo_model(name, progress=progress)


def load_module(artifact: Artifact) -> torch.nn.Module:
    """The torch module of a torch-format artifact; a module factory it names runs only if the artifact was
    loaded with `trust_code` (see Artifact.load)."""
    if artifact.format != Format.TORCH:
        raise InvalidInput(f"{artifact.path}: a {artifact.format} artifact has no torch module; use a runtime")
    return load_torch_model(artifact.path, artifact.model_file, artifact.arch, artifact.trust_code)


def preprocessor_of(artifact: Artifact) -> Preprocessor:
    return load_preprocessor(artifact.path, artifact.preprocess)


def evaluate_artifact(artifact: Artifact, split: str = "test", max_samples: int | None = None) -> dict[str, Any]:
    """Accuracy (torch), parameters, MACs and file size of a torch-format artifact on its data set."""
    data = dataset_of(artifact)
    part = data.split(split).subset(max_samples)
    model = load_module(artifact)
    preprocessor = preprocessor_of(artifact)
    macs, params = count_macs_params(model, preprocessor(part.inputs[:2]))
    expected = artifact.dataset.get("splits", {}).get(split, {}).get("sha256")
    return {"name": artifact.name, "family": str(artifact.family), "split": split, "samples": len(part),
            "accuracy": evaluate(model, preprocessor, part), "params": params, "macs": macs,
            "size_bytes": artifact.size_bytes, "path": str(artifact.path), "sha256": artifact.sha256,
            "data_sha256": part.sha256, "data_matches_training": expected == part.sha256 if expected else None}
