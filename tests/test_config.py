"""The YAML config: the built-in default validates, bad input names the field and the allowed values."""
from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from edgeopt.cli import app
from edgeopt.config import DEFAULT_CONFIG, Config, json_schema, load_config
from edgeopt.core.errors import InvalidInput

runner = CliRunner()


def test_default_config_covers_families_techniques_and_runtimes():
    config = load_config(None)
    zoo = {m.zoo for m in config.models.values()}
    assert zoo == {"cnn", "resnet", "lstm", "bert"}
    recipes = [r for m in config.models.values() for r in m.recipes]
    assert any(r.prune for r in recipes) and any(r.distill for r in recipes)
    assert {r.quantize.mode for r in recipes if r.quantize} >= {"static", "dynamic"}
    assert any(r.precision == "fp16" for r in recipes)
    assert {rt for r in recipes for rt in r.runtimes} == {"torch", "onnxruntime", "openvino", "tensorrt"}
    assert config.budget is not None and config.output.name == "edgeopt-out"


@pytest.mark.parametrize("patch,expected", [
    ({"modles": {}}, "modles: unknown key; allowed: output, seed, devices"),
    ({"models": {"cnn": {"zoo": "vgg"}}}, "models.cnn.zoo: Input should be 'cnn', 'resnet', 'lstm' or 'bert'"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "quantise": {}}]}}},
     "models.cnn.recipes.0.quantise: unknown key; allowed: name, prune, distill, quantize, precision, runtimes"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "quantize": {"mode": "int4"},
                                                    "runtimes": ["onnxruntime"]}]}}},
     "models.cnn.recipes.0.quantize.mode: Input should be 'dynamic', 'static', 'fp16' or 'accuracy_control'"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "runtimes": ["tflite"]}]}}},
     "models.cnn.recipes.0.runtimes.0: Input should be 'torch', 'onnxruntime', 'openvino' or 'tensorrt'"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "batch_sizes": ["eight"]}, "batch_sizes.0: Input should be a valid integer"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "batch_sizes": [0]}, "batch sizes must be >= 1"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "budget": {"min_accuracy": 90}}, "budget.min_accuracy: Input should be "
                                                                          "less than or equal to 1"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "budget": {"max_latency_ms": -5}}, "budget.max_latency_ms"),
    ({"models": {"cnn": {"zoo": "cnn", "module": "a.b:c"}}}, "exactly one model source"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "q", "quantize": {}}]}}},
     "quantize works on exported models"),
    ({"models": {"mine": {"module": "not a factory", "dataset": "fashion-mnist"}}}, "package.module:function"),
])
def test_invalid_configs_name_the_field(patch, expected):
    with pytest.raises(InvalidInput) as error:
        load_config(patch)
    assert expected in str(error.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(InvalidInput, match="bad.yaml: not valid YAML"):
        load_config(path)
    path.write_text("models:\n  cnn: {zoo: cnn, devices: []}\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: models.cnn.devices"):
        load_config(path)
    with pytest.raises(InvalidInput, match="edgeopt init"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"models": {"mine": {"module": "mypkg.net:make", "weights": "w.pt",
                                                        "dataset": "./images"}}}))
    model = load_config(path).models["mine"]
    assert model.weights == tmp_path / "w.pt" and model.dataset == str(tmp_path / "images")
    assert model.python_path == tmp_path


def test_schema_is_exported_and_matches_the_models():
    schema = json_schema()
    assert schema["title"] == "edgeopt config" and "models" in schema["properties"]
    text = json.dumps(schema)
    for name in ("PruneConfig", "DistillConfig", "QuantizeConfig", "LatencyConfig", "Budget"):
        assert name in text
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0 and json.loads(result.stdout)["title"] == "edgeopt config"


def test_init_writes_a_commented_starter_that_validates(tmp_path):
    target = tmp_path / "edgeopt.yaml"
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    text = target.read_text()
    assert text == DEFAULT_CONFIG.read_text() and text.count("#") > 20
    Config.model_validate(yaml.safe_load(text))
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code != 0 and "already exists" in str(again.exception or again.output)
