"""Sequence length: deploy a text model with fewer tokens per text.

A text model runs on a fixed number of tokens per text (its encoder's max_len; inputs are padded or truncated to
it, and that is the shape timed). Most texts are much shorter than the longest: a smaller max_len makes every
inference cheaper (an LSTM takes fewer steps; BERT's attention and FFN see fewer rows) and changes predictions only
for the texts it truncates. The step copies the model unchanged and records the new max_len and the share of the
test split it truncates; accuracy is then measured as usual, on texts truncated the deployed way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgeopt.core.artifacts import Artifact, Family, check_output
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.zoo import preprocessor_of
from edgeopt.core.step_configs import SequenceConfig

UNLIMITED = 100_000  # tokens: no text here is longer


def shorten(artifact: Artifact, config: SequenceConfig, out_dir: Path, progress=None,
            force: bool = False) -> Artifact:
    """A copy of a text artifact in `out_dir` that takes `config.max_len` tokens per text."""
    if artifact.family == Family.CNN:
        raise InvalidInput(f"{artifact.path}: sequence length applies to text models (lstm, bert), not cnn")
    current = int(artifact.preprocess.get("max_len") or 0)
    if config.max_len > current:
        raise InvalidInput(f"{artifact.path}: max_len {config.max_len} is above the model's own {current}; a "
                           f"shorter sequence is the point (at most {current})")
    out_dir = check_output(out_dir, artifact, force)
    counts = token_counts(preprocessor_of(artifact), list(dataset_of(artifact).test.inputs))
    truncated = float((counts > config.max_len).mean())
    before = float((counts > current).mean())
    child = artifact.derive(out_dir, preprocess={**artifact.preprocess, "max_len": config.max_len},
                            step={"step": "sequence", "max_len": config.max_len,
                                  "truncates": f"{truncated:.1%} of test texts"})
    for name in artifact.model_file_names():
        source = artifact.path / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, out_dir / name)
    child.metrics["sequence"] = {"max_len_before": current, "max_len": config.max_len,
                                 "truncated_test_share_before": before, "truncated_test_share": truncated}
    return child.save()


def token_counts(preprocessor, texts: list[str]) -> np.ndarray:
    """Tokens per text before truncation (special tokens included: they count against max_len)."""
    ids = preprocessor(texts, max_len=UNLIMITED)["input_ids"]
    return (ids != preprocessor.pad_id).sum(axis=1)
