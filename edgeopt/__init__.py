"""edgeopt: which version of my model fits my resources?

Prune, quantize and distill CNN, LSTM and BERT models, export them to ONNX, OpenVINO and TensorRT, and measure
accuracy, latency, memory and size of every variant on the runtimes and devices you have.

    from edgeopt import Pipeline, Budget, gate, load_results, recommend
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgeopt")
except _metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

# The Python API. What reads results is light (pydantic only) and imported now, so `edgeopt.gate` and
# `edgeopt.recommend` are the functions rather than the modules of the same name; Pipeline and the config load
# on first use, so `import edgeopt` never imports torch.
from edgeopt.gate import GateResult, gate, load_results  # noqa: E402
from edgeopt.recommend import Budget, Recommendation, recommend  # noqa: E402
from edgeopt.results import Row  # noqa: E402

_LAZY = {"Pipeline": "edgeopt.api", "Config": "edgeopt.config", "load_config": "edgeopt.config",
         "fit": "edgeopt.fit", "FitResult": "edgeopt.fit"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Budget", "Config", "FitResult", "GateResult", "Pipeline", "Recommendation", "Row", "fit", "gate",
           "load_config", "load_results", "recommend", "__version__"]
