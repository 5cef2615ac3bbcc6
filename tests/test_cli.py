"""The `edgeopt` command: --help everywhere, --json that parses, one-line errors with exit status 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from edgeopt.cli import app

runner = CliRunner()


def all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths = []

    def walk(command, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, prefix + [name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "edgeopt")
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output) > 100


def test_reporting_commands_offer_json():
    root = typer.main.get_command(app)
    missing = []

    def walk(command, prefix):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, prefix + [name])
        elif not any("--json" in p.opts for p in command.params):
            missing.append(" ".join(prefix))

    walk(root, [])
    allowed_without_json = {"init", "schema"}
    assert not [m for m in missing if m.split()[-1] not in allowed_without_json], missing


def test_doctor_json():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["cpu"]["logical_cores"] >= 1
    assert "avx2" in info["cpu"]["isa"]
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]
    assert "CPU" in info["openvino_devices"]
    assert info["tensorrt"]["importable"] in (True, False)
    assert "torch" in info["versions"]


def test_zoo_list_and_eval_json():
    listed = json.loads(runner.invoke(app, ["zoo", "list", "--json"]).output)
    assert {row["name"] for row in listed} == {"cnn", "resnet", "lstm", "bert"}
    result = runner.invoke(app, ["zoo", "eval", "cnn", "--max-samples", "500", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["samples"] == 500 and report["accuracy"] > 0.85 and report["macs"] > 0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from edgeopt.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_user_errors_are_one_line_with_status_2():
    result = run_cli("zoo", "eval", "no-such-model")
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert "not an edgeopt artifact" in result.stderr


def test_untrained_model_without_permission_to_train(tmp_path):
    env_cache = {"EDGEOPT_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "from edgeopt.cli import main; main()", "zoo", "eval", "bert"],
                            capture_output=True, text=True, env={**os.environ, **env_cache}, timeout=300)
    assert result.returncode == 2
    assert "edgeopt zoo train bert" in result.stderr
