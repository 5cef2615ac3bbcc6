"""`edgeopt export MODEL --format F` and `edgeopt predict ARTIFACT --input X`: thin shells over edgeopt.export
and edgeopt.runtimes."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .output import FORCE_OUTPUT_HELP, JSON_OPTION_HELP, TRUST_CODE_HELP, console, emit

MODEL_HELP = "A zoo model name (cnn, resnet, lstm, bert), an artifact directory, or an .onnx file."


def export(
    model: str = typer.Argument(..., help=MODEL_HELP),
    fmt: str = typer.Option(..., "--format", "-f", help="Target format: onnx, openvino, tensorrt, executorch or litert."),
    precision: str = typer.Option("fp32", help="fp32, fp16 (openvino: fp16-compressed weights; tensorrt), or int8 "
                                                     "(executorch, litert: quantized while exporting)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Artifact directory "
                                          "(default: ./edgeopt-exports/NAME-FORMAT-PRECISION)."),
    force: bool = typer.Option(False, "--force", help=FORCE_OUTPUT_HELP),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    opset: Optional[int] = typer.Option(None, help="ONNX opset (default: the family's, 18)."),
    exporter: Optional[str] = typer.Option(None, help="torch -> ONNX exporter: dynamo or torchscript "
                                                      "(default: the family's; the LSTM uses torchscript)."),
    source: Optional[str] = typer.Option(None, help="openvino only: convert from torch (default) or onnx."),
    workspace_mb: Optional[int] = typer.Option(None, help="tensorrt only: builder workspace limit in MiB."),
    activations: Optional[str] = typer.Option(None, help="executorch/litert int8: static (calibrated, full INT8; "
                                                         "default) or dynamic (dynamic-range INT8)."),
    max_batch: Optional[int] = typer.Option(None, help="executorch: upper bound of the batch (default 64)."),
    family: Optional[str] = typer.Option(None, help="For a plain .onnx file: cnn, lstm or bert."),
    dataset: Optional[str] = typer.Option(None, help="For a plain .onnx file: its data set (default: the family's)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check parity against the source model."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Export a model to ONNX, OpenVINO IR, a TensorRT engine, ExecuTorch (.pte) or LiteRT (.tflite) and check it
    against its source on real test inputs (batch 1 and 7; text lengths 5 and 128). Prints the artifact path and
    the parity report."""
    from edgeopt.core.progress import progress_bars
    from edgeopt.export import export_artifact
    from edgeopt.export.wrap import resolve_artifact

    artifact = resolve_artifact(model, family, dataset, trust_code)
    destination = output or Path("edgeopt-exports") / f"{artifact.name}-{fmt}-{precision}"
    onnx_options = {k: v for k, v in (("opset", opset), ("exporter", exporter)) if v is not None}
    options: dict[str, Any] = {"onnx": dict(onnx_options), "tensorrt": {"onnx": dict(onnx_options)},
                               "openvino": {"onnx": dict(onnx_options)}}.get(fmt, {})
    if source is not None:
        options["source"] = source
    if workspace_mb is not None:
        options["workspace_mb"] = workspace_mb
    options.update({k: v for k, v in (("activations", activations), ("max_batch", max_batch)) if v is not None})
    with progress_bars(enabled=not as_json) as progress:
        child = export_artifact(artifact, fmt, destination, precision, options, verify=verify, progress=progress,
                                force=force)
    summary = {"path": str(child.path), "name": child.name, "format": str(child.format),
               "precision": str(child.precision), "size_bytes": child.size_bytes, "sha256": child.sha256,
               "step": child.recipe[-1] if child.recipe else {}, "parity": child.metrics.get("parity")}
    emit(summary, as_json, render_export)


def render_export(data: dict[str, Any]) -> None:
    console.print(f"exported [bold]{data['name']}[/] -> {data['format']} {data['precision']}: {data['path']} "
                  f"({data['size_bytes'] / 2**20:.1f} MiB)")
    parity = data["parity"]
    if not parity:
        console.print("parity not checked (--no-verify)")
        return
    table = Table(title=f"parity vs {parity['reference']} ({parity['runtime']} vs {parity['reference_runtime']})")
    for column in ("batch", "seq len", "max abs err", "max rel err", "top-1 agree", "ok"):
        table.add_column(column)
    for case in parity["cases"]:
        table.add_row(str(case["batch"]), str(case["sequence"] or "-"), f"{case['max_abs']:.2e}",
                      f"{case['max_rel']:.2e}", f"{case['top1_agreement']:.0%}", "yes" if case["ok"] else "NO")
    console.print(table)
    from edgeopt.export.verify import summary

    console.print(summary(parity))


