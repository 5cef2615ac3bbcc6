"""edgeopt: which version of my model fits my resources?

Prune, quantize and distill CNN, LSTM and BERT models, export them to ONNX, OpenVINO and TensorRT, and measure
accuracy, latency, memory and size of every variant on the runtimes and devices you have.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edgeopt")
except _metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
