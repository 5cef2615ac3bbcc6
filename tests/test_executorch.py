"""ExecuTorch (XNNPACK) export and runtime on the real zoo models and real data: fp32 and PT2E INT8 parity,
the delegation report, bounded dynamic batch and sequence length, threads, and clear errors."""
from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("executorch.runtime", reason="executorch is not installed: pip install 'edgeopt[executorch]'")

from edgeopt.core.artifacts import Artifact, Family, Format, Precision  # noqa: E402
from edgeopt.core.errors import CheckpointError, ExportError, InvalidInput  # noqa: E402
from edgeopt.export import export_artifact  # noqa: E402
from edgeopt.export.specs import dataset_of, spec_for  # noqa: E402
from edgeopt.runtimes import RuntimeConfig, load_runtime  # noqa: E402


def real_inputs(artifact, batch: int, seq: int | None = None, start: int = 0):
    return spec_for(artifact.family).sample_inputs(artifact, dataset_of(artifact).test, batch, seq, start)


@pytest.fixture(scope="module")
def exported(cnn_artifact, resnet_artifact, lstm_artifact, tmp_path_factory):
    """(model, precision) -> ExecuTorch artifact, exported once with the parity check."""
    parents = {"cnn": cnn_artifact, "resnet": resnet_artifact, "lstm": lstm_artifact}
    cache = {}

    def get(model: str, precision: str = "fp32"):
        if (model, precision) not in cache:
            out = tmp_path_factory.mktemp("et") / f"{model}-{precision}"
            # the LSTM is unrolled over its static sequence: a short bound keeps the build quick; its parity
            # check at 128 tokens would then refuse the longer test texts, so it is checked below instead
            lstm = {"options": {"max_sequence": 12}, "verify": False} if model == "lstm" else {}
            cache[model, precision] = export_artifact(parents[model], "executorch", out, precision, **lstm)
        return cache[model, precision]

    return get


@pytest.mark.parametrize("model,precision", [("cnn", "fp32"), ("cnn", "int8"), ("resnet", "int8")])
def test_cnn_family_exports_pass_parity_and_are_delegated(exported, model, precision):
    child = exported(model, precision)
    assert child.format == Format.EXECUTORCH and child.precision == Precision(precision)
    assert child.model_path.name == "model.pte" and Artifact.load(child.path).sha256 == child.sha256
    parity = child.metrics["parity"]
    assert parity["ok"] and parity["runtime"] == "executorch" and parity["reference_runtime"] == "torch"
    assert parity["top1_agreement"] >= (1.0 if precision == "fp32" else 0.97)
    delegation = child.metrics["delegation"]
    assert delegation["delegated_ops"]["aten_convolution_default"] >= 2
    assert not any("convolution" in op or "linear" in op for op in delegation["portable_ops"])
    step = child.recipe[-1]
    assert step["format"] == "executorch" and step["max_batch"] == 64
    if precision == "int8":
        assert step["quantization"]["per_channel"] and step["quantization"]["calibration_split"] == "train"
        assert delegation["delegated_ops"]["quantized_decomposed_quantize_per_tensor_default"] >= 1


def test_int8_is_smaller_and_close_to_fp32_accuracy(exported, cnn_artifact):
    fp32, int8 = exported("cnn"), exported("cnn", "int8")
    assert int8.size_bytes < 0.4 * fp32.size_bytes
    labels = np.asarray(dataset_of(cnn_artifact).test.labels[:1000])
    accuracy = {}
    for artifact in (fp32, int8):
        with load_runtime(artifact) as runtime:
            logits = np.concatenate([runtime.run(real_inputs(artifact, 50, start=s)) for s in range(0, 1000, 50)])
        accuracy[artifact.precision] = float((logits.argmax(1) == labels).mean())
    assert accuracy["fp32"] > 0.88 and accuracy["fp32"] - accuracy["int8"] < 0.01, accuracy


