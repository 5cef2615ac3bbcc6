"""Knowledge distillation: train a small student on the teacher's softened outputs plus the hard labels.

Every distilled student is compared with the same student (same init, same schedule) trained on the labels
alone, and both test accuracies go into the artifact's metrics, so a report can show what distillation bought.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeopt.core.artifacts import Artifact, Format, check_output
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models import build_module
from edgeopt.core.models.bert import BertClassifier
from edgeopt.core.models.transformer_layout import layout_of
from edgeopt.core.models.zoo import count_macs_params, load_module, preprocessor_of, save_torch_artifact
from edgeopt.core.preprocess import VocabEncoder
from edgeopt.core.step_configs import STUDENTS_FOR, DistillConfig
from edgeopt.core.train import LossFn, evaluate, fit, seed_everything

def distill(teacher: Artifact, config: DistillConfig, out_dir: Path, progress=None, force: bool = False) -> Artifact:
    """Distill `teacher` (torch artifact) into the configured student; saves the student as a child artifact
    in `out_dir` (an existing artifact there is replaced only with `force`)."""
    if teacher.format != Format.TORCH:
        raise InvalidInput(f"{teacher.path}: the teacher must be a torch-format artifact, got {teacher.format}")
    check_output(out_dir, teacher, force)
    data = dataset_of(teacher)
    train = config.train.model_copy(update={"seed": config.seed})
    preprocessor = preprocessor_of(teacher)
    teacher_model = load_module(teacher).eval()
    for parameter in teacher_model.parameters():
        parameter.requires_grad_(False)
    example = preprocessor(data.test.inputs[:2])
    test = data.test.subset(config.eval_samples)
    val = data.val.subset(config.val_samples)

    classes = output_width(teacher, teacher_model, example, data.train.labels)
    seed_everything(config.seed)
    student, arch, layer_map = make_student(teacher, teacher_model, config, preprocessor, classes)
    check_label_space(student, example, classes)
    initial = copy.deepcopy(student.state_dict())

    loss = distillation_loss(teacher_model, config, layer_map, getattr(preprocessor, "pad_id", 0))
    result = fit(student, preprocessor, data.train, val, train, loss_fn=loss, progress=progress)
    student.eval()
    accuracy = evaluate(student, preprocessor, test)

    summary: dict[str, Any] = {"teacher": teacher.name, "student": config.student,
                               "teacher_test_accuracy": evaluate(teacher_model, preprocessor, test),
                               "distilled_test_accuracy": accuracy, "distilled_val_accuracy": result.best_val_accuracy,
                               "temperature": config.temperature, "alpha": config.alpha, "eval_samples": len(test)}
    if config.baseline:
        baseline = copy.deepcopy(student)
        baseline.load_state_dict(initial)
        plain = fit(baseline, preprocessor, data.train, val, train, progress=progress)
        baseline.eval()
        summary["baseline_test_accuracy"] = evaluate(baseline, preprocessor, test)
        summary["baseline_val_accuracy"] = plain.best_val_accuracy
        summary["distillation_gain"] = accuracy - summary["baseline_test_accuracy"]
    teacher_macs, teacher_params = count_macs_params(teacher_model, example)
    student_macs, student_params = count_macs_params(student, example)
    summary.update(teacher_macs=teacher_macs, teacher_params=teacher_params,
                   macs_reduction=teacher_macs / max(1, student_macs),
                   params_reduction=teacher_params / max(1, student_params),
                   accuracy_drop_vs_teacher=summary["teacher_test_accuracy"] - accuracy)
    step = {"step": "distill", **config.model_dump(mode="json")}
    return save_torch_artifact(student, arch, preprocessor, Path(out_dir), name=f"{teacher.name}-{config.student}",
                               family=teacher.family, data=data, recipe=list(teacher.recipe) + [step],
                               metrics={"test_accuracy": accuracy, "distill": summary}, parent=teacher.sha256,
                               force=force)


def make_student(teacher: Artifact, teacher_model: nn.Module, config: DistillConfig, preprocessor,
                 classes: int) -> tuple[nn.Module, dict[str, Any], list[int]]:
    """The student module (`classes` outputs, the teacher's width), its arch spec, and (BERT students) which
    teacher layer each student layer copies. Image students take the teacher's input channels and size."""
    if config.student_init is not None:
        init = Artifact.load(config.student_init)
        if init.labels != teacher.labels:
            raise InvalidInput(f"{init.path}: student labels {init.labels} do not match the teacher's "
                               f"{teacher.labels}; distillation needs the same label space")
        if init.family != teacher.family:
            raise InvalidInput(f"{init.path}: a {init.family} student cannot learn from a {teacher.family} teacher "
                               "(different inputs)")
        return load_module(init).train(), dict(init.arch), []
    if config.student not in STUDENTS_FOR[teacher.family]:
        raise InvalidInput(f"student {config.student!r} does not suit a {teacher.family} teacher; choose one of "
                           f"{', '.join(STUDENTS_FOR[teacher.family])}")
    if config.student == "bert":
        return bert_student(teacher_model, config.depth)
    w = config.width
    if config.student in ("mobilenetv2", "squeezenet"):
        arch = {"builder": config.student, "num_classes": classes, "in_channels": preprocessor.channels,
                "image_size": preprocessor.size, "width": w}
    else:
        vocab = len(preprocessor.vocab) if isinstance(preprocessor, VocabEncoder) else len(preprocessor.tokenizer)
        if config.student == "textcnn":
            arch = {"builder": "textcnn", "vocab_size": vocab, "num_classes": classes,
                    "embed_dim": round(128 * w), "channels": round(100 * w)}
        else:
            arch = {"builder": "rnn", "vocab_size": vocab, "num_classes": classes, "embed_dim": round(64 * w),
                    "hidden": round(64 * w), "num_layers": config.depth, "bidirectional": config.student == "bilstm",
                    "cell": "gru" if config.student == "gru" else "lstm"}
        if preprocessor.pad_id != 0:  # a user's vocabulary: the student masks its own padding
            arch["pad_id"] = preprocessor.pad_id
    arch.update(config.student_kwargs)
    return build_module(arch), arch, []


def bert_student(teacher: nn.Module, depth: int) -> tuple[nn.Module, dict[str, Any], list[int]]:
    """A shallower copy of the teacher initialised from evenly spaced teacher layers (plus its embeddings and
    head), for any encoder whose layer layout `transformer_layout` knows."""
    if not isinstance(teacher, BertClassifier):
        raise InvalidInput("a BERT student needs a BERT teacher")
    layout = layout_of(teacher.hf, "a BERT student (a shallower copy of the teacher)")
    hf = copy.deepcopy(teacher.hf)
    layers = layout.encoder_layers(hf)
    if depth >= len(layers):
        raise InvalidInput(f"student depth {depth} must be below the teacher's {len(layers)} layers")
    layer_map = [round((j + 1) * len(layers) / depth) - 1 for j in range(depth)]
    layout.replace_layers(hf, nn.ModuleList(layers[i] for i in layer_map))
    hf.config.num_hidden_layers = depth  # DistilBERT's config maps this name to its n_layers
    if getattr(hf.config, "edgeopt_pruned_layers", None):  # a pruned teacher: keep the copied layers' shapes
        hf.config.edgeopt_pruned_layers = [hf.config.edgeopt_pruned_layers[i] for i in layer_map]
    for parameter in hf.parameters():
        parameter.requires_grad_(True)
    return BertClassifier(hf).train(), {"builder": "bert", "source": f"{depth} layers of the teacher"}, layer_map


def output_width(teacher: Artifact, model: nn.Module, example: dict, labels) -> int:
    """The teacher's output width, read from the model: the student predicts the same outputs, so the soft
    targets line up (a 1000-way teacher on a folder of 3 of its classes, labels mapped to its output indices
    by the config's label_map, teaches a 1000-way student)."""
    with torch.no_grad():
        width = int(model(**{k: torch.from_numpy(v) for k, v in example.items()}).shape[-1])
    if int(labels.max()) >= width:
        raise InvalidInput(f"{teacher.path}: the teacher has {width} outputs but its data has label "
                           f"{int(labels.max())}; map the data's classes to the model's outputs with label_map")
    return width


def check_label_space(student: nn.Module, example: dict, classes: int) -> None:
    student.eval()
    with torch.no_grad():
        logits = student(**{k: torch.from_numpy(v) for k, v in example.items()})
    student.train()
    if logits.shape[-1] != classes:
        raise InvalidInput(f"the student predicts {logits.shape[-1]} classes but the teacher has {classes} "
                           "outputs; distillation needs the same outputs")


def distillation_loss(teacher: nn.Module, config: DistillConfig, layer_map: list[int], pad_id: int = 0) -> LossFn:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels) [+ BERT hidden/attention MSE]."""
    temperature, alpha = config.temperature, config.alpha
    internal = bool(layer_map) and (config.hidden_weight > 0 or config.attention_weight > 0)
    if internal and config.attention_weight > 0:
        for model in (teacher,):
            model.hf.set_attn_implementation("eager")  # attention maps are only returned by eager attention

    def soft_hard(student_logits, teacher_logits, labels):
        soft = F.kl_div(F.log_softmax(student_logits / temperature, -1), F.softmax(teacher_logits / temperature, -1),
                        reduction="batchmean") * temperature ** 2
        return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)

    soft_targets = TeacherLogits(teacher, config.teacher_bf16, pad_id)

    def loss(student: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if not internal:
            return soft_hard(student(**inputs).float(), soft_targets(inputs), labels)
        attentions = config.attention_weight > 0
        if attentions:
            student.hf.set_attn_implementation("eager")
        with torch.no_grad():
            t = teacher.hf(**inputs, output_hidden_states=True, output_attentions=attentions)
        s = student.hf(**inputs, output_hidden_states=True, output_attentions=attentions)
        total = soft_hard(s.logits.float(), t.logits.float(), labels)
        pairs = [(0, 0)] + [(j + 1, i + 1) for j, i in enumerate(layer_map)]  # embeddings, then mapped layers
        if config.hidden_weight > 0:
            total = total + config.hidden_weight * sum(
                F.mse_loss(s.hidden_states[j].float(), t.hidden_states[i].float()) for j, i in pairs) / len(pairs)
        if attentions:
            total = total + config.attention_weight * sum(
                F.mse_loss(s.attentions[j].float(), t.attentions[i].float())
                for j, i in enumerate(layer_map)) / len(layer_map)
        return total

    return loss


class TeacherLogits:
    """The teacher's logits for a batch, remembered per text across epochs.

    A text's token ids are the same every epoch (no augmentation), so the teacher runs once per text instead
    of once per epoch: a third of a 3-epoch BERT distillation's time. Images are augmented differently each
    epoch and always go through the teacher.
    """

    def __init__(self, teacher: nn.Module, bf16: bool, pad_id: int = 0):
        self.teacher, self.bf16, self.pad_id = teacher, bf16, pad_id
        self.known: dict[bytes, torch.Tensor] = {}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if "input_ids" not in inputs:
            return self.forward(inputs)
        keys = [row[row != self.pad_id].numpy().tobytes() for row in inputs["input_ids"]]  # padding stripped
        if any(key not in self.known for key in keys):
            for key, logits in zip(keys, self.forward(inputs)):
                self.known[key] = logits
        return torch.stack([self.known[key] for key in keys])

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.teacher(**inputs).float()
