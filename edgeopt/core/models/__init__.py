"""Model builders: an artifact's `arch` ({"builder": name, **kwargs}) becomes an nn.Module here.

One explicit registry; students and other architectures add themselves by an explicit entry below.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CheckpointError, InvalidInput
from .bert import BertClassifier
from .cnn import CNNModel, ResNet
from .lstm import RNNModel
from .students import MobileNetV2Student, SqueezeNetStudent, TextCNNStudent

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cnn": CNNModel,
    "resnet": ResNet,
    "lstm": RNNModel,
    "mobilenetv2": MobileNetV2Student,
    "squeezenet": SqueezeNetStudent,
    "textcnn": TextCNNStudent,
}


def build_module(arch: dict[str, Any]) -> nn.Module:
    """Instantiate an architecture from its spec; BERT is loaded from its Hugging Face directory instead."""
    name = arch.get("builder")
    if name not in BUILDERS:
        raise InvalidInput(f"unknown architecture builder {name!r}; expected one of {', '.join(sorted(BUILDERS))}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items() if k != "builder"}
    return BUILDERS[name](**kwargs)


def load_torch_model(directory: Path, model_file: str, arch: dict[str, Any]) -> nn.Module:
    """Load a torch-format artifact without unpickling arbitrary objects (weights_only=True)."""
    target = Path(directory) / model_file
    if arch.get("builder") == "bert":
        try:
            return BertClassifier.from_pretrained(target).eval()
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{target}: cannot load Hugging Face model: {error}") from None
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"{target}: not a readable state_dict ({type(error).__name__}: {error})") from None
    module = build_module(arch)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise CheckpointError(f"{target}: weights do not match architecture {arch}: {' '.join(first)}") from None
    return module.eval()


def save_torch_model(module: nn.Module, directory: Path, arch: dict[str, Any]) -> str:
    """Save weights (state_dict, or a Hugging Face directory for BERT); returns the model file name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if arch.get("builder") == "bert":
        module.save_pretrained(directory / "hf")
        return "hf"
    torch.save(module.state_dict(), directory / "model.pt")
    return "model.pt"
