"""Knowledge distillation: loss, students per teacher family, baseline comparison, label-space checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.zoo import load_module
from edgeopt.core.train import TrainConfig
from edgeopt.optimize import DistillConfig, distill
from edgeopt.optimize.distill import bert_student, distillation_loss

QUICK = TrainConfig(epochs=1, max_train_samples=128, batch_size=64, lr=2e-3)


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_loss_is_temperature_scaled_kl_plus_hard_labels():
    teacher_logits, student_logits = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    teacher, student = Fixed(teacher_logits), Fixed(student_logits)
    t = 3.0
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits / t, -1),
                  reduction="batchmean") * t * t
    ce = F.cross_entropy(student_logits, labels)
    for alpha in (0.0, 0.3, 1.0):
        loss = distillation_loss(teacher, DistillConfig(temperature=t, alpha=alpha), [])(student, {"x": None}, labels)
        torch.testing.assert_close(loss, alpha * kl + (1 - alpha) * ce)


def test_distill_cnn_into_mobilenet_records_baseline(cnn_artifact, tmp_path):
    config = DistillConfig(student="mobilenetv2", width=0.35, train=QUICK, eval_samples=100, val_samples=100)
    child = distill(cnn_artifact, config, tmp_path / "student")
    report = child.metrics["distill"]
    assert {"teacher_test_accuracy", "distilled_test_accuracy", "baseline_test_accuracy",
            "distillation_gain"} <= set(report)
    assert report["distilled_test_accuracy"] == child.metrics["test_accuracy"]
    assert child.labels == cnn_artifact.labels and child.parent == cnn_artifact.sha256
    assert child.metrics["macs"] < report["teacher_macs"]
    model = load_module(Artifact.load(child.path))
    assert model(pixel_values=torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_distill_cnn_into_squeezenet(cnn_artifact, tmp_path):
    config = DistillConfig(student="squeezenet", width=0.5, train=QUICK, baseline=False, eval_samples=64,
                           val_samples=64)
    child = distill(cnn_artifact, config, tmp_path / "student")
    assert child.arch["builder"] == "squeezenet" and child.metrics["params"] < 0.2 * child.metrics["distill"][
        "teacher_params"]


def test_distill_lstm_into_smaller_gru(lstm_artifact, tmp_path):
    config = DistillConfig(student="gru", width=0.5, train=QUICK, eval_samples=100, val_samples=100)
    child = distill(lstm_artifact, config, tmp_path / "student")
    model = load_module(Artifact.load(child.path))
    assert isinstance(model.rnn, torch.nn.GRU) and model.rnn.hidden_size == 32
    assert "baseline_test_accuracy" in child.metrics["distill"]


def test_bert_student_starts_from_teacher_layers(bert_artifact):
    teacher = load_module(bert_artifact)
    student, arch, layer_map = bert_student(teacher, 2)
    assert layer_map == [2, 5] and student.hf.config.num_hidden_layers == 2
    for j, i in enumerate(layer_map):
        torch.testing.assert_close(student.hf.bert.encoder.layer[j].output.dense.weight,
                                   teacher.hf.bert.encoder.layer[i].output.dense.weight)


@pytest.mark.slow
def test_distill_bert_into_two_layers_with_hidden_and_attention_loss(bert_artifact, tmp_path):
    train = TrainConfig(epochs=1, max_train_samples=32, batch_size=16, lr=5e-5)
    config = DistillConfig(student="bert", depth=2, hidden_weight=1.0, attention_weight=1.0, train=train,
                           baseline=False, eval_samples=32, val_samples=32)
    child = distill(bert_artifact, config, tmp_path / "student")
    model = load_module(Artifact.load(child.path))
    assert model.hf.config.num_hidden_layers == 2
    assert child.metrics["distill"]["macs_reduction"] > 2.5


def test_distill_bert_into_textcnn(bert_artifact, tmp_path):
    train = TrainConfig(epochs=1, max_train_samples=64, batch_size=32)
    config = DistillConfig(student="textcnn", width=0.5, train=train, baseline=False, eval_samples=32,
                           val_samples=32)
    child = distill(bert_artifact, config, tmp_path / "student")
    assert child.arch["builder"] == "textcnn" and [s.name for s in child.inputs] == ["input_ids", "attention_mask"]


def test_student_with_another_label_space_is_rejected(cnn_artifact, tmp_path):
    config = DistillConfig(student="mobilenetv2", student_kwargs={"num_classes": 3}, train=QUICK)
    with pytest.raises(InvalidInput, match="predicts 3 classes but the teacher has 10 outputs"):
        distill(cnn_artifact, config, tmp_path / "a")


def test_student_init_with_other_labels_is_rejected(cnn_artifact, tmp_path):
    other = cnn_artifact.model_copy(update={"labels": ["a", "b"]})
    other.path = tmp_path / "other"
    other.path.mkdir()
    (other.path / other.model_file).write_bytes((cnn_artifact.path / cnn_artifact.model_file).read_bytes())
    other.save()
    with pytest.raises(InvalidInput, match="label"):
        distill(cnn_artifact, DistillConfig(student_init=other.path, train=QUICK), tmp_path / "b")


def test_student_must_suit_the_teacher_family(lstm_artifact, tmp_path):
    with pytest.raises(InvalidInput, match="does not suit"):
        distill(lstm_artifact, DistillConfig(student="mobilenetv2", train=QUICK), tmp_path / "c")
