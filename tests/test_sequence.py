"""The sequence step: a text model deployed with fewer tokens per text is the same model, truncating the longest
texts, timed at its own (shorter) length; bad recipes are refused with the reason."""
from __future__ import annotations

import numpy as np
import pytest

from edgeopt.config import Config, ModelConfig, RecipeConfig
from edgeopt.core.artifacts import Artifact
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.zoo import load_zoo_model
from edgeopt.core.preprocess import load_preprocessor
from edgeopt.optimize import STEPS, SequenceConfig, shorten
from edgeopt.optimize.sequence import token_counts


def test_shorter_sequence_truncates_only_the_longest_texts(tmp_path):
    source = load_zoo_model("lstm")
    short = shorten(source, SequenceConfig(max_len=40), tmp_path / "len40")
    again = Artifact.load(short.path)
    assert again.preprocess["max_len"] == 40 and source.preprocess["max_len"] == 64
    assert again.model_hash() == source.model_hash()  # the same weights: only the input length changes
    assert again.recipe[-1]["step"] == "sequence" and again.recipe[-1]["max_len"] == 40

    texts = list(dataset_of(source).test.inputs)
    counts = token_counts(load_preprocessor(source.path, source.preprocess), texts)
    shares = again.metrics["sequence"]
    assert shares["truncated_test_share"] == pytest.approx(float(np.mean(counts > 40)))
    assert 0 < shares["truncated_test_share"] < 0.2 and shares["truncated_test_share_before"] == 0.0
    assert again.recipe[-1]["truncates"] == f"{shares['truncated_test_share']:.1%} of test texts"
    encoded = load_preprocessor(again.path, again.preprocess)(texts[:200])
    assert encoded["input_ids"].shape[1] == min(40, int(counts[:200].max()))


def test_timed_inputs_take_the_shorter_length(tmp_path):
    from edgeopt.benchmarks.sweep import BenchConfig, prepare_inputs
    from edgeopt.benchmarks.worker import LATENCY_KEY

    short = shorten(load_zoo_model("lstm"), SequenceConfig(max_len=32), tmp_path / "len32")
    inputs = np.load(prepare_inputs(short, BenchConfig(accuracy_samples=64), tmp_path))
    assert inputs[f"{LATENCY_KEY}/1/input_ids"].shape == (1, 32)


def test_bad_sequence_recipes_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not cnn"):
        shorten(load_zoo_model("cnn"), SequenceConfig(max_len=32), tmp_path / "a")
    with pytest.raises(InvalidInput, match="above the model's own 64"):
        shorten(load_zoo_model("lstm"), SequenceConfig(max_len=96), tmp_path / "b")
    with pytest.raises(ValueError, match="is for text models, not cnn"):
        ModelConfig(zoo="cnn", recipes=[RecipeConfig(name="short", sequence=SequenceConfig(max_len=32))])
    with pytest.raises(ValueError, match="above the model's max_len 64"):
        ModelConfig(zoo="lstm", recipes=[RecipeConfig(name="long", sequence=SequenceConfig(max_len=128))])
    assert STEPS["sequence"].config_class is SequenceConfig


def test_the_pipeline_shortens_before_export_and_quantize():
    from edgeopt.pipeline import make_plan

    recipe = RecipeConfig(name="len48-int8", runtimes=["onnxruntime"], sequence=SequenceConfig(max_len=48),
                          quantize={"mode": "dynamic"})
    (candidate,) = make_plan(Config(models={"lstm": ModelConfig(zoo="lstm", recipes=[recipe])})).candidates
    assert [n.kind for n in candidate.node.chain()] == ["source", "sequence", "export", "quantize"]


@pytest.mark.parametrize("fmt", ["executorch", "litert"])
def test_a_bounded_program_is_traced_at_the_shorter_sequence(tmp_path, fmt):
    """ExecuTorch and LiteRT trace text up to the artifact's max_len: parity inputs are cut there first, as the
    deployed model receives them (texts longer than the bound are not an error)."""
    from edgeopt.export import EXPORTERS, export_artifact
    from edgeopt.runtimes.bounded import export_step

    why = EXPORTERS[fmt].unavailable()
    if why:
        pytest.skip(f"{fmt}: {why}")
    short = shorten(load_zoo_model("lstm"), SequenceConfig(max_len=32), tmp_path / "len32")
    exported = export_artifact(short, fmt, tmp_path / fmt, verify=True)
    assert exported.metrics["parity"]["ok"] and export_step(exported)["max_sequence"] == 32
