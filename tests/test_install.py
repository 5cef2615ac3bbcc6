"""A plain (non-editable) install of the distribution imports every subpackage and carries its data files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["edgeopt", "edgeopt.core", "edgeopt.core.models", "edgeopt.cli", "edgeopt.optimize",
               "edgeopt.export", "edgeopt.runtimes", "edgeopt.benchmarks"]


def package_dirs() -> set[str]:
    """Every directory with an __init__.py, as the dotted name it installs under."""
    mapping = {"optimize": "edgeopt.optimize", "export": "edgeopt.export", "runtimes": "edgeopt.runtimes",
               "benchmarks": "edgeopt.benchmarks"}
    names = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and rel.parts[0] in ("tests", ".venv", "build") or not rel.parts:
            continue
        head = mapping.get(rel.parts[0], rel.parts[0])
        names.add(".".join([head, *rel.parts[1:]]))
    return names


def test_every_package_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert package_dirs() <= listed, f"add to pyproject packages: {sorted(package_dirs() - listed)}"


@pytest.mark.slow
def test_plain_install_imports_every_subpackage(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    script = (
        "import importlib, sys\n"
        f"for name in {packages!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(target)!r}), (name, module.__file__)\n"
        "from edgeopt.core.models.zoo import find_zoo_checkpoint\n"
        "from edgeopt.core.data import SENTIMENT_FILE\n"
        "assert SENTIMENT_FILE.exists(), SENTIMENT_FILE\n"
        "print(find_zoo_checkpoint('cnn').path)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "EDGEOPT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(target))
