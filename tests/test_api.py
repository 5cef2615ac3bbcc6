"""The documented examples run: the Python API example and the bring-your-own-model example."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import edgeopt
from edgeopt.api import Pipeline
from edgeopt.gate import GateResult
from edgeopt.recommend import Budget, Recommendation
from edgeopt.results import Row

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_top_level_exports():
    assert edgeopt.Pipeline is Pipeline and edgeopt.Budget is Budget
    assert callable(edgeopt.gate) and edgeopt.gate.__module__ == "edgeopt.gate"


def test_python_api_example(tmp_path, capsys):
    out = load(EXAMPLES / "api_example.py").main(tmp_path)
    assert isinstance(out["recommendation"], Recommendation) and out["recommendation"].picks
    assert out["recommendation"].picks[0].row.family == "cnn"
    assert isinstance(out["gate"], GateResult) and out["gate"].passed
    assert all(isinstance(r, Row) and r.ok for r in out["result"].rows) and len(out["result"].rows) == 3
    assert out["reports"]["html"].exists()
    printed = capsys.readouterr().out
    assert "planned: cnn/int8/onnxruntime/cpu-1t#" in printed and "edgeopt gate PASSED" in printed
    again = Pipeline(load(EXAMPLES / "api_example.py").CONFIG, output=tmp_path).run(report=False)
    assert again.measured == 0 and again.resumed == 3


def test_user_model_example(tmp_path):
    result = load(EXAMPLES / "user_model" / "run_example.py").main(tmp_path)
    assert result.exit_code == 0
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "onnxruntime"), ("int8", "onnxruntime")}
    assert all(r.model == "my-net" and r.family == "cnn" for r in rows.values())
    assert rows[("fp32", "torch")].accuracy > 0.7  # 3 classes: far above chance, so weights and data loaded
    assert rows[("int8", "onnxruntime")].precision == "int8"
    assert "my-net" in result.reports["html"].read_text()
