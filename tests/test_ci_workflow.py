"""docs/ci-workflow.yml: the README's setup and commands, options the CLI has, and what a fresh runner needs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main
import yaml

from edgeopt.cli import app

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = yaml.safe_load((ROOT / "docs" / "ci-workflow.yml").read_text())
README = (ROOT / "README.md").read_text()
JOB = WORKFLOW["jobs"]["measure"]
STEPS = JOB["steps"]


def shell_lines(script: str) -> list[str]:
    """Lines of a shell script with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


def edgeopt_calls(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(command, options) of each `edgeopt ...` or `.venv/bin/edgeopt ...` call in these lines."""
    calls = []
    for line in lines:
        tokens = shlex.split(line.split("#", 1)[0]) if "edgeopt" in line else []
        for i, token in enumerate(tokens):
            if token in ("edgeopt", ".venv/bin/edgeopt") and i + 1 < len(tokens):
                rest = tokens[i + 1:]
                rest = rest[:rest.index("&&")] if "&&" in rest else rest
                calls.append((rest[0], [t.split("=", 1)[0] for t in rest[1:] if t.startswith("-")]))
    return calls


def cli_options(command: str) -> set[str]:
    root = typer.main.get_command(app)
    assert command in root.commands, f"`edgeopt {command}` is not a command"
    return {opt for param in root.commands[command].params for opt in param.opts + param.secondary_opts}


def readme_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [line for block in blocks for line in shell_lines(block)]


WORKFLOW_CALLS = edgeopt_calls([line for step in STEPS for line in shell_lines(step.get("run", ""))])


def test_uses_the_readme_bootstrap_and_venv():
    runs = [step.get("run", "").strip() for step in STEPS]
    assert "./scripts/bootstrap.sh" in runs
    assert "./scripts/bootstrap.sh && .venv/bin/edgeopt run" in README
    assert all(line.lstrip().startswith(".venv/bin/edgeopt") for step in STEPS
               for line in shell_lines(step.get("run", "")) if re.match(r"\s*edgeopt\b", line)), \
        "call edgeopt from the venv the bootstrap made, as the README does"
    bootstrap = runs.index("./scripts/bootstrap.sh")
    first_call = min(i for i, run in enumerate(runs) if run.startswith(".venv/bin/edgeopt"))
    assert bootstrap < first_call


def test_workflow_commands_exist_in_the_cli_and_the_readme():
    assert {command for command, _ in WORKFLOW_CALLS} >= {"run", "gate"}
    readme_calls = edgeopt_calls(readme_lines())
    for command, options in WORKFLOW_CALLS:
        assert command in {c for c, _ in readme_calls}, f"README shows no `edgeopt {command}`"
        unknown = set(options) - cli_options(command)
        assert not unknown, f"workflow: `edgeopt {command}` has no {sorted(unknown)}"
    for command, options in readme_calls:
        if command in {c for c, _ in WORKFLOW_CALLS}:
            assert not set(options) - cli_options(command), f"README: `edgeopt {command}` {options}"


def test_gate_writes_what_the_comment_and_report_steps_read():
    (gate_options,) = [options for command, options in WORKFLOW_CALLS if command == "gate"]
    assert "--output" in gate_options or "-o" in gate_options
    gate_step = next(step for step in STEPS if "edgeopt gate" in step.get("run", ""))
    out = re.search(r"(?:--output|-o) (\S+)", gate_step["run"]).group(1)
    comment = next(step for step in STEPS if "sticky-pull-request-comment" in step.get("uses", ""))
    junit = next(step for step in STEPS if "junit" in step.get("uses", ""))
    assert comment["with"]["path"] == f"{out}/gate.md" and junit["with"]["report_paths"] == f"{out}/gate.xml"
    assert f"hashFiles('{out}/gate.md') != ''" in comment["if"] and "always()" in comment["if"]


def test_fresh_runner_needs_permissions_timeout_and_caches():
    assert WORKFLOW["permissions"]["pull-requests"] == "write" and WORKFLOW["permissions"]["checks"] == "write"
    assert 0 < JOB["timeout-minutes"] <= 360
    python = next(step for step in STEPS if step.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11" and python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"] == "constraints.txt"
    cache = next(step for step in STEPS if step.get("uses", "").startswith("actions/cache"))
    assert "~/.cache/edgeopt" in cache["with"]["path"]
    for results_input in ("constraints.txt", "edgeopt.yaml", "pyproject.toml"):  # pyproject: edgeopt's version
        assert results_input in cache["with"]["key"]


def test_says_how_to_create_the_config():
    fragment = "edgeopt init edgeopt.yaml"
    text = (ROOT / "docs" / "ci-workflow.yml").read_text()
    assert fragment in text.split("name:", 1)[0]  # in the header a user reads first
    assert fragment in next(step["run"] for step in STEPS if "edgeopt.yaml" in step.get("run", "")
                            and "init" in step.get("run", ""))
