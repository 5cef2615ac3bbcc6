"""The typed configs of the training loop and of each optimization step (prune, distill, sequence, quantize).

They live here, apart from the steps that use them, because `edgeopt.config` validates a whole sweep with them
and importing the config must not import torch: the steps themselves import it on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .artifacts import Family, Format
from .errors import InvalidInput
from .strict import StrictModel


class TrainConfig(StrictModel):
    """How to train; defaults suit fine-tuning a small model on this data."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: str = Field("adamw", pattern="^(adamw|sgd)$")
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = 1.0
    bf16: bool = Field(False, description="bf16 autocast on CPU (fast with AVX-512 bf16; not for depthwise convs)")
    channels_last: bool = False
    augment: bool = Field(False, description="images: random shift by up to 2 px and horizontal flip")
    seed: int = 0
    max_train_samples: int | None = Field(None, description="seeded subset of the train split, for quick runs")
    eval_batch_size: int = 256




Criterion = Literal["magnitude", "bn_scale", "taylor", "lamp", "random"]
PRUNED_UNITS = {Family.CNN: "channels", Family.LSTM: "hidden units", Family.BERT: "attention heads and FFN units"}


class PruneConfig(StrictModel):
    """What to remove and how to recover. `ratio` is the fraction of channels / units / heads removed."""

    ratio: float | None = Field(None, gt=0, lt=1, description="fraction of channels (CNN), hidden units (LSTM) or "
                                                             "FFN units (BERT) to remove (0.5 unless target_macs "
                                                             "is given)")
    target_macs: float | None = Field(None, gt=0, lt=1, description="CNN: instead of a ratio, prune until MACs "
                                                                      "are at most this fraction of the original")
    head_ratio: float = Field(0.5, ge=0, lt=1, description="BERT: fraction of attention heads to remove per layer")
    criterion: Criterion = Field("magnitude", description="importance: magnitude (L2), bn_scale, taylor, lamp, "
                                                          "random (CNN); LSTM/BERT use magnitude")
    global_pruning: bool = Field(False, description="rank channels across layers (True) or prune each layer "
                                                    "by the same ratio (False)")
    steps: int = Field(1, ge=1, le=50, description="iterative pruning: reach the ratio in this many steps, "
                                                   "fine-tuning after each")
    finetune: TrainConfig | None = Field(None, description="recovery training after each step; None = none")
    taylor_batches: int = Field(4, ge=1, description="batches of train data for Taylor gradients")
    eval_samples: int | None = Field(None, ge=1, description="test-split subset for the before/after accuracy")
    val_samples: int | None = Field(None, ge=1, description="val-split subset that picks the fine-tuning epoch")
    seed: int = Field(0, description="seeds importance (random, taylor), data order and the recovery training "
                                     "(a sweep sets it from the top-level seed)")

    @model_validator(mode="after")
    def _one_target(self) -> "PruneConfig":
        if self.target_macs is not None and self.ratio is not None:
            raise ValueError("give either ratio or target_macs, not both")
        if self.finetune is not None and "seed" in self.finetune.changed_fields():
            raise ValueError("finetune.seed: the step's seed seeds its training; set prune's seed (or the "
                             "top-level seed) instead")
        return self

    @property
    def removed_fraction(self) -> float:
        """The fraction to remove: `ratio`, 0.5 when not given."""
        return 0.5 if self.ratio is None else self.ratio

    def check_family(self, family: Family | str) -> None:
        """Options only channel pruning (CNN) or head pruning (BERT) implements are errors elsewhere, never
        silently ignored."""
        family = Family(family)
        changed = self.changed_fields()
        unsupported = {
            "target_macs": family != Family.CNN and self.target_macs is not None,
            "criterion": family != Family.CNN and self.criterion != "magnitude",
            "global_pruning": family != Family.CNN and self.global_pruning,
            "taylor_batches": family != Family.CNN and "taylor_batches" in changed,
            "head_ratio": family != Family.BERT and "head_ratio" in changed,
        }
        bad = [name for name, wrong in unsupported.items() if wrong]
        if bad:
            raise InvalidInput(f"prune: {', '.join(bad)} not supported for {family} models ({family} pruning "
                               f"removes {PRUNED_UNITS[family]} by magnitude, by `ratio`"
                               + (" and `head_ratio`" if family == Family.BERT else "") + ")")

