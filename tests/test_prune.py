"""Structured pruning: smaller dense models that reload without pickle and export; bad input fails clearly."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from edgeopt.core.artifacts import Artifact, Format
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.zoo import load_module, preprocessor_of
from edgeopt.core.train import TrainConfig, evaluate
from edgeopt.optimize import STEPS, PruneConfig, prune
from edgeopt.optimize.prune import check_traceable, prune_rnn_hidden


def test_steps_registry_lists_every_technique():
    assert set(STEPS) == {"prune", "distill", "sequence", "quantize"}
    for step in STEPS.values():
        required = {"max_len": 32} if step.name == "sequence" else {}  # tokens per text has no sensible default
        assert callable(step.run) and step.config_class(**required).model_dump()


def test_prune_cnn_by_ratio_is_smaller_and_reloads(cnn_artifact, fashion, tmp_path):
    child = prune(cnn_artifact, PruneConfig(ratio=0.5, eval_samples=300), tmp_path / "pruned")
    report = child.metrics["prune"]
    assert child.metrics["macs"] * 2 <= report["parent_macs"]
    assert child.metrics["params"] * 2 <= report["parent_params"]
    assert child.parent == cnn_artifact.sha256 and child.recipe[-1]["step"] == "prune"
    assert child.arch["pruned"] is True
    # save -> load (weights_only) gives the same model: same accuracy on the same samples
    reloaded = Artifact.load(child.path)
    model = load_module(reloaded)
    assert model.conv1.out_channels == report["conv_widths"]["conv1"] < 32
    accuracy = evaluate(model, preprocessor_of(reloaded), fashion.test.subset(300))
    assert accuracy == pytest.approx(child.metrics["test_accuracy"])
    assert accuracy > 0.5  # magnitude pruning of a trained CNN keeps it far above chance


def test_prune_cnn_to_macs_target_iteratively_with_finetune(cnn_artifact, tmp_path):
    config = PruneConfig(target_macs=0.4, steps=2, eval_samples=200, val_samples=300,
                         finetune=TrainConfig(epochs=1, max_train_samples=256, batch_size=64, lr=1e-3))
    child = prune(cnn_artifact, config, tmp_path / "pruned")
    report = child.metrics["prune"]
    assert child.metrics["macs"] <= 0.4 * report["parent_macs"]
    assert [h["step"] for h in report["history"]] == [1, 2] and "val_accuracy" in report["history"][0]
    assert report["history"][0]["macs"] > report["history"][1]["macs"]  # the target is approached in steps


def test_prune_resnet_with_taylor_keeps_residuals_consistent_and_exports(resnet_artifact, tmp_path):
    from edgeopt.export import export_artifact

    config = PruneConfig(ratio=0.5, criterion="taylor", global_pruning=False, eval_samples=100)
    child = prune(resnet_artifact, config, tmp_path / "pruned")
    assert child.metrics["macs"] * 2 <= child.metrics["prune"]["parent_macs"]
    onnx = export_artifact(child, "onnx", tmp_path / "onnx")  # residual adds still line up: exports, parity ok
    assert onnx.metrics["parity"]["ok"]


def test_prune_cnn_exports_to_openvino(cnn_artifact, tmp_path):
    from edgeopt.export import export_artifact

    child = prune(cnn_artifact, PruneConfig(ratio=0.3, criterion="lamp", global_pruning=True, eval_samples=64),
                  tmp_path / "pruned")
    ir = export_artifact(child, "openvino", tmp_path / "ir")
    assert ir.format == Format.OPENVINO and ir.metrics["parity"]["ok"]


def test_rnn_hidden_pruning_keeps_the_four_gates_aligned():
    """Units whose outgoing weights are zero do not influence the output, so removing them changes nothing —
    unless the gate rows were sliced inconsistently."""
    torch.manual_seed(0)
    lstm, fc = nn.LSTM(8, 6, batch_first=True), nn.Linear(6, 3)
    dead = [1, 4]
    with torch.no_grad():
        lstm.weight_hh_l0[:, dead] = 0
        fc.weight[:, dead] = 0
    x = torch.randn(2, 5, 8)
    expected = fc(lstm(x)[0])
    keep = torch.tensor([0, 2, 3, 5])
    prune_rnn_hidden(lstm, keep)
    fc_small = nn.Linear(4, 3)
    fc_small.weight.data, fc_small.bias.data = fc.weight[:, keep], fc.bias
    assert lstm.hidden_size == 4 and lstm.weight_ih_l0.shape == (16, 8) and lstm.weight_hh_l0.shape == (16, 4)
    torch.testing.assert_close(fc_small(lstm(x)[0]), expected)


def test_prune_lstm_hidden_units_roundtrip(lstm_artifact, tmp_path):
    child = prune(lstm_artifact, PruneConfig(ratio=0.5, eval_samples=200), tmp_path / "pruned")
    model = load_module(Artifact.load(child.path))
    assert model.lstm.hidden_size == 64 and model.fc.in_features == 64
    assert child.metrics["params"] < child.metrics["prune"]["parent_params"]


@pytest.fixture(scope="module")
def pruned_bert(bert_artifact, tmp_path_factory):
    return prune(bert_artifact, PruneConfig(ratio=0.5, head_ratio=0.5, eval_samples=32),
                 tmp_path_factory.mktemp("prune") / "bert")


def test_prune_bert_heads_and_ffn_roundtrips(pruned_bert, sentiment):
    child = pruned_bert
    model = load_module(Artifact.load(child.path))
    config = model.hf.config
    assert config.edgeopt_pruned_layers == [{"heads": 6, "intermediate": 768}] * 6
    attention = model.hf.bert.encoder.layer[0].attention.self
    assert attention.num_attention_heads == 6 and attention.all_head_size == 192 and attention.scaling == 32 ** -0.5
    assert child.metrics["macs"] < 0.6 * child.metrics["prune"]["parent_macs"]
    inputs = {k: torch.from_numpy(v) for k, v in preprocessor_of(child)(sentiment.test.inputs[:4]).items()}
    assert torch.isfinite(model(**inputs)).all()


@pytest.mark.slow
def test_pruned_bert_exports_to_onnx_and_openvino(pruned_bert, tmp_path):
    from edgeopt.export import export_artifact

    for fmt in ("onnx", "openvino"):
        assert export_artifact(pruned_bert, fmt, tmp_path / fmt).metrics["parity"]["ok"]


@pytest.mark.parametrize("values", [{"ratio": 0.0}, {"ratio": 1.0}, {"ratio": 1.5}, {"target_macs": 1.2},
                                    {"ratio": 0.5, "target_macs": 0.5}])
def test_bad_ratios_are_rejected(values):
    with pytest.raises(ValidationError):
        PruneConfig(**values)


def test_cli_reports_bad_ratio_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from edgeopt.cli import app

    result = CliRunner().invoke(app, ["prune", "cnn", "--output", str(tmp_path / "x"), "--ratio", "1.5"])
    assert result.exit_code != 0 and "ratio" in str(result.exception)


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3)
        self.body = nn.Conv2d(8, 8, 3)
        self.head = nn.Linear(8, 10)

    def forward(self, pixel_values):
        x = torch.relu(self.stem(pixel_values)).detach()  # torch-pruning cannot see that body consumes stem
        return self.head(self.body(x).mean((2, 3)))


def test_untraceable_model_names_the_module():
    with pytest.raises(InvalidInput, match="stem"):
        check_traceable(Detached(), {"pixel_values": torch.randn(2, 1, 28, 28)})


def test_bn_scale_needs_batchnorm_and_torch_format(cnn_artifact, tmp_path):
    with pytest.raises(InvalidInput, match="BatchNorm"):
        prune(cnn_artifact, PruneConfig(criterion="bn_scale", eval_samples=16), tmp_path / "a")
    onnx_like = cnn_artifact.model_copy(update={"format": Format.ONNX})
    with pytest.raises(InvalidInput, match="torch-format"):
        prune(onnx_like, PruneConfig(), tmp_path / "b")



@pytest.mark.parametrize("options,refused", [
    ({"target_macs": 0.5}, "target_macs"), ({"criterion": "random"}, "criterion"),
    ({"global_pruning": True}, "global_pruning"), ({"head_ratio": 0.25}, "head_ratio")])
def test_lstm_pruning_refuses_options_it_does_not_implement(lstm_artifact, tmp_path, options, refused):
    with pytest.raises(InvalidInput, match=f"{refused} not supported for lstm models"):
        prune(lstm_artifact, PruneConfig(eval_samples=16, **options), tmp_path / "pruned")
    assert not (tmp_path / "pruned").exists()


def test_the_seed_decides_random_pruning(cnn_artifact, tmp_path):
    def kept(seed: int, name: str) -> torch.Tensor:
        child = prune(cnn_artifact, PruneConfig(criterion="random", seed=seed, eval_samples=16), tmp_path / name)
        assert child.recipe[-1]["seed"] == seed
        return load_module(Artifact.load(child.path)).conv1.weight

    first = kept(1, "a")
    assert torch.equal(first, kept(1, "b"))
    assert not torch.equal(first, kept(2, "c"))
