"""The model zoo: shipped checkpoints, manifests, training smoke tests, and loading that refuses bad files."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from edgeopt.core.artifacts import Artifact, Family, Format
from edgeopt.core.errors import CheckpointError, DataUnavailable, InvalidInput
from edgeopt.core.models import build_module
from edgeopt.core.models.zoo import ZOO, evaluate_artifact, load_module, preprocessor_of, train_zoo_model
from edgeopt.core.preprocess import VocabEncoder, WordPieceEncoder, tokenize


def test_zoo_lists_the_four_models():
    assert list(ZOO) == ["cnn", "resnet", "lstm", "bert"]


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_shipped_checkpoints_meet_their_targets_on_the_full_test_split(name):
    """The whole test split (a subset is +-1 pt), the exact data the manifest recorded, the accuracy it claims."""
    from edgeopt.core.models.zoo import find_zoo_checkpoint

    artifact = find_zoo_checkpoint(name)
    result = evaluate_artifact(artifact)
    assert result["samples"] == artifact.dataset["splits"]["test"]["size"]
    assert result["data_matches_training"] is True
    assert result["accuracy"] >= ZOO[name].target_accuracy
    assert result["accuracy"] == pytest.approx(artifact.metrics["test_accuracy"], abs=1e-9)


def test_shipped_cnn_size(cnn_artifact):
    result = evaluate_artifact(cnn_artifact, max_samples=100)
    assert result["params"] == 421_642 and result["macs"] > 4_000_000
    assert result["data_matches_training"] is False  # a 100-sample subset is not the recorded split


def test_an_artifacts_data_set_is_found_from_its_manifest_never_a_fallback(tmp_path, cnn_artifact):
    copy = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, copy)
    artifact = Artifact.load(copy)
    artifact.dataset = {**artifact.dataset, "name": "my-images", "source": str(tmp_path / "gone")}
    with pytest.raises(DataUnavailable, match="cannot load its data set .*gone"):
        evaluate_artifact(artifact)
    artifact.dataset = {}
    with pytest.raises(InvalidInput, match="records no data set"):
        evaluate_artifact(artifact)


def test_seed_architectures_shapes():
    cnn = build_module({"builder": "cnn"})
    assert cnn.fc1.in_features == 64 * 7 * 7
    assert cnn(pixel_values=torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    resnet = build_module({"builder": "resnet", "widths": [32, 64, 128], "blocks": [2, 2, 2]})
    assert resnet(pixel_values=torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    lstm = build_module({"builder": "lstm", "vocab_size": 50})
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]])
    assert lstm.eval()(input_ids=ids).shape == (2, 2)


def test_lstm_ignores_padding():
    lstm = build_module({"builder": "lstm", "vocab_size": 50}).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0, 0]])
    assert torch.allclose(lstm(input_ids=short), lstm(input_ids=padded), atol=1e-6)


def test_resnet_is_large_enough_to_teach():
    from edgeopt.core.models.zoo import count_macs_params

    resnet = build_module({"builder": "resnet", "widths": [32, 64, 128], "blocks": [2, 2, 2]})
    macs, _ = count_macs_params(resnet, {"pixel_values": np.zeros((1, 1, 28, 28), np.float32)})
    assert macs >= 30_000_000


def test_training_smoke_writes_a_complete_manifest(tmp_path):
    artifact = train_zoo_model("cnn", out=tmp_path / "cnn", epochs=1, max_train_samples=3000)
    assert artifact.metrics["test_accuracy"] > 0.6
    manifest = json.loads((tmp_path / "cnn" / "artifact.json").read_text())
    assert manifest["sha256"] and manifest["versions"]["torch"]
    assert manifest["dataset"]["splits"]["test"]["size"] == 10000
    assert manifest["recipe"][0]["step"] == "train" and manifest["recipe"][0]["max_train_samples"] == 3000
    reloaded = Artifact.load(tmp_path / "cnn")
    assert reloaded.sha256 == artifact.sha256
    with pytest.raises(InvalidInput, match="already holds an edgeopt artifact; pass --force"):
        train_zoo_model("cnn", out=tmp_path / "cnn", epochs=1, max_train_samples=100)


def test_training_is_seeded(tmp_path):
    first = train_zoo_model("lstm", out=tmp_path / "a", epochs=1, max_train_samples=800)
    second = train_zoo_model("lstm", out=tmp_path / "b", epochs=1, max_train_samples=800)
    assert first.sha256 == second.sha256


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, cnn_artifact):
    copy = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, copy)
    with open(copy / "model.pt", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        Artifact.load(copy)
    with pytest.raises(CheckpointError, match="not a readable state_dict"):
        load_module(Artifact.load(copy, verify=False))


def test_mismatched_architecture_is_a_clear_error(tmp_path, cnn_artifact):
    copy = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, copy)
    artifact = Artifact.load(copy)
    artifact.arch = {**artifact.arch, "hidden": 64}
    with pytest.raises(CheckpointError, match="do not match architecture"):
        load_module(artifact)


class Payload:
    """An arbitrary object: unpickling it would run code from the checkpoint's author."""


def test_loading_refuses_arbitrary_pickles(tmp_path):
    torch.save({"weights": Payload()}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects that edgeopt will not unpickle"):
        from edgeopt.core.models import load_torch_model

        load_torch_model(tmp_path, "model.pt", {"builder": "cnn"})


def test_unknown_names_list_the_choices():
    with pytest.raises(InvalidInput, match="cnn, resnet, lstm, bert"):
        train_zoo_model("vgg")
    with pytest.raises(InvalidInput, match="expected one of"):
        build_module({"builder": "vgg"})


def test_vocab_round_trip(tmp_path, sentiment):
    encoder = VocabEncoder.build(sentiment.train.inputs[:500], max_size=300)
    encoder.save(tmp_path)
    again = VocabEncoder.load(tmp_path, encoder.to_spec())
    ids = again(["A gripping, funny film.", "dull"])["input_ids"]
    assert ids.shape[0] == 2 and ids[1, 1:].sum() == 0
    assert tokenize("Don't stop!") == ["don't", "stop", "!"]


def test_minilm_tokenizer_is_not_all_unknown():
    from edgeopt.core.models.bert import minilm_path

    encoder = WordPieceEncoder.from_pretrained(minilm_path())
    ids = encoder(["a wonderful movie"])["input_ids"][0]
    unk = encoder.tokenizer.unk_token_id
    assert (ids != unk).all() and len(ids) == 5


def test_bert_fixture_is_a_complete_artifact(bert_artifact, sentiment):
    assert bert_artifact.family == Family.BERT and bert_artifact.format == Format.TORCH
    assert (bert_artifact.path / "tokenizer").is_dir()
    model = load_module(Artifact.load(bert_artifact.path))
    inputs = preprocessor_of(bert_artifact)(sentiment.test.inputs[:3])
    logits = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
