"""Shared fixtures: real data sets and real model artifacts, built once per test session.

Text and BERT fixtures do not need the fine-tuned zoo checkpoints: the LSTM is trained for one quick epoch
on a subset when no shipped checkpoint exists, and BERT is the real pre-trained MiniLM with a fresh head.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def fashion():
    from edgeopt.core.data import load_dataset

    return load_dataset("fashion-mnist")


@pytest.fixture(scope="session")
def sentiment():
    from edgeopt.core.data import load_dataset

    return load_dataset("rotten-tomatoes")


@pytest.fixture(scope="session")
def cnn_artifact():
    """The shipped, trained seed CNN (Fashion-MNIST)."""
    from edgeopt.core.models.zoo import load_zoo_model

    return load_zoo_model("cnn")


@pytest.fixture(scope="session")
def resnet_artifact(tmp_path_factory):
    """The shipped ResNet teacher when present, else a quickly trained one (1 epoch on 2,000 images)."""
    from edgeopt.core.models.zoo import find_zoo_checkpoint, train_zoo_model

    return find_zoo_checkpoint("resnet") or train_zoo_model(
        "resnet", out=tmp_path_factory.mktemp("zoo") / "resnet", epochs=1, max_train_samples=2000)


@pytest.fixture(scope="session")
def lstm_artifact(tmp_path_factory):
    """The shipped LSTM when present, else a quickly trained one (1 epoch on 2,000 snippets)."""
    from edgeopt.core.models.zoo import find_zoo_checkpoint, train_zoo_model

    return find_zoo_checkpoint("lstm") or train_zoo_model(
        "lstm", out=tmp_path_factory.mktemp("zoo") / "lstm", epochs=1, max_train_samples=2000)


@pytest.fixture(scope="session")
def bert_artifact(tmp_path_factory, sentiment):
    """Pre-trained all-MiniLM-L6-v2 with a fresh 2-class head, saved as a torch artifact (no fine-tuning)."""
    from edgeopt.core.artifacts import Family
    from edgeopt.core.models.bert import BertClassifier, minilm_path
    from edgeopt.core.models.zoo import save_torch_artifact
    from edgeopt.core.preprocess import WordPieceEncoder
    from edgeopt.core.train import seed_everything

    seed_everything(0)
    model = BertClassifier.from_pretrained(minilm_path(), num_labels=2, allow_new_head=True)
    encoder = WordPieceEncoder.from_pretrained(minilm_path(), max_len=128)
    return save_torch_artifact(model, {"builder": "bert", "source": "all-MiniLM-L6-v2"}, encoder,
                               tmp_path_factory.mktemp("bert") / "bert", name="bert-pretrained",
                               family=Family.BERT, data=sentiment)
