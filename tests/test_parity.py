"""Parity of quantized artifacts is judged over many real test samples: flips of near-tied logits are reported
apart from clear disagreements, so a coin-toss sample cannot fail a good INT8 model, and a broken one still fails.
Uses the shipped LSTM, quantized dynamically to INT8 by ONNX Runtime."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt.cli import app

from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import ParityError
from edgeopt.export import export_artifact, spec_for, verify_parity
from edgeopt.optimize import QuantizeConfig, quantize


@pytest.fixture(scope="module")
def lstm_onnx(lstm_artifact, tmp_path_factory):
    return export_artifact(lstm_artifact, "onnx", tmp_path_factory.mktemp("parity") / "lstm-onnx")


@pytest.fixture(scope="module")
def lstm_int8(lstm_onnx, tmp_path_factory):
    return quantize(lstm_onnx, QuantizeConfig(mode="dynamic", eval_samples=200),
                    tmp_path_factory.mktemp("parity") / "lstm-int8")


def edited(artifact: Artifact, out, name: str, edit) -> Artifact:
    """A copy of an ONNX artifact with one initializer changed by `edit(array) -> array` (a real, saved model)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(artifact.model_path))
    (tensor,) = [t for t in model.graph.initializer if t.name == name]
    tensor.CopyFrom(numpy_helper.from_array(edit(numpy_helper.to_array(tensor).copy()), name))
    child = artifact.derive(out, step={"step": "edit", "initializer": name})
    onnx.save(model, str(out / artifact.model_file))
    return child.save()


def test_int8_report_states_thresholds_samples_and_counts(lstm_int8):
    report = Artifact.load(lstm_int8.path).metrics["parity"]  # stored in the manifest
    assert report["ok"] and report["precision"] == "int8"
    assert report["thresholds"] == spec_for("lstm").tolerance("int8").as_dict()
    assert report["samples"] == spec_for("lstm").parity_samples >= 64
    entry = report["agreement"]  # judged on whole texts; the 5-token cut checks only shapes and logit errors
    assert entry["sequence"] == 128 and {c["sequence"] for c in report["cases"]} == {5, 128}
    assert entry["samples"] == report["samples"] and entry["near_tie_margin"] > 0
    assert entry["clear_disagreements"] <= entry["allowed_clear"]
    assert entry["top1_agreement"] == 1 - (entry["near_tie_flips"] + entry["clear_disagreements"]) / 128
    assert report["near_ties"] == entry["near_ties"] > 0
    assert 0 < report["max_abs"] < 0.5  # INT8 moves logits, within the stated limit


def test_a_flipped_near_tie_is_reported_not_failed(lstm_int8, lstm_onnx, tmp_path):
    """Moving a class's bias by less than the near-tie margin flips only near-tied samples: still parity."""
    before = lstm_int8.metrics["parity"]
    shift = 0.9 * before["agreement"]["near_tie_margin"]
    reports = [verify_parity(edited(lstm_int8, tmp_path / f"nudged-{sign}", "fc.bias",
                                    lambda b: b + np.array([0, sign * shift], b.dtype)), lstm_onnx)
               for sign in (1, -1)]  # towards either class: the near-ties lean both ways
    report = max(reports, key=lambda r: r["near_tie_flips"])
    assert report["ok"] and report["near_tie_flips"] > before["near_tie_flips"]
    assert report["top1_agreement"] < 1.0  # a single-sample rule would have failed it
    assert report["clear_disagreements"] <= report["agreement"]["allowed_clear"]


def test_perturbed_weights_fail_naming_the_artifact(lstm_int8, lstm_onnx, tmp_path):
    broken = edited(lstm_int8, tmp_path / "broken.partial", "fc.weight_Transposed_quantized",
                    lambda w: np.ascontiguousarray(w[:, ::-1]))  # the two classes' weights swapped
    with pytest.raises(ParityError, match=r"^lstm-int8-dynamic \(onnx, int8\): output 'logits' .* top-1 differs "
                                          r"clearly on \d+ \(allowed 3") as error:
        verify_parity(broken, lstm_onnx)
    assert str(tmp_path) not in str(error.value)  # named by artifact, never by a staging directory
    report = verify_parity(broken, lstm_onnx, raise_on_failure=False)
    assert not report["ok"] and report["clear_disagreements"] > 32


def test_cli_json_carries_the_parity_report(lstm_onnx, tmp_path):
    result = CliRunner().invoke(app, ["quantize", str(lstm_onnx.path), "--mode", "dynamic", "--eval-samples", "100",
                                      "-o", str(tmp_path / "int8"), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    parity = json.loads(result.stdout)["parity"]
    assert parity["ok"] and parity["samples"] == 128 and parity["thresholds"]["max_clear"] == 0.03
    assert {"near_ties", "near_tie_flips", "clear_disagreements", "max_abs"} <= set(parity)


def test_a_small_test_split_still_allows_one_clear_int8_flip():
    from edgeopt.export.specs import FP32, INT8

    assert INT8.allowed_clear(30) == 1 and INT8.allowed_clear(120) == 3 and INT8.allowed_clear(0) == 0
    assert FP32.allowed_clear(30) == 0  # fp32 allows none, whatever the size
