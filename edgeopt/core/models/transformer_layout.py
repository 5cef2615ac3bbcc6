"""Where a Hugging Face encoder keeps its layers and what it calls their parts, per `config.model_type`.

Head/FFN pruning, loading a pruned model and the shallower BERT student edit layers in place, so they need this
table; export, quantization and measurement do not, and work for every sequence-classification architecture.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import InvalidInput


@dataclass(frozen=True)
class Layout:
    """Dotted paths (as `get_submodule` takes them) to one architecture's parts, and its head-count attributes.

    Head pruning slices q/k/v output rows and `output` input columns per head; the attention forwards reshape
    with -1 heads of `attention_head_size`, so the head-count attributes are bookkeeping kept true, not shapes.
    """

    layers: str  # from the base model (`hf.base_model`) to the ModuleList of encoder layers
    attention: str  # from a layer to the self-attention module holding the head-count attributes
    query: str
    key: str
    value: str
    output: str  # attention output projection
    up: str  # FFN linear that widens to the intermediate size
    down: str  # FFN linear back to the hidden size
    heads_attr: str
    width_attr: str | None = None  # heads * head size, where the attention module keeps it

    def encoder_layers(self, hf: nn.Module) -> nn.ModuleList:
        return hf.base_model.get_submodule(self.layers)

    def replace_layers(self, hf: nn.Module, layers: nn.ModuleList) -> None:
        parent, _, name = self.layers.rpartition(".")
        setattr(hf.base_model.get_submodule(parent), name, layers)

    def part(self, layer: nn.Module, name: str) -> nn.Module:
        """A layer's `name` part (one of the path fields: query, output, up, ...)."""
        return layer.get_submodule(getattr(self, name))

    def heads(self, layer: nn.Module) -> int:
        return getattr(self.part(layer, "attention"), self.heads_attr)

    def head_size(self, layer: nn.Module) -> int:
        return self.part(layer, "attention").attention_head_size

    def set_heads(self, layer: nn.Module, count: int) -> None:
        attention = self.part(layer, "attention")
        setattr(attention, self.heads_attr, count)
        if self.width_attr:
            setattr(attention, self.width_attr, count * attention.attention_head_size)


BERT = Layout(layers="encoder.layer", attention="attention.self", query="attention.self.query",
              key="attention.self.key", value="attention.self.value", output="attention.output.dense",
              up="intermediate.dense", down="output.dense", heads_attr="num_attention_heads",
              width_attr="all_head_size")
DISTILBERT = Layout(layers="transformer.layer", attention="attention", query="attention.q_lin", key="attention.k_lin",
                    value="attention.v_lin", output="attention.out_lin", up="ffn.lin1", down="ffn.lin2",
                    heads_attr="n_heads")
LAYOUTS = {"bert": BERT, "roberta": BERT, "xlm-roberta": BERT, "camembert": BERT, "electra": BERT,
           "distilbert": DISTILBERT}
WHY_NOT = {"albert": "ALBERT shares one layer's weights across its whole depth, so layers cannot be pruned or "
                     "dropped one by one"}


def layout_of(hf: nn.Module, purpose: str) -> Layout:
    """The layout of a Hugging Face model; an architecture without one is an InvalidInput saying what works."""
    model_type = getattr(hf.config, "model_type", None)
    if model_type in LAYOUTS:
        return LAYOUTS[model_type]
    reason = WHY_NOT.get(model_type, "its layer layout is not known to edgeopt")
    raise InvalidInput(f"{purpose} does not support the {model_type!r} architecture ({reason}); supported: "
                       f"{', '.join(sorted(LAYOUTS))}. Export, quantization and measurement work for any architecture")
