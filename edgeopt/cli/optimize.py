"""`edgeopt prune | distill | quantize`: build the same config objects the Python API takes, run the step."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .output import FORCE_OUTPUT_HELP, JSON_OPTION_HELP, TRUST_CODE_HELP, console, emit

SOURCE_HELP = "Zoo model name (cnn, resnet, lstm, bert) or an artifact directory."


def load_source(source: str, trust_code: bool = False):
    """A zoo name or an artifact directory -> Artifact (`trust_code`: consent to run its module factory)."""
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.models.zoo import ZOO, load_zoo_model

    return load_zoo_model(source) if source in ZOO else Artifact.load(source, trust_code=trust_code)


def make_config(cls, **values: Any):
    """Validate CLI values through the step's pydantic config; problems become one clear InvalidInput line."""
    from pydantic import ValidationError

    from edgeopt.core.errors import InvalidInput

    try:
        return cls(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"invalid {cls.__name__}: {problems}") from None


def train_config(epochs: int | None, lr: float | None, batch_size: int | None, max_train_samples: int | None,
                 bf16: bool, augment: bool):
    from edgeopt.core.step_configs import TrainConfig

    return make_config(TrainConfig, epochs=epochs, lr=lr, batch_size=batch_size,
                       max_train_samples=max_train_samples, bf16=bf16, channels_last=bf16, augment=augment)


def report(artifact, section: str, as_json: bool) -> None:
    """The new artifact's path, accuracy, size and the step's own metrics section."""
    details = {k: v for k, v in artifact.metrics.get(section, {}).items() if k not in ("history", "op_types")}
    data = {"name": artifact.name, "path": str(artifact.path), "sha256": artifact.sha256,
            "format": str(artifact.format), "precision": str(artifact.precision),
            "size_bytes": artifact.size_bytes, **{k: v for k, v in artifact.metrics.items() if k != section},
            section: details}

    def render(d):
        table = Table(title=f"{d['name']} -> {d['path']}", show_header=False)
        for key, value in [(k, v) for k, v in d.items() if k not in (section, "name", "path", "parity")] + \
                list(details.items()):
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            table.add_row(key, shown)
        console.print(table)

    emit(data, as_json, render)


