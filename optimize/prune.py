"""Structured pruning: remove whole channels, hidden units, attention heads and FFN units.

The result is a genuinely smaller dense model (fewer parameters and MACs) that exports like its parent.
CNNs go through torch-pruning's DepGraph, which keeps coupled layers (residual adds, BN, depthwise convs)
consistent. LSTMs and BERT are sliced gate-/head-aware with torch-pruning's pruning functions: DepGraph's
LSTM pruner does not keep the four gates aligned, and HF BERT needs its attention bookkeeping updated.
Recovery fine-tuning (optionally after each of several pruning steps) uses the shared training loop.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from edgeopt.core.artifacts import Artifact, Family, Format, check_output
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.transformer_layout import layout_of
from edgeopt.core.models.zoo import count_macs_params, load_module, preprocessor_of, save_torch_artifact
from edgeopt.core.step_configs import PruneConfig, TrainConfig
from edgeopt.core.train import evaluate, fit, iterate_batches, seed_everything

def prune(artifact: Artifact, config: PruneConfig, out_dir: Path, progress=None, force: bool = False) -> Artifact:
    """Prune a torch-format artifact, fine-tune it if asked, and save the smaller model as a child artifact
    in `out_dir` (an existing artifact there is replaced only with `force`)."""
    if artifact.format != Format.TORCH:
        raise InvalidInput(f"{artifact.path}: pruning needs a torch-format artifact, got {artifact.format}; "
                           "prune first, then export")
    check_output(out_dir, artifact, force)
    config.check_family(artifact.family)
    seed_everything(config.seed)
    finetune = config.finetune.model_copy(update={"seed": config.seed}) if config.finetune else None
    data = dataset_of(artifact)
    model = load_module(artifact)
    preprocessor = preprocessor_of(artifact)
    example = preprocessor(data.test.inputs[:2])
    test = data.test.subset(config.eval_samples)
    macs_before, params_before = count_macs_params(model, example)
    accuracy_before = evaluate(model, preprocessor, test)

    pruner = PRUNERS[artifact.family](model, example, config)
    history = []
    for step in range(config.steps):
        batches = iterate_batches(preprocessor, data.train, 32, shuffle=True, seed=config.seed + step)
        pruner.step(step + 1, batches)
        entry = {"step": step + 1, "macs": count_macs_params(model, example)[0]}
        if finetune is not None:
            result = fit(model, preprocessor, data.train, data.val.subset(config.val_samples), finetune,
                         progress=progress)
            entry["val_accuracy"] = result.best_val_accuracy
        history.append(entry)
        if pruner.done:
            break

    model.eval()
    macs, params = count_macs_params(model, example)
    accuracy = evaluate(model, preprocessor, test)
    arch = pruner.arch(artifact.arch)
    metrics = {"test_accuracy": accuracy, "prune": {
        "parent_test_accuracy": accuracy_before, "accuracy_drop": accuracy_before - accuracy,
        "parent_macs": macs_before, "parent_params": params_before,
        "macs_reduction": macs_before / max(1, macs), "params_reduction": params_before / max(1, params),
        "eval_samples": len(test), "history": history, **pruner.summary()}}
    step = {"step": "prune", **config.model_dump(mode="json")}
    return save_torch_artifact(model, arch, preprocessor, Path(out_dir), name=f"{artifact.name}-pruned",
                               family=artifact.family, data=data, recipe=list(artifact.recipe) + [step],
                               metrics=metrics, parent=artifact.sha256, force=force)


def recipe_train_config(artifact: Artifact, **overrides) -> TrainConfig:
    """The training recipe the artifact was made with (its last `train` step), with overrides: recovery
    fine-tuning works best with the schedule, augmentation and precision that trained the model."""
    trained = [step for step in artifact.recipe if step.get("step") == "train"]
    base = {k: v for k, v in (trained[-1] if trained else {}).items() if k in TrainConfig.model_fields and k != "seed"}
    return TrainConfig(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


# --- CNN: torch-pruning DepGraph ---------------------------------------------------------------------------

IMPORTANCE = {
    "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "bn_scale": lambda: tp.importance.BNScaleImportance(),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(p=2),
    "random": lambda: tp.importance.RandomImportance(),
}


def check_traceable(model: nn.Module, example: dict[str, torch.Tensor]) -> tp.DependencyGraph:
    """Build the dependency graph; name the module when torch-pruning cannot see how a layer is used.

    A layer missing from the traced graph (its output is detached, or used outside autograd) would be pruned
    without its consumers, leaving an inconsistent model, so it is an error rather than a warning.
    """
    current: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: current.append(name))
             for name, m in model.named_modules() if name]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as error:
        where = current[-1] if current else "the model's forward"
        raise InvalidInput(f"torch-pruning cannot trace the model at module {where!r}: "
                           f"{type(error).__name__}: {error}") from None
    finally:
        for hook in hooks:
            hook.remove()
    prunable = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LSTM)
    untraced = [name for name, m in model.named_modules() if isinstance(m, prunable) and m not in graph.module2node]
    if untraced:
        raise InvalidInput(f"torch-pruning cannot trace module(s) {', '.join(untraced)}: their outputs do not "
                           "reach the logits through autograd (detached or non-differentiable); pruning them "
                           "would break the model")
    return graph


def mixes_channels(module: nn.Module) -> bool:
    """A layer whose every output reads many input channels (not a depthwise conv, BatchNorm or activation)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.groups == 1 or module.groups != module.in_channels
    return isinstance(module, (nn.Linear, nn.RNNBase, nn.MultiheadAttention))


