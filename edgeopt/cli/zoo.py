"""`edgeopt zoo list | train NAME | eval NAME`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .output import JSON_OPTION_HELP, TRUST_CODE_HELP, console, emit

zoo_app = typer.Typer(help="The model zoo: the seed's CNN, a ResNet teacher, the seed's LSTM, and BERT.",
                      no_args_is_help=True)


@zoo_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP)) -> None:
    """List zoo models, their data set, target accuracy and whether a trained checkpoint exists."""
    from edgeopt.core.errors import CheckpointError
    from edgeopt.core.models.zoo import ZOO, find_zoo_checkpoint

    rows = []
    for name, entry in ZOO.items():
        try:
            artifact = find_zoo_checkpoint(name)
            state = "trained" if artifact else "not trained"
            metrics = artifact.metrics if artifact else {}
            location = str(artifact.path) if artifact else None
        except CheckpointError as error:
            state, metrics, location = f"corrupt: {error}", {}, None
        rows.append({"name": name, "family": str(entry.family), "dataset": entry.dataset,
                     "description": entry.description, "target_accuracy": entry.target_accuracy,
                     "state": state, "test_accuracy": metrics.get("test_accuracy"), "path": location})

    def render(data):
        table = Table(title="edgeopt zoo")
        for column in ("name", "family", "dataset", "target", "test acc", "state", "description"):
            table.add_column(column)
        for r in data:
            accuracy = f"{r['test_accuracy']:.2%}" if r["test_accuracy"] is not None else "-"
            table.add_row(r["name"], r["family"], r["dataset"], f"{r['target_accuracy']:.0%}", accuracy, r["state"],
                          r["description"])
        console.print(table)

    emit(rows, as_json, render)


@zoo_app.command()
def train(
    name: str = typer.Argument(..., help="Zoo model: cnn, resnet, lstm or bert."),
    force: bool = typer.Option(False, "--force", help="Replace an existing trained checkpoint."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Directory for the checkpoint (default: the user cache)."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Override the number of epochs."),
    max_train_samples: Optional[int] = typer.Option(None, min=1, help="Train on a seeded subset (quick runs)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Train a zoo model on its real data set (seeded, progress shown); save checkpoint + manifest."""
    from edgeopt.core.models.zoo import train_zoo_model
    from edgeopt.core.progress import progress_bars

    with progress_bars(enabled=not as_json) as progress:
        artifact = train_zoo_model(name, force=force, out=output, progress=progress, epochs=epochs,
                                   max_train_samples=max_train_samples)
    summary = {"name": name, "path": str(artifact.path), "sha256": artifact.sha256,
               **{k: v for k, v in artifact.metrics.items() if k != "history"}}

    def render(data):
        console.print(f"trained [bold]{name}[/]: test accuracy {data['test_accuracy']:.2%} "
                      f"(val {data['val_accuracy']:.2%}, {data['train_seconds']:.0f} s) -> {data['path']}")

    emit(summary, as_json, render)


@zoo_app.command("eval")
def evaluate(
    name: str = typer.Argument(..., help="Zoo model name, or a path to a torch-format artifact directory."),
    split: str = typer.Option("test", help="Data split: train, val or test."),
    max_samples: Optional[int] = typer.Option(None, min=1, help="Evaluate on a seeded subset."),
    train_if_missing: bool = typer.Option(False, "--train-if-missing", help="Train the zoo model first if needed."),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Accuracy, parameters, MACs and file size of a zoo model on its data set."""
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.errors import InvalidInput
    from edgeopt.core.models.zoo import ZOO, evaluate_artifact, load_zoo_model
    from edgeopt.core.progress import progress_bars

    if name in ZOO:
        with progress_bars(enabled=not as_json) as progress:
            artifact = load_zoo_model(name, train_if_missing=train_if_missing, progress=progress)
    elif Path(name).exists():
        artifact = Artifact.load(name, trust_code=trust_code)
    else:
        raise InvalidInput(f"{name}: not a zoo model ({', '.join(ZOO)}; see `edgeopt zoo list`) and not an "
                           "edgeopt artifact directory")
    result = evaluate_artifact(artifact, split=split, max_samples=max_samples)
    if name in ZOO:
        result["target_accuracy"] = ZOO[name].target_accuracy
        result["meets_target"] = result["accuracy"] >= ZOO[name].target_accuracy

    def render(data):
        table = Table(title=f"{data['name']} on {split} ({data['samples']} samples)", show_header=False)
        table.add_row("accuracy", f"{data['accuracy']:.2%}")
        if "target_accuracy" in data:
            table.add_row("target", f"{data['target_accuracy']:.0%} ({'met' if data['meets_target'] else 'MISSED'})")
        table.add_row("parameters", f"{data['params']:,}")
        table.add_row("MACs (batch 1)", f"{data['macs']:,}")
        table.add_row("file size", f"{data['size_bytes'] / 1e6:.2f} MB")
        table.add_row("path", data["path"])
        console.print(table)

    emit(result, as_json, render)
