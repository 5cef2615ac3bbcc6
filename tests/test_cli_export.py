"""`edgeopt export` and `edgeopt predict`: JSON that parses, parity printed, one-line errors with status 2."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt.cli import app, main

runner = CliRunner()


def invoke_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def main_error(monkeypatch, *args: str) -> str:
    """Run the real entry point; return its stderr after asserting status 2 and a one-line message."""
    import edgeopt.cli

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "argv", ["edgeopt", *args])
    monkeypatch.setattr(edgeopt.cli.console_err, "file", stderr)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = stderr.getvalue().strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory, cnn_artifact):
    out = tmp_path_factory.mktemp("cli") / "cnn-onnx"
    summary = invoke_json("export", str(cnn_artifact.path), "--format", "onnx", "--output", str(out))
    return out, summary


def test_export_json_reports_path_and_parity(cnn_onnx):
    out, summary = cnn_onnx
    assert summary["path"] == str(out) and (out / "model.onnx").exists()
    assert summary["format"] == "onnx" and summary["step"]["exporter"] == "dynamo"
    parity = summary["parity"]
    assert parity["ok"] and {c["batch"] for c in parity["cases"]} == {1, 7} and parity["max_abs"] < 1e-3


def test_export_prints_parity_table_for_people(tmp_path):
    result = runner.invoke(app, ["export", "cnn", "-f", "openvino", "--precision", "fp16", "--output",
                                 str(tmp_path / "ir")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"openvino fp16: {tmp_path / 'ir'}" in result.output
    assert "max abs err" in result.output and "yes" in result.output


def test_predict_sample_image_and_npy_agree(cnn_onnx, fashion, tmp_path):
    from PIL import Image

    out, _ = cnn_onnx
    by_sample = invoke_json("predict", str(out), "--sample", "0")
    row = by_sample["predictions"][0]
    assert by_sample["runtime"] == "onnxruntime" and by_sample["true_label"] == fashion.classes[fashion.test.labels[0]]
    assert row["class"] in fashion.classes and abs(sum(row["probs"].values()) - 1) < 1e-5
    Image.fromarray(fashion.test.inputs[0]).save(tmp_path / "shoe.png")
    np.save(tmp_path / "shoe.npy", fashion.test.inputs[0])
    for path in (tmp_path / "shoe.png", tmp_path / "shoe.npy"):
        result = invoke_json("predict", str(out), "--input", str(path), "--runtime", "openvino")
        assert result["runtime"] == "openvino"
        assert result["predictions"][0]["class"] == row["class"]
        assert abs(result["predictions"][0]["probability"] - row["probability"]) < 1e-3


def test_predict_text_through_a_named_runtime(lstm_artifact):
    result = invoke_json("predict", str(lstm_artifact.path), "--input", "a warm, funny and moving film",
                         "--runtime", "torch")
    assert result["runtime"] == "torch" and result["predictions"][0]["class"] in lstm_artifact.labels


def test_export_errors_are_one_line(monkeypatch, tmp_path):
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"\x08\x07\x12\x04this is not a protobuf")
    err = main_error(monkeypatch, "export", str(corrupt), "--family", "cnn", "--format", "openvino")
    assert "broken.onnx" in err and ("not a readable ONNX model" in err or "invalid ONNX model" in err)
    err = main_error(monkeypatch, "export", "cnn", "--format", "onnx", "--precision", "int8",
                     "--output", str(tmp_path / "x"))
    assert "onnx export supports precision fp32, not int8" in err
    from edgeopt.runtimes import RUNTIMES

    if not RUNTIMES["tensorrt"].availability().ok:
        err = main_error(monkeypatch, "export", "cnn", "--format", "tensorrt", "--output", str(tmp_path / "e"))
        assert "TensorRT is not installed" in err and "pip install edgeopt" in err


def test_predict_errors_are_one_line(monkeypatch, cnn_onnx, tmp_path):
    out, _ = cnn_onnx
    err = main_error(monkeypatch, "predict", str(out), "--sample", "0", "--runtime", "torch")
    assert "cannot run onnx artifacts" in err
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3), dtype=np.float32))
    err = main_error(monkeypatch, "predict", str(out), "--input", str(tmp_path / "wrong.npy"))
    assert "'pixel_values' has shape [3, 3]; expected ['batch', 1, 28, 28]" in err
    err = main_error(monkeypatch, "predict", str(out), "--input", "x.png", "--sample", "1")
    assert "exactly one of --input" in err


def test_predict_on_an_artifact_whose_runtime_is_missing(monkeypatch, cnn_artifact, tmp_path):
    from edgeopt.core.artifacts import Format
    from edgeopt.runtimes import RUNTIMES

    if RUNTIMES["tensorrt"].availability().ok:
        pytest.skip("TensorRT is available here")
    engine = cnn_artifact.derive(tmp_path / "engine", format=Format.TENSORRT, model_file="model.engine")
    (tmp_path / "engine" / "model.engine").write_bytes(b"built elsewhere")
    engine.save()
    err = main_error(monkeypatch, "predict", str(tmp_path / "engine"), "--sample", "0")
    assert "runtime 'tensorrt' is not available" in err and "TensorRT is not installed" in err