def output_layers(graph: tp.DependencyGraph) -> list[nn.Module]:
    """The layers whose output channels are the model's outputs, read from the traced graph: those with a path
    to the graph's end through no other channel-mixing layer (pooling, flatten, BatchNorm pass through).

    Pruning one would remove outputs (a 1000-way head pruned to 500), whatever the data's class count.
    """
    def reaches_end(node, seen: set) -> bool:
        if not node.outputs:
            return True
        for child in node.outputs:
            if id(child) in seen or mixes_channels(child.module):
                continue
            seen.add(id(child))
            if reaches_end(child, seen):
                return True
        return False

    return [m for m, node in graph.module2node.items() if mixes_channels(m) and reaches_end(node, set())]


class ChannelPruner:
    """Channel pruning of CNNs with DepGraph: by ratio, or step by step down to a MACs target."""

    def __init__(self, model: nn.Module, example: dict, config: PruneConfig):
        tensors = {k: torch.from_numpy(v) for k, v in example.items()}
        model.eval()
        if config.criterion == "bn_scale" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                      for m in model.modules()):
            raise InvalidInput("criterion bn_scale ranks channels by BatchNorm scale, but this model has no "
                               "BatchNorm layers; use magnitude, taylor or lamp")
        heads = output_layers(check_traceable(model, tensors))
        self.model, self.example, self.config = model, tensors, config
        self.base_macs = count_macs_params(model, example)[0]
        self.example_np = example
        # To a MACs target: many small steps, stopping as soon as the target is met.
        self.macs_steps = 40 if config.target_macs is not None else 0
        ratio = 0.9 if config.target_macs is not None else config.removed_fraction
        with contextlib.redirect_stdout(io.StringIO()):
            self.pruner = tp.pruner.MetaPruner(
                model, tensors, importance=IMPORTANCE[config.criterion](), pruning_ratio=ratio,
                iterative_steps=self.macs_steps or config.steps, global_pruning=config.global_pruning,
                ignored_layers=heads, round_to=None)
        self.done = False
        self.taken = 0

    def _gradients(self, batches) -> None:
        """Taylor importance needs gradients of the loss on real data."""
        self.model.zero_grad()
        self.model.train()
        for index, (inputs, labels) in enumerate(batches):
            if index >= self.config.taylor_batches:
                break
            nn.functional.cross_entropy(self.model(**inputs), labels).backward()
        self.model.eval()

    def _one(self, batches) -> None:
        if self.config.criterion == "taylor":
            self._gradients(batches)
        with contextlib.redirect_stdout(io.StringIO()):
            self.pruner.step()
        self.model.zero_grad(set_to_none=True)
        self.taken += 1

    def step(self, index: int, batches) -> None:
        if not self.macs_steps:
            self._one(batches)
            self.done = index >= self.config.steps
            return
        # Share the MACs target across the configured steps; the last step reaches it.
        goal = self.base_macs * (1 - (1 - self.config.target_macs) * index / self.config.steps)
        while self.taken < self.macs_steps and count_macs_params(self.model, self.example_np)[0] > goal:
            self._one(batches)
        self.done = index >= self.config.steps or self.taken >= self.macs_steps

    def arch(self, parent: dict) -> dict:
        return {**parent, "pruned": True}

    def summary(self) -> dict:
        widths = {name: m.out_channels for name, m in self.model.named_modules()
                  if isinstance(m, nn.modules.conv._ConvNd)}
        return {"method": "torch-pruning DepGraph channel pruning", "criterion": self.config.criterion,
                "global": self.config.global_pruning, "conv_widths": widths}