Student = Literal["mobilenetv2", "squeezenet", "bert", "textcnn", "bilstm", "lstm", "gru"]

STUDENTS_FOR: dict[Family, tuple[str, ...]] = {
    Family.CNN: ("mobilenetv2", "squeezenet"),
    Family.BERT: ("bert", "textcnn", "bilstm"),
    Family.LSTM: ("lstm", "gru", "bilstm", "textcnn"),
}


class SequenceConfig(StrictModel):
    """Text models: the fixed number of tokens per text the deployed model takes."""

    max_len: int = Field(ge=8, le=512, description="tokens per text, at most the model's own max_len (longer "
                                                   "texts are truncated; fewer tokens run faster)")


class DistillConfig(StrictModel):
    """Which student, how wide/deep, and how much of the loss comes from the teacher."""

    student: Student = Field("mobilenetv2", description="student architecture; must suit the teacher's family")
    width: float = Field(1.0, gt=0, le=4, description="width knob: channel multiplier (CNN), hidden/embedding "
                                                      "multiplier (text students)")
    depth: int = Field(2, ge=1, le=12, description="depth knob: BERT student layers (copied from the teacher) "
                                                   "or RNN layers")
    student_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra builder arguments")
    student_init: Path | None = Field(None, description="start from this torch student artifact instead")
    temperature: float = Field(4.0, gt=0, description="softmax temperature of the soft targets")
    alpha: float = Field(0.7, ge=0, le=1, description="weight of the soft (teacher) loss; 1 - alpha on labels")
    hidden_weight: float = Field(0.0, ge=0, description="BERT -> BERT: weight of hidden-state MSE")
    attention_weight: float = Field(0.0, ge=0, description="BERT -> BERT: weight of attention-map MSE")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=3, lr=2e-3))
    teacher_bf16: bool = Field(True, description="teacher forward under bf16 autocast: soft targets ~2x faster "
                                                 "on CPUs with bf16 support, at no measurable cost in quality")
    baseline: bool = Field(True, description="also train the student without the teacher, for comparison")
    eval_samples: int | None = Field(None, ge=1, description="test-split subset for the accuracies")
    val_samples: int | None = Field(None, ge=1, description="val-split subset that picks the best epoch")
    seed: int = Field(0, description="seeds the student's initialisation and training (a sweep sets it from the "
                                     "top-level seed)")

    @model_validator(mode="after")
    def _one_seed(self) -> "DistillConfig":
        if "seed" in self.train.changed_fields():
            raise ValueError("train.seed: the step's seed seeds its training; set distill's seed (or the "
                             "top-level seed) instead")
        return self

Mode = Literal["dynamic", "static", "fp16", "accuracy_control"]
MODES: dict[Format, tuple[str, ...]] = {
    Format.ONNX: ("dynamic", "static", "fp16"),
    Format.OPENVINO: ("static", "fp16", "accuracy_control"),
    Format.TENSORRT: (),
}


class QuantizeConfig(StrictModel):
    """How to quantize; which modes apply depends on the artifact's format (see MODES)."""

    mode: Mode = Field("static", description="dynamic (ORT; LSTM, BERT), static INT8 with calibration, fp16, "
                                             "or accuracy_control (NNCF, bounded accuracy drop)")
    calibration: Literal["minmax", "entropy", "percentile"] = Field("minmax", description="ORT static calibrator")
    samples: int = Field(300, ge=1, le=50000, description="calibration samples")
    batch_size: int = Field(8, ge=1, description="calibration batch size")
    split: Literal["train", "val"] = Field("train", description="split the calibration samples come from")
    calibration_data: Path | None = Field(None, description=".npz of named input arrays to calibrate on instead")
    per_channel: bool = Field(True, description="per-channel weight scales (static)")
    max_drop: float = Field(0.01, gt=0, lt=1, description="accuracy_control: largest allowed absolute drop")
    eval_samples: int | None = Field(None, ge=1, description="test-split subset for accuracy (None: all)")
    verify: bool = Field(True, description="check top-1 parity against the parent (ParityError if off)")
    seed: int = 0
