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
    assert {rt for r in recipes for rt in r.runtimes} == {"torch", "onnxruntime", "openvino", "tensorrt",
                                                         "executorch", "litert"}
    assert {m for m, model in config.models.items() for r in model.recipes
            if r.precision == "int8" and "executorch" in r.runtimes} == {"cnn", "resnet"}
    assert config.budget is not None and config.output.name == "edgeopt-out"


@pytest.mark.parametrize("patch,expected", [
    ({"modles": {}}, "modles: unknown key; allowed: output, seed, devices"),
    ({"models": {"cnn": {"zoo": "vgg"}}},
     "models.cnn.zoo: expected 'cnn', 'resnet', 'lstm' or 'bert', got 'vgg' (str)"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "quantise": {}}]}}},
     "models.cnn.recipes.0.quantise: unknown key; allowed: name, prune, distill, sequence, quantize, precision, "
     "runtimes"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "quantize": {"mode": "int4"},
                                                    "runtimes": ["onnxruntime"]}]}}},
     "models.cnn.recipes.0.quantize.mode: expected 'dynamic', 'static', 'fp16' or 'accuracy_control', got 'int4'"),
    ({"models": {"cnn": {"zoo": "cnn", "recipes": [{"name": "x", "runtimes": ["tflite"]}]}}},
     "models.cnn.recipes.0.runtimes.0: expected 'torch', 'onnxruntime', 'openvino', 'tensorrt', 'executorch' or "
     "'litert', got 'tflite' (str)"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "batch_sizes": ["eight"]},
     "batch_sizes.0: expected a valid integer, got 'eight' (str)"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "batch_sizes": [0]}, "batch sizes must be >= 1"),
    ({"models": {"cnn": {"zoo": "cnn"}}, "budget": {"min_accuracy": 90}},
     "budget.min_accuracy: expected less than or equal to 1, got 90 (int)"),
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


def _recipe(**recipe):
    return {"models": {"m": {"zoo": recipe.pop("zoo", "cnn"), "recipes": [{"name": "r", **recipe}]}}}


@pytest.mark.parametrize("patch,expected", [
    (_recipe(prune={"finetune": {"epoch": 1}}),
     "models.m.recipes.0.prune.finetune.epoch: unknown key; allowed: epochs, batch_size"),
    (_recipe(distill={"train": {"max_train_sample": 100}}),
     "models.m.recipes.0.distill.train.max_train_sample: unknown key; allowed: epochs,"),
    (_recipe(quantize={"calibraton": "minmax"}, runtimes=["onnxruntime"]),
     "models.m.recipes.0.quantize.calibraton: unknown key; allowed: mode, calibration"),
    (_recipe(prune={"ratio": True}),
     "models.m.recipes.0.prune.ratio: expected a number between 0 and 1, got true (bool)"),
    (_recipe(prune={"steps": False}), "prune.steps: expected an integer between 1 and 50, got false (bool)"),
    (_recipe(distill={"train": {"epochs": True}}), "distill.train.epochs: expected an integer >= 1, got true (bool)"),
    ({"models": {"m": {"zoo": "cnn"}}, "seed": True}, "seed: expected an integer, got true (bool)"),
    ({"models": {"m": {"zoo": "cnn"}}, "measure": {"latency": {"min_runs": True}}},
     "measure.latency.min_runs: expected an integer >= 1, got true (bool)"),
    ({"models": {"m": {"zoo": "cnn"}}, "budget": {"min_accuracy": True}},
     "budget.min_accuracy: expected a number between 0 and 1, got true (bool)"),
])
def test_nested_typos_and_wrong_types_are_errors(patch, expected):
    with pytest.raises(InvalidInput) as error:
        load_config(patch)
    assert expected in str(error.value)


@pytest.mark.parametrize("zoo,prune,rejected,works_on", [
    ("lstm", {"target_macs": 0.5}, "target_macs not supported for lstm models", "cnn"),
    ("lstm", {"criterion": "taylor"}, "criterion not supported for lstm models", "resnet"),
    ("lstm", {"head_ratio": 0.25}, "head_ratio not supported for lstm models", "bert"),
    ("bert", {"target_macs": 0.5}, "target_macs not supported for bert models", "resnet"),
    ("bert", {"global_pruning": True, "criterion": "lamp"}, "criterion, global_pruning not supported for bert",
     "cnn"),
    ("cnn", {"head_ratio": 0.25}, "head_ratio not supported for cnn models", "bert"),
])
def test_pruning_options_a_family_does_not_implement_are_rejected(zoo, prune, rejected, works_on):
    with pytest.raises(InvalidInput, match=rejected):
        load_config(_recipe(zoo=zoo, prune=prune))
    load_config(_recipe(zoo=works_on, prune=prune))  # accepted where they work


def test_dataset_on_a_zoo_image_model_is_an_error_and_on_a_text_one_its_training_data():
    with pytest.raises(InvalidInput, match=r"models.m: dataset: zoo model 'resnet' is trained and measured on Fash"):
        load_config({"models": {"m": {"zoo": "resnet", "dataset": "my.csv"}}})
    assert load_config({"models": {"m": {"zoo": "lstm", "dataset": "./my.csv"}}}).models["m"].dataset.endswith("my.csv")


def test_top_level_seed_reaches_every_step_unless_the_step_sets_its_own():
    recipe = {"name": "r", "prune": {"finetune": {"epochs": 1}}, "distill": {"student": "squeezenet"},
              "quantize": {"mode": "static"}, "runtimes": ["onnxruntime"]}
    steps = load_config({"seed": 7, "models": {"m": {"zoo": "cnn", "recipes": [recipe]}}}).models["m"].recipes[0]
    assert (steps.prune.seed, steps.distill.seed, steps.quantize.seed) == (7, 7, 7)
    own = {**recipe, "quantize": {"mode": "static", "seed": 3}}
    steps = load_config({"seed": 7, "models": {"m": {"zoo": "cnn", "recipes": [own]}}}).models["m"].recipes[0]
    assert (steps.prune.seed, steps.quantize.seed) == (7, 3)
    with pytest.raises(InvalidInput, match="finetune.seed: the step's seed seeds its training"):
        load_config(_recipe(prune={"finetune": {"seed": 1}}))


def test_zoo_families_known_to_the_config_match_the_zoo():
    from typing import get_args

    from edgeopt.config import ZOO_FAMILIES, ZooName
    from edgeopt.core.models.zoo import ZOO

    assert ZOO_FAMILIES == {name: entry.family for name, entry in ZOO.items()}
    assert set(get_args(ZooName)) == set(ZOO)
