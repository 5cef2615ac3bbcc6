"""LiteRT export (litert-torch + ai-edge-quantizer) and runtime (ai-edge-litert Interpreter) on the real zoo CNN
and LSTM with real data: fp32, dynamic-range and full INT8 parity, batch signatures, threads, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed: pip install 'edgeopt[litert]'")
pytest.importorskip("litert_torch", reason="the LiteRT converter is not installed: pip install 'edgeopt[litert-convert]'")

from edgeopt.core.artifacts import Artifact, Format, Precision  # noqa: E402
from edgeopt.core.errors import CheckpointError, InvalidInput  # noqa: E402
from edgeopt.export import export_artifact  # noqa: E402
from edgeopt.export.specs import dataset_of, spec_for  # noqa: E402
from edgeopt.runtimes import RuntimeConfig, load_runtime  # noqa: E402


def real_inputs(artifact, batch: int, seq: int | None = None):
    return spec_for(artifact.family).sample_inputs(artifact, dataset_of(artifact).test, batch, seq)


@pytest.fixture(scope="module")
def exported(cnn_artifact, tmp_path_factory):
    cache = {}

    def get(precision: str = "fp32", activations: str = "static"):
        if (precision, activations) not in cache:
            out = tmp_path_factory.mktemp("litert") / f"cnn-{precision}-{activations}"
            cache[precision, activations] = export_artifact(cnn_artifact, "litert", out, precision,
                                                            {"activations": activations})
        return cache[precision, activations]

    return get


@pytest.mark.parametrize("precision,activations", [("fp32", "static"), ("int8", "dynamic"), ("int8", "static")])
def test_cnn_exports_pass_parity(exported, precision, activations):
    child = exported(precision, activations)
    assert child.format == Format.LITERT and child.precision == Precision(precision)
    parity = child.metrics["parity"]
    assert parity["ok"] and parity["runtime"] == "litert"
    assert parity["top1_agreement"] >= (1.0 if precision == "fp32" else 0.97)
    step = child.recipe[-1]
    assert step["batch_sizes"] == [1, 8, 64] and step["max_batch"] == 64
    if precision == "int8":
        assert step["quantization"]["activations"] == activations
        assert child.size_bytes < 0.35 * exported().size_bytes


def test_batches_run_in_the_next_signature_and_threads_are_set(exported, cnn_artifact):
    child = exported()
    with load_runtime(child, config=RuntimeConfig(threads=2)) as runtime, load_runtime(cnn_artifact) as reference:
        assert runtime.config.threads == 2
        for batch in (1, 5, 64):
            inputs = real_inputs(child, batch)
            logits = runtime.run(inputs)
            assert logits.shape == (batch, 10)
            np.testing.assert_allclose(logits, reference.run(inputs), atol=1e-4, rtol=1e-4)
        with pytest.raises(InvalidInput, match="batch 65 given; this litert program takes at most 64"):
            runtime.run(real_inputs(child, 65))


def test_lstm_fp32_at_its_static_sequence(lstm_artifact, tmp_path):
    child = export_artifact(lstm_artifact, "litert", tmp_path / "lstm", "fp32",
                            {"max_sequence": 12, "batch_sizes": [1, 4]}, verify=False)
    assert child.recipe[-1]["static_sequence"]
    with load_runtime(child) as runtime, load_runtime(lstm_artifact) as reference:
        for batch, seq in ((1, 5), (3, 12)):
            inputs = real_inputs(child, batch, seq)
            np.testing.assert_allclose(runtime.run(inputs), reference.run(inputs), atol=1e-4, rtol=1e-4)


def test_lstm_full_int8_calibrates_on_its_int32_token_ids(lstm_artifact, tmp_path):
    """The converter makes int64 token ids int32: calibration samples are fed in the signature's dtypes."""
    child = export_artifact(lstm_artifact, "litert", tmp_path / "lstm-int8", "int8",
                            {"activations": "static", "max_sequence": 12, "batch_sizes": [1, 4],
                             "calibration_samples": 16}, verify=False)
    assert child.precision == Precision.INT8 and child.recipe[-1]["quantization"]["calibration_samples"] == 16
    with load_runtime(child) as runtime:
        assert runtime.run(real_inputs(child, 3, 12)).shape == (3, 2)


def test_truncated_file_is_a_checkpoint_error(exported, tmp_path):
    source = exported()
    broken = source.derive(tmp_path / "broken", model_file=source.model_file)
    (tmp_path / "broken" / source.model_file).write_bytes(source.model_path.read_bytes()[:300])
    broken.save()
    with pytest.raises(CheckpointError, match="LiteRT cannot load it"):
        load_runtime(Artifact.load(tmp_path / "broken"))
