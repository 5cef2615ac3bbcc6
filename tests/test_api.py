"""The documented examples run: the Python API example and the bring-your-own-model example."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_public_api_is_visible_typed_documented_and_light():
    assert {"Pipeline", "Budget", "gate", "recommend", "load_results", "Row"} <= set(dir(edgeopt))
    assert edgeopt.recommend.__module__ == "edgeopt.recommend"  # the function, not the module
    assert (Path(edgeopt.__file__).parent / "py.typed").exists()
    for name in edgeopt.__all__:
        obj = getattr(edgeopt, name)
        assert name == "__version__" or (obj.__doc__ or "").strip(), f"edgeopt.{name} has no docstring"
    for method in ("plan", "run", "results", "recommend", "report", "write_report"):
        assert getattr(Pipeline, method).__doc__, method
    probe = ("import sys, edgeopt, edgeopt.config; edgeopt.Budget; edgeopt.load_results; "
             "edgeopt.config.load_config(None); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_results_and_recommend_share_their_defaults():
    import inspect

    results, recommend = (inspect.signature(getattr(Pipeline, m)).parameters["all_runs"].default
                          for m in ("results", "recommend"))
    assert results is recommend is False


def test_load_results_without_a_config(tmp_path):
    from edgeopt.core.errors import InvalidInput
    from edgeopt.report import ReportData
    from edgeopt.results import candidate_id

    row = Row(candidate_id=candidate_id("cnn", "int8", "onnxruntime", "cpu-1t", "0" * 12), model="cnn",
              recipe="int8", family="cnn", format="onnx", precision="int8", runtime="onnxruntime", device="cpu-1t",
              batch_size=1, latency={"median": 1.0, "p95": 1.2}, accuracy=0.92)
    (tmp_path / "report.json").write_text(ReportData(rows=[row]).model_dump_json())
    for source in (tmp_path, tmp_path / "report.json", str(tmp_path)):
        (loaded,) = edgeopt.load_results(source)
        assert loaded.key == row.key and loaded.accuracy == 0.92
    rec = edgeopt.recommend(edgeopt.load_results(tmp_path), Budget(device="cpu-1t", max_latency_ms=2))
    assert rec.ok and rec.picks[0].row.recipe == "int8"
    with pytest.raises(InvalidInput, match="no such file"):
        edgeopt.load_results(tmp_path / "elsewhere")


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


@pytest.mark.slow  # an end-to-end run with pruning and distillation (~2 min on 2 cores)
def test_user_model_example(tmp_path):
    result = load(EXAMPLES / "user_model" / "run_example.py").main(tmp_path)
    assert result.exit_code == 0
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime"),
                         ("int8-ov", "openvino"), ("pruned", "onnxruntime"), ("mbv2", "onnxruntime")}
    assert all(r.model == "my-net" and r.family == "cnn" and r.ok for r in rows.values())
    # 3 classes among 10 outputs (label_map): far above chance, so weights, preprocessing and map all held
    assert all(r.accuracy > 0.7 for r in rows.values()), {k: r.accuracy for k, r in rows.items()}
    assert rows[("int8", "onnxruntime")].precision == rows[("int8-ov", "openvino")].precision == "int8"
    assert "my-net" in result.reports["html"].read_text()
