"""Inputs for programs traced by torch.export with bounded shapes (ExecuTorch, LiteRT).

The artifact's export step states the upper bounds (`max_batch`, `max_sequence`), whether the sequence length
was fixed at its bound (`static_sequence`, nn.LSTM), and for programs traced per static batch size, those sizes
(`batch_sizes`: a batch runs in the next size up, the runtime drops the padded rows from the output). Text is
fitted to the bound with the recorded `pad_values`: shorter inputs right-padded (static), longer ones cut by
trailing columns that are padding in every row. Neither changes the logits (the LSTM reads its state at the
last real token, BERT masks padding). More real tokens than the bound, or a larger batch, are refused with a
message naming the bound.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import CheckpointError, InvalidInput


def export_step(artifact: Artifact) -> dict[str, Any]:
    """The manifest's step that wrote this artifact's format (it carries the bounds)."""
    step = next((s for s in reversed(artifact.recipe) if s.get("format") == str(artifact.format)), None)
    if step is None or "max_batch" not in step:
        raise CheckpointError(f"{artifact.path}: the manifest has no {artifact.format} export step with its shape "
                              "bounds; export the model again with `edgeopt export`")
    return step


def fit_inputs(artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check the batch against its bound; fit text to the sequence bound (trailing padding dropped or added)."""
    step = export_step(artifact)
    batch = next(iter(inputs.values())).shape[0]
    if batch > step["max_batch"]:
        raise InvalidInput(f"{artifact.path}: batch {batch} given; this {artifact.format} program takes at most "
                           f"{step['max_batch']} (export option max_batch)")
    limit, pads = step.get("max_sequence"), step.get("pad_values", {})
    if step.get("batch_sizes"):  # a program per static batch size: pad rows up to the next one
        rows = min(size for size in step["batch_sizes"] if size >= batch) - batch
        inputs = {name: np.pad(value, ((0, rows),) + ((0, 0),) * (value.ndim - 1),
                               constant_values=pads.get(name, 0)) for name, value in inputs.items()}
    if not limit:
        return {name: np.ascontiguousarray(value) for name, value in inputs.items()}
    length = max(value.shape[1] for value in inputs.values())
    if length > limit:
        padding = np.logical_and.reduce([(value == pads.get(name, 0)).all(axis=0) for name, value in inputs.items()])
        used = 0 if padding.all() else len(padding) - int(np.argmin(padding[::-1]))  # up to the last real token
        if used > limit:
            raise InvalidInput(f"{artifact.path}: inputs have {used} tokens before their padding; this "
                               f"{artifact.format} program takes at most {limit} (export option max_sequence)")
    target = limit if step.get("static_sequence") or length > limit else length
    return {name: np.ascontiguousarray(np.pad(value[:, :target], ((0, 0), (0, max(0, target - value.shape[1]))),
                                              constant_values=pads.get(name, 0)))
            for name, value in inputs.items()}
