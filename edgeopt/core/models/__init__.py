"""Model builders: an artifact's `arch` ({"builder": name, **kwargs}) becomes an nn.Module here.

One explicit registry; students and other architectures add themselves by an explicit entry below.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..artifacts import require_consent
from ..errors import CheckpointError, InvalidInput
from .bert import BertClassifier
from .cnn import CNNModel, ResNet
from .lstm import RNNModel
from .students import MobileNetV2Student, RNNStudent, SqueezeNetStudent, TextCNNStudent

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cnn": CNNModel,
    "resnet": ResNet,
    "lstm": RNNModel,
    "mobilenetv2": MobileNetV2Student,
    "squeezenet": SqueezeNetStudent,
    "textcnn": TextCNNStudent,
    "rnn": RNNStudent,
}


def import_factory(spec: str, path: str | None = None) -> Callable[..., nn.Module]:
    """A user's model factory named `package.module:function` (the user's own code, by their config),
    importable as installed or from the directory `path` (recorded in the artifact, so worker processes
    that load the model find it too)."""
    import importlib
    import sys

    if path and path not in sys.path:
        sys.path.append(path)
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise InvalidInput(f"model factory {spec!r} cannot be imported ({error}); it must be "
                           "'package.module:function' importable from the current environment") from None
    if not callable(factory):
        raise InvalidInput(f"model factory {spec!r} is not callable")
    return factory


def build_module(arch: dict[str, Any], trust_code: bool = False, where: Any = "model") -> nn.Module:
    """Instantiate an architecture from its spec; BERT is loaded from its Hugging Face directory instead.

    `{"builder": "factory", "factory": "pkg.mod:fn", "kwargs": {...}}` builds a user's own module: that runs
    the user's code, so only with `trust_code` (their config named it, or they passed --trust-code).
    """
    name = arch.get("builder")
    if name == "factory":
        require_consent(arch, trust_code, where)
        return import_factory(arch["factory"], arch.get("path"))(**arch.get("kwargs", {}))
    if name not in BUILDERS:
        raise InvalidInput(f"unknown architecture builder {name!r}; expected one of {', '.join(sorted(BUILDERS))}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items() if k != "builder"}
    return BUILDERS[name](**kwargs)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a torch checkpoint, never unpickling arbitrary objects (weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError.pickled_objects(path) from None
    except Exception as error:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"{path}: not a readable state_dict ({type(error).__name__}: "
                              f"{str(error).splitlines()[0]})") from None


def load_torch_model(directory: Path, model_file: str, arch: dict[str, Any], trust_code: bool = False) -> nn.Module:
    """Load a torch-format artifact without unpickling arbitrary objects; a module factory runs only with
    `trust_code`."""
    target = Path(directory) / model_file
    if arch.get("builder") == "bert":
        try:
            return BertClassifier.from_pretrained(target).eval()
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{target}: cannot load Hugging Face model: {error}") from None
    state = load_state_dict(target)
    module = build_module({k: v for k, v in arch.items() if k != "pruned"}, trust_code, directory)
    if arch.get("pruned"):
        resize_to_state_dict(module, state)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise CheckpointError(f"{target}: weights do not match architecture {arch}: {' '.join(first)}") from None
    return module.eval()


def resize_to_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Give every layer the shape its saved weights have, so structurally pruned models load without pickle.

    Pruning changes layer widths; the artifact keeps the builder's arguments plus `"pruned": true`, and the
    widths are read back from the state_dict here. Depthwise convolutions stay depthwise.
    """
    for name, layer in module.named_modules():
        prefix = f"{name}." if name else ""
        own = {n: t for n, t in state.items() if n.startswith(prefix) and "." not in n[len(prefix):]}
        if not own:
            continue
        for key, tensor in own.items():
            attr = key[len(prefix):]
            if attr in layer._parameters and layer._parameters[attr] is not None:
                layer._parameters[attr] = nn.Parameter(torch.empty_like(tensor), requires_grad=True)
            elif attr in layer._buffers and layer._buffers[attr] is not None:
                layer._buffers[attr] = torch.empty_like(tensor)
        weight = own.get(f"{prefix}weight")
        if isinstance(layer, nn.modules.conv._ConvNd) and weight is not None:
            depthwise = layer.groups > 1 and layer.groups == layer.in_channels
            layer.out_channels = weight.shape[0]
            layer.groups = weight.shape[0] if depthwise else layer.groups
            layer.in_channels = weight.shape[1] * layer.groups
        elif isinstance(layer, nn.Linear) and weight is not None:
            layer.out_features, layer.in_features = weight.shape
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.num_features = own[f"{prefix}running_mean"].shape[0]
        elif isinstance(layer, nn.LayerNorm) and weight is not None:
            layer.normalized_shape = tuple(weight.shape)
        elif isinstance(layer, nn.Embedding) and weight is not None:
            layer.num_embeddings, layer.embedding_dim = weight.shape
        elif isinstance(layer, nn.RNNBase):
            layer.hidden_size = own[f"{prefix}weight_hh_l0"].shape[1]
            layer.input_size = own[f"{prefix}weight_ih_l0"].shape[1]
            layer._init_flat_weights()
    return module


def save_torch_model(module: nn.Module, directory: Path, arch: dict[str, Any]) -> str:
    """Save weights (state_dict, or a Hugging Face directory for BERT); returns the model file name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if arch.get("builder") == "bert":
        module.save_pretrained(directory / "hf")
        return "hf"
    torch.save(module.state_dict(), directory / "model.pt")
    return "model.pt"
