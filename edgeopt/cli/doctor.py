"""`edgeopt doctor`: what this machine has for running and measuring models."""
from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from .output import JSON_OPTION_HELP, console, emit


def collect() -> dict[str, Any]:
    from edgeopt.core.environment import cpu_info, cuda_devices, package_versions
    from edgeopt.runtimes import runtime_report

    info: dict[str, Any] = {"cpu": cpu_info(), "cuda": cuda_devices(), "versions": package_versions()}
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    try:
        import openvino

        info["openvino_devices"] = openvino.Core().available_devices
    except ImportError:
        info["openvino_devices"] = []
    try:
        import tensorrt

        info["tensorrt"] = {"importable": True, "version": tensorrt.__version__}
    except ImportError as error:
        info["tensorrt"] = {"importable": False, "reason": str(error)}
    info["runtimes"] = runtime_report()
    info["exporters"] = exporter_report()
    info["data"] = data_report()
    return info


def exporter_report() -> dict[str, dict[str, Any]]:
    """Whether each export format works here (the LiteRT converter is an extra of its own)."""
    from edgeopt.export import EXPORTERS

    return {name: {"ok": not why, "reason": why or ""} for name, why in
            ((name, exporter.unavailable()) for name, exporter in EXPORTERS.items())}


def data_report() -> dict[str, dict[str, Any]]:
    """Whether the data the zoo needs is installed: the Fashion-MNIST package and the MiniLM weights."""
    from edgeopt.core import data
    from edgeopt.core.errors import EdgeoptError
    from edgeopt.core.models.bert import minilm_path

    def fashion_mnist():
        data.load_idx_dir()  # reads the files: present is not enough
        return data.FASHION_MNIST_DIR

    report = {}
    for name, locate in (("fashion-mnist", fashion_mnist), ("minilm-weights", minilm_path)):
        try:
            report[name] = {"ok": True, "path": str(locate())}
        except EdgeoptError as error:
            report[name] = {"ok": False, "reason": str(error)}
    return report


def render(info: dict[str, Any]) -> None:
    cpu = info["cpu"]
    table = Table(title="edgeopt doctor", show_header=False)
    table.add_row("CPU", f"{cpu['model']} ({cpu['arch']})")
    table.add_row("cores", f"{cpu['logical_cores']} logical, {cpu['physical_cores']} physical, "
                           f"{cpu['usable_cores']} usable")
    table.add_row("ISA", " ".join(flag for flag, present in cpu["isa"].items() if present) or "-")
    table.add_row("memory", f"{cpu['memory_bytes'] / 2**30:.1f} GiB")
    table.add_row("CUDA GPUs", ", ".join(d["name"] for d in info["cuda"]) or "none")
    table.add_row("ORT providers", ", ".join(info["onnxruntime_providers"]) or "-")
    table.add_row("OpenVINO devices", ", ".join(info["openvino_devices"]) or "-")
    trt = info["tensorrt"]
    table.add_row("TensorRT", trt["version"] if trt["importable"] else escape(f"not importable ({trt['reason']})"))
    for name, runtime in info["runtimes"].items():
        state = "[green]available[/]" if runtime["ok"] else f"[yellow]unavailable[/]: {escape(runtime['reason'])}"
        table.add_row(f"runtime {name}", f"{state} {escape(', '.join(runtime['devices']))}")
    for name, found in info["exporters"].items():
        table.add_row(f"export {name}", "[green]available[/]" if found["ok"]
                      else f"[yellow]unavailable[/]: {escape(found['reason'])}")
    for name, found in info["data"].items():
        table.add_row(f"data {name}", f"[green]installed[/] {escape(found['path'])}" if found["ok"]
                      else f"[red]missing[/]: {escape(found['reason'])}")
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    console.print(table)


def doctor(as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP)) -> None:
    """Report this machine: CPU, ISA flags, memory, GPUs, ONNX Runtime providers, OpenVINO devices, TensorRT,
    and whether the Fashion-MNIST package and the MiniLM weights are installed."""
    emit(collect(), as_json, render)