def test_dynamic_batch_up_to_its_bound(exported, cnn_artifact):
    child = exported("cnn")
    with load_runtime(child) as runtime, load_runtime(cnn_artifact) as reference:
        for batch in (1, 13, 64):
            inputs = real_inputs(child, batch)
            np.testing.assert_allclose(runtime.run(inputs), reference.run(inputs), atol=1e-4, rtol=1e-4)
        with pytest.raises(InvalidInput, match="batch 65 given; this executorch program takes at most 64"):
            runtime.run(real_inputs(child, 65))
        with pytest.raises(InvalidInput, match=r"shape \[2, 1, 14, 14\]"):
            runtime.run({"pixel_values": real_inputs(child, 2)["pixel_values"][:, :, :14, :14]})


def test_lstm_static_sequence_is_padded_and_matches_torch(exported, lstm_artifact):
    child = exported("lstm")
    step = child.recipe[-1]
    assert step["static_sequence"] and step["max_sequence"] == 12 and step["pad_values"] == {"input_ids": 0}
    with load_runtime(child) as runtime, load_runtime(lstm_artifact) as reference:
        for batch, seq in ((1, 3), (7, 12), (4, 40)):  # 40: the texts are short, trailing padding is dropped
            inputs = real_inputs(child, batch, seq, start=0 if seq < 40 else 100)
            if seq == 40:
                inputs = {"input_ids": inputs["input_ids"] * (np.arange(40) < 10)}
            np.testing.assert_allclose(runtime.run(inputs), reference.run(inputs), atol=1e-4, rtol=1e-4)
        with pytest.raises(InvalidInput, match="13 tokens before their padding; this executorch program takes at "
                                               "most 12"):
            runtime.run({"input_ids": np.ones((1, 13), dtype=np.int64)})


def test_threads_are_honoured(exported):
    """XNNPACK's process-wide pool is resized to the configured threads, and the result does not depend on it.

    Whether two threads are faster is a timing question: benchmarks/fidelity.py shows it, not a test.
    """
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    child = exported("resnet", "int8")
    inputs = real_inputs(child, 16)
    outputs = {}
    for threads in (1, 2):
        with load_runtime(child, config=RuntimeConfig(threads=threads)) as runtime:
            assert _threadpool_get_thread_count() == threads
            outputs[threads] = runtime.bind(inputs)()
    np.testing.assert_allclose(outputs[1], outputs[2], atol=1e-5)


def test_bert_lowers_or_names_the_op(bert_artifact, tmp_path):
    try:
        child = export_artifact(bert_artifact, "executorch", tmp_path / "bert", "fp32")
    except ExportError as error:
        assert "aten" in str(error) or "op " in str(error)
        return
    assert child.metrics["parity"]["ok"] and child.family == Family.BERT
    assert not child.recipe[-1]["static_sequence"]


def test_truncated_program_is_a_checkpoint_error(exported, tmp_path):
    source = exported("cnn")
    broken = source.derive(tmp_path / "broken", model_file=source.model_file)
    (tmp_path / "broken" / source.model_file).write_bytes(source.model_path.read_bytes()[:500])
    broken.save()
    with pytest.raises(CheckpointError, match="ExecuTorch cannot load it"):
        load_runtime(Artifact.load(tmp_path / "broken"))


def test_options_and_precisions_are_checked(cnn_artifact, tmp_path):
    with pytest.raises(InvalidInput, match="executorch export supports precision fp32, int8, not fp16"):
        export_artifact(cnn_artifact, "executorch", tmp_path / "a", "fp16")
    with pytest.raises(InvalidInput, match="max_batch"):
        export_artifact(cnn_artifact, "executorch", tmp_path / "b", options={"max_batch": 0})


def test_other_devices_are_refused(exported):
    """ExecuTorch here runs XNNPACK on the CPU: asking for a GPU is an error, never a silent CPU run."""
    from edgeopt.core.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match=r"executorch runtime runs on cpu \(XNNPACK\), not 'cuda'"):
        load_runtime(exported("cnn", "fp32"), config=RuntimeConfig(device="cuda"))
