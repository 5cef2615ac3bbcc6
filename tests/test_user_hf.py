"""Your own Hugging Face text classifier (a DistilBERT directory trained from scratch by the example) through
FP32 / INT8 / pruned / distilled recipes: examples/user_hf/run_example.py, run end to end."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_hf" / "run_example.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("user_hf_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # trains the DistilBERT, then prunes, distills, exports and quantizes it (~3 min on 2 idle cores)
def test_user_hf_example(tmp_path):
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.models.transformer_layout import LAYOUTS
    from edgeopt.core.models.zoo import load_module

    example = _load_example()
    result = example.main(tmp_path)
    assert result.exit_code == 0, [r.error for r in result.rows]
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime"),
                         ("int8-ov", "openvino"), ("pruned", "onnxruntime"), ("student", "onnxruntime")}
    assert all(r.ok and r.family == "bert" and r.accuracy_samples == 400 for r in rows.values())
    fp32 = rows[("fp32", "torch")].accuracy
    assert fp32 > 0.6  # 3 classes (the largest is 53% of the test rows): the trained head and tokenizer held
    assert rows[("fp32", "onnxruntime")].accuracy == pytest.approx(fp32)
    for int8 in (rows[("int8", "onnxruntime")], rows[("int8-ov", "openvino")]):
        assert int8.precision == "int8" and int8.accuracy > fp32 - 0.04

    source = Artifact.load(rows[("fp32", "torch")].artifact_path)
    assert source.labels == ["fresh", "plot", "rotten"] and source.preprocess["kind"] == "wordpiece"
    layout = LAYOUTS["distilbert"]
    cache = tmp_path / "edgeopt-out" / "cache"
    (pruned,) = [Artifact.load(d) for d in cache.glob("prune-*")]
    sizes = example.SIZES
    assert pruned.metrics["prune"]["original"] == {"heads": sizes["n_heads"], "intermediate": sizes["hidden_dim"]}
    model = load_module(pruned)
    for layer in layout.encoder_layers(model.hf):  # 4 heads -> 3, 512 FFN units -> 358
        assert layout.heads(layer) == 3 and layout.part(layer, "up").out_features == round(0.7 * sizes["hidden_dim"])
    assert pruned.metrics["params"] < source.metrics["params"]

    (student,) = [Artifact.load(d) for d in cache.glob("distill-*")]
    assert len(layout.encoder_layers(load_module(student).hf)) == 1
    summary = student.metrics["distill"]
    assert summary["student"] == "bert" and "baseline_test_accuracy" in summary  # compared with the student alone
    assert summary["teacher_test_accuracy"] == pytest.approx(fp32, abs=0.01)
    assert "my-distilbert" in result.reports["html"].read_text()