def prune_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the pruned artifact."),
    force: bool = typer.Option(False, "--force", help=FORCE_OUTPUT_HELP),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    ratio: Optional[float] = typer.Option(None, help="Fraction of channels / hidden units / FFN units to remove, "
                                                     "in (0, 1); default 0.5."),
    target_macs: Optional[float] = typer.Option(None, help="CNN: prune until MACs <= this fraction of the original."),
    head_ratio: Optional[float] = typer.Option(None, help="BERT: fraction of attention heads to remove per layer."),
    criterion: str = typer.Option("magnitude", help="Importance: magnitude, bn_scale, taylor, lamp, random."),
    global_pruning: bool = typer.Option(False, "--global", help="Rank channels across layers (non-uniform)."),
    steps: int = typer.Option(1, help="Iterative pruning: reach the target in this many prune + fine-tune steps."),
    finetune_epochs: int = typer.Option(0, help="Recovery fine-tuning epochs after each step (0 = none), with the "
                                                "recipe the model was trained with."),
    lr: Optional[float] = typer.Option(None, help="Fine-tuning learning rate (default: the training recipe's)."),
    batch_size: Optional[int] = typer.Option(None, help="Fine-tuning batch size."),
    max_train_samples: Optional[int] = typer.Option(None, help="Fine-tune on a seeded subset (quick runs)."),
    eval_samples: Optional[int] = typer.Option(None, help="Test-split subset for before/after accuracy."),
    val_samples: Optional[int] = typer.Option(None, help="Val-split subset that picks the fine-tuned epoch."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Structured pruning (channels, LSTM hidden units, BERT heads + FFN) into a smaller dense model."""
    from edgeopt.core.errors import InvalidInput
    from edgeopt.core.progress import progress_bars
    from edgeopt.optimize import PruneConfig, prune
    from edgeopt.optimize.prune import recipe_train_config

    artifact = load_source(source, trust_code)
    finetune = None
    if finetune_epochs:
        try:
            finetune = recipe_train_config(artifact, epochs=finetune_epochs, lr=lr, batch_size=batch_size,
                                           max_train_samples=max_train_samples)
        except ValueError as error:
            raise InvalidInput(f"invalid fine-tuning options: {error}") from None
    config = make_config(PruneConfig, ratio=ratio, target_macs=target_macs, head_ratio=head_ratio,
                         criterion=criterion, global_pruning=global_pruning, steps=steps, finetune=finetune,
                         eval_samples=eval_samples, val_samples=val_samples)
    with progress_bars(enabled=not as_json) as progress:
        result = prune(artifact, config, output, progress=progress, force=force)
    report(result, "prune", as_json)


def distill_command(
    teacher: str = typer.Argument(..., help=SOURCE_HELP + " The teacher."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the student artifact."),
    force: bool = typer.Option(False, "--force", help=FORCE_OUTPUT_HELP),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    student: str = typer.Option("mobilenetv2", help="mobilenetv2, squeezenet (CNN teachers); bert, textcnn, "
                                                    "bilstm (BERT); lstm, gru, bilstm, textcnn (LSTM)."),
    width: Optional[float] = typer.Option(None, help="Width knob: channel / hidden-size multiplier."),
    depth: Optional[int] = typer.Option(None, help="Depth knob: BERT student layers or RNN layers."),
    student_init: Optional[Path] = typer.Option(None, help="Start from this student artifact instead."),
    temperature: Optional[float] = typer.Option(None, help="Soft-target temperature (default 4)."),
    alpha: Optional[float] = typer.Option(None, help="Weight of the soft loss, in [0, 1] (default 0.7)."),
    hidden_weight: Optional[float] = typer.Option(None, help="BERT -> BERT hidden-state loss weight."),
    attention_weight: Optional[float] = typer.Option(None, help="BERT -> BERT attention-map loss weight."),
    epochs: int = typer.Option(3, help="Training epochs (each for the distilled and the baseline student)."),
    lr: Optional[float] = typer.Option(2e-3, help="Learning rate."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    max_train_samples: Optional[int] = typer.Option(None, help="Train on a seeded subset (quick runs)."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast + channels_last (not for depthwise convs)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also train the student without the "
                                                                          "teacher, to show what distillation buys."),
    eval_samples: Optional[int] = typer.Option(None, help="Test-split subset for the accuracies."),
    val_samples: Optional[int] = typer.Option(None, help="Val-split subset that picks the best epoch."),
    augment: bool = typer.Option(False, "--augment", help="Images: random shifts and flips while training."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Knowledge distillation into a small student, compared with the same student trained without the teacher."""
    from edgeopt.core.progress import progress_bars
    from edgeopt.optimize import DistillConfig, distill

    config = make_config(DistillConfig, student=student, width=width, depth=depth, student_init=student_init,
                         temperature=temperature, alpha=alpha, hidden_weight=hidden_weight,
                         attention_weight=attention_weight, baseline=baseline, eval_samples=eval_samples,
                         val_samples=val_samples,
                         train=train_config(epochs, lr, batch_size, max_train_samples, bf16, augment))
    artifact = load_source(teacher, trust_code)
    with progress_bars(enabled=not as_json) as progress:
        result = distill(artifact, config, output, progress=progress, force=force)
    report(result, "distill", as_json)


def quantize_command(
    source: str = typer.Argument(..., help="An ONNX or OpenVINO artifact directory (see `edgeopt export`)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the quantized artifact."),
    force: bool = typer.Option(False, "--force", help=FORCE_OUTPUT_HELP),
    mode: str = typer.Option("static", help="ONNX: dynamic, static, fp16. OpenVINO: static (NNCF), fp16, "
                                            "accuracy_control."),
    calibration: Optional[str] = typer.Option(None, help="ORT static calibrator: minmax, entropy, percentile."),
    samples: Optional[int] = typer.Option(None, help="Calibration samples (default 300)."),
    split: Optional[str] = typer.Option(None, help="Calibration split: train or val."),
    calibration_data: Optional[Path] = typer.Option(None, help=".npz of named input arrays to calibrate on."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scale granularity."),
    max_drop: Optional[float] = typer.Option(None, help="accuracy_control: largest allowed accuracy drop."),
    eval_samples: Optional[int] = typer.Option(None, help="Test-split subset for the accuracies."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check top-1 parity against the parent."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Post-training quantization (ONNX Runtime, OpenVINO NNCF), reporting ops left in float and Q/DQ pairs."""
    from edgeopt.core.artifacts import Artifact
    from edgeopt.optimize import QuantizeConfig, quantize

    config = make_config(QuantizeConfig, mode=mode, calibration=calibration, samples=samples, split=split,
                         calibration_data=calibration_data, per_channel=per_channel, max_drop=max_drop,
                         eval_samples=eval_samples, verify=verify)
    result = quantize(Artifact.load(source), config, output, force=force)
    report(result, "quantization", as_json)