def predict(
    artifact: str = typer.Argument(..., help="An artifact directory or a zoo model name."),
    input_: Optional[str] = typer.Option(None, "--input", "-i",
                                         help="An image file, a .npy array, or a text string."),
    sample: Optional[int] = typer.Option(None, "--sample", min=0, help="Use test-split sample N instead."),
    runtime: Optional[str] = typer.Option(None, help="torch, onnxruntime, openvino or tensorrt "
                                                     "(default: the artifact format's)."),
    device: str = typer.Option("cpu", help="cpu, cuda[:N], or an OpenVINO device (CPU, GPU, NPU)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Intra-op threads (default: the runtime's)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Run one artifact on one sample through a runtime and print the predicted class and probabilities."""
    import numpy as np

    from edgeopt.core.errors import InvalidInput
    from edgeopt.export.wrap import resolve_artifact
    from edgeopt.runtimes import RuntimeConfig, load_runtime

    if (input_ is None) == (sample is None):
        raise InvalidInput("give exactly one of --input (image file, .npy or text) and --sample N")
    model = resolve_artifact(artifact, trust_code=trust_code)
    inputs, label = read_sample(model, input_, sample)
    with load_runtime(model, runtime, RuntimeConfig(device=device, threads=threads)) as session:
        logits = session.run(inputs)
        name = session.name
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    labels = model.labels or [str(i) for i in range(probs.shape[1])]
    rows = [{"class": labels[int(p.argmax())], "index": int(p.argmax()), "probability": float(p.max()),
             "probs": {labels[i]: float(v) for i, v in enumerate(p)}} for p in probs]
    result = {"artifact": str(model.path), "runtime": name, "predictions": rows,
              **({"true_label": label} if label is not None else {})}

    def render(data):
        for i, row in enumerate(data["predictions"]):
            ranked = sorted(row["probs"].items(), key=lambda kv: -kv[1])[:5]
            console.print(f"[{i}] [bold]{row['class']}[/] ({row['probability']:.1%}) via {data['runtime']}"
                          + (f", true label {data['true_label']}" if "true_label" in data else "")
                          + "   " + ", ".join(f"{k} {v:.1%}" for k, v in ranked))

    emit(result, as_json, render)


def read_sample(artifact, input_: str | None, sample: int | None):
    """Model inputs (and the true label for --sample) from an image file, a .npy, a text string or test sample N."""
    import numpy as np

    from edgeopt.core.artifacts import Family
    from edgeopt.core.errors import InvalidInput
    from edgeopt.core.models.zoo import preprocessor_of
    from edgeopt.export.specs import dataset_of

    preprocessor = preprocessor_of(artifact)
    if sample is not None:
        data = dataset_of(artifact)
        if sample >= len(data.test):
            raise InvalidInput(f"--sample {sample}: the test split has {len(data.test)} samples")
        return preprocessor(data.test.inputs[sample:sample + 1]), data.classes[int(data.test.labels[sample])]
    path = Path(input_).expanduser()
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InvalidInput(f"{path}: cannot read .npy: {error}") from None
        return _from_array(artifact, preprocessor, array, path), None
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}:
        if artifact.family != Family.CNN:
            raise InvalidInput(f"{path}: an image, but {artifact.name} is a {artifact.family} model (give text)")
        from PIL import Image, UnidentifiedImageError

        channels, size = artifact.preprocess.get("channels", 1), artifact.preprocess.get("size", 28)
        try:
            image = Image.open(path).convert("L" if channels == 1 else "RGB").resize((size, size))
        except (OSError, UnidentifiedImageError) as error:
            raise InvalidInput(f"{path}: cannot read image: {error}") from None
        pixels = np.asarray(image, dtype=np.uint8)
        return preprocessor(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)[None]), None
    if artifact.family == Family.CNN:
        raise InvalidInput(f"{input_}: no such image or .npy file ({artifact.name} takes images)")
    return preprocessor([input_]), None


def _from_array(artifact, preprocessor, array, path: Path):
    """uint8 images go through the preprocessor; arrays already in the input's dtype are fed as they are."""
    import numpy as np

    from edgeopt.core.errors import InvalidInput

    if array.dtype == np.uint8 and artifact.preprocess.get("kind") == "image":
        return preprocessor(array[None] if array.ndim == 2 else array)
    first = artifact.inputs[0]
    if len(artifact.inputs) == 1 or first.name == "input_ids":
        if array.ndim == len(first.shape) - 1:
            array = array[None]
        inputs = {first.name: array}
        if "attention_mask" in {s.name for s in artifact.inputs}:
            inputs["attention_mask"] = (array != 0).astype(np.int64)
        return inputs  # the runtime checks shape and dtype against the artifact's input spec
    raise InvalidInput(f"{path}: array {array.dtype} {list(array.shape)}; expected uint8 images or "
                       f"{first.dtype} {first.shape}")
