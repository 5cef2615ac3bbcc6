"""edgeopt: which version of my model fits my resources?

Prune, quantize and distill CNN, LSTM and BERT models, export them to ONNX, OpenVINO and TensorRT, and measure
accuracy, latency, memory and size of every variant on the runtimes and devices you have.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgeopt")
except _metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

# The Python API, `from edgeopt import Pipeline, Budget, gate`. `gate` is imported now (light: pydantic only),
# so the name is the function rather than the edgeopt.gate module; the rest loads on first use (torch is heavy).
from edgeopt.gate import gate  # noqa: E402

_LAZY = {"Pipeline": "edgeopt.api", "Budget": "edgeopt.recommend", "Recommendation": "edgeopt.recommend",
         "GateResult": "edgeopt.gate", "Row": "edgeopt.results", "Config": "edgeopt.config",
         "load_config": "edgeopt.config"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")


__all__ = ["Budget", "Config", "GateResult", "Pipeline", "Recommendation", "Row", "gate", "load_config",
           "__version__"]