# --- LSTM: hidden units, four gates kept aligned --------------------------------------------------------------

def keep_indices(scores: torch.Tensor, keep: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, keep).indices).values


def prune_rnn_hidden(rnn: nn.RNNBase, keep: torch.Tensor) -> None:
    """Keep hidden units `keep` of a 1-layer unidirectional LSTM/GRU: rows of every gate, columns of W_hh."""
    if rnn.num_layers != 1 or rnn.bidirectional:
        raise InvalidInput(f"hidden-unit pruning supports 1-layer unidirectional RNNs, got {rnn}")
    gates = rnn.weight_hh_l0.shape[0] // rnn.hidden_size
    rows = torch.cat([keep + g * rnn.hidden_size for g in range(gates)])
    with torch.no_grad():
        rnn.weight_ih_l0 = nn.Parameter(rnn.weight_ih_l0[rows].clone())
        rnn.weight_hh_l0 = nn.Parameter(rnn.weight_hh_l0[rows][:, keep].clone())
        if rnn.bias:
            rnn.bias_ih_l0 = nn.Parameter(rnn.bias_ih_l0[rows].clone())
            rnn.bias_hh_l0 = nn.Parameter(rnn.bias_hh_l0[rows].clone())
    rnn.hidden_size = len(keep)
    rnn._init_flat_weights()


class HiddenUnitPruner:
    """LSTM/GRU hidden units by magnitude (all gates' rows, recurrent columns and the reading layer's columns).

    Works on any model with one 1-layer unidirectional LSTM/GRU whose hidden state one linear layer reads
    (the zoo lstm, the rnn students, a user's own LSTM classifier)."""

    done = True

    def __init__(self, model: nn.Module, example: dict, config: PruneConfig):
        rnns = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.LSTM, nn.GRU))]
        if len(rnns) != 1:
            raise InvalidInput("hidden-unit pruning expects exactly one LSTM/GRU in the model; found "
                               f"{[n for n, _ in rnns] or 'none'}")
        rnn = rnns[0][1]
        readers = [(n, m) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and m.in_features == rnn.hidden_size * (1 + rnn.bidirectional)]
        if len(readers) != 1:
            raise InvalidInput(f"hidden-unit pruning needs one linear layer reading {rnns[0][0]}'s hidden state "
                               f"({rnn.hidden_size} inputs); found {[n for n, _ in readers] or 'none'}")
        self.model, self.config, self.rnn, self.fc = model, config, rnn, readers[0][1]
        self.original = self.rnn.hidden_size

    def step(self, index: int, batches) -> None:
        rnn, fc = self.rnn, self.fc
        target = round(self.original * (1 - self.config.removed_fraction * index / self.config.steps))
        h = rnn.hidden_size
        gates = rnn.weight_ih_l0.view(-1, h, rnn.input_size).norm(dim=(0, 2)) ** 2
        gates += rnn.weight_hh_l0.view(-1, h, h).norm(dim=(0, 2)) ** 2 + rnn.weight_hh_l0.norm(dim=0) ** 2
        scores = gates + fc.weight.norm(dim=0) ** 2
        keep = keep_indices(scores.detach(), max(1, target))
        prune_rnn_hidden(rnn, keep)
        tp.prune_linear_in_channels(fc, sorted(set(range(h)) - set(keep.tolist())))
        self.done = index >= self.config.steps

    def arch(self, parent: dict) -> dict:
        return {**parent, "pruned": True}

    def summary(self) -> dict:
        return {"method": "gate-aware hidden-unit slicing (magnitude)", "hidden": self.rnn.hidden_size,
                "original_hidden": self.original}


