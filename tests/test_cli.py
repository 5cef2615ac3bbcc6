"""The `edgeopt` command: --help everywhere, --json that parses, one-line errors with exit status 2."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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
    allowed_without_json = {"init", "schema", "serve"}  # serve runs a service; it reports nothing
    assert not [m for m in missing if m.split()[-1] not in allowed_without_json], missing


def test_doctor_json_describes_this_machine():
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["cpu"]["logical_cores"] == os.cpu_count()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.startswith(("flags", "Features"))), []))
    assert info["cpu"]["isa"] == {flag: flag in flags for flag in info["cpu"]["isa"]}
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]
    assert "CPU" in info["openvino_devices"]
    assert info["tensorrt"]["importable"] == (importlib.util.find_spec("tensorrt") is not None)
    for package in ("torch", "onnxruntime", "openvino"):
        assert info["versions"][package] == metadata.version(package)


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


def test_onnx_options_that_an_openvino_export_would_ignore_are_errors(tmp_path):
    result = run_cli("export", "cnn", "--format", "openvino", "--opset", "17", "-o", str(tmp_path / "ov"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "onnx options (opset" in result.stderr and "--source onnx" in result.stderr
    assert not (tmp_path / "ov").exists()