# --- BERT: attention heads and FFN units -------------------------------------------------------------------

class BertPruner:
    """Removes the least important heads (q/k/v rows + output columns) and FFN units in every layer.

    Any encoder whose layer layout `transformer_layout` knows (BERT, RoBERTa, ELECTRA, DistilBERT, ...). The saved
    HF config records each layer's heads and FFN width (`edgeopt_pruned_layers`); the head size and therefore the
    attention scaling are unchanged, so save -> load -> export round-trips.
    """

    done = True

    def __init__(self, model: nn.Module, example: dict, config: PruneConfig):
        self.model, self.config = model, config
        self.hf = model.hf
        self.layout = layout_of(self.hf, "head and FFN pruning")
        first = self.layout.encoder_layers(self.hf)[0]
        self.original = {"heads": self.layout.heads(first),
                         "intermediate": self.layout.part(first, "up").out_features}

    def step(self, index: int, batches) -> None:
        fraction = index / self.config.steps
        layers = self.layout.encoder_layers(self.hf)
        for layer in layers:
            self._prune_heads(layer, round(self.original["heads"] * (1 - self.config.head_ratio * fraction)))
            self._prune_ffn(layer, round(self.original["intermediate"] * (1 - self.config.removed_fraction * fraction)))
        self.hf.config.edgeopt_pruned_layers = self.layers()
        self.hf.config.attention_head_size = self.layout.head_size(layers[0])
        self.done = index >= self.config.steps

    def _prune_heads(self, layer: nn.Module, keep_heads: int) -> None:
        layout = self.layout
        heads, size = layout.heads(layer), layout.head_size(layer)
        if keep_heads >= heads:
            return
        qkv, output = [layout.part(layer, name) for name in ("query", "key", "value")], layout.part(layer, "output")
        norm = lambda w: w.view(heads, size, -1).norm(dim=(1, 2)) ** 2  # noqa: E731
        scores = sum(norm(linear.weight) for linear in qkv) + output.weight.view(-1, heads, size).norm(dim=(0, 2)) ** 2
        kept = keep_indices(scores.detach(), max(1, keep_heads))
        removed = [h * size + i for h in range(heads) if h not in set(kept.tolist()) for i in range(size)]
        for linear in qkv:
            tp.prune_linear_out_channels(linear, removed)
        tp.prune_linear_in_channels(output, removed)
        layout.set_heads(layer, len(kept))

    def _prune_ffn(self, layer: nn.Module, keep: int) -> None:
        up, down = self.layout.part(layer, "up"), self.layout.part(layer, "down")
        if keep >= up.out_features:
            return
        scores = up.weight.norm(dim=1) * down.weight.norm(dim=0)
        kept = set(keep_indices(scores.detach(), max(1, keep)).tolist())
        removed = [i for i in range(up.out_features) if i not in kept]
        tp.prune_linear_out_channels(up, removed)
        tp.prune_linear_in_channels(down, removed)

    def layers(self) -> list[dict]:
        return [{"heads": self.layout.heads(layer), "intermediate": self.layout.part(layer, "up").out_features}
                for layer in self.layout.encoder_layers(self.hf)]

    def arch(self, parent: dict) -> dict:
        return dict(parent)  # the HF config carries the pruned shapes

    def summary(self) -> dict:
        return {"method": "head and FFN-unit slicing (magnitude)", "layers": self.layers(),
                "original": self.original}


PRUNERS = {Family.CNN: ChannelPruner, Family.LSTM: HiddenUnitPruner, Family.BERT: BertPruner}
