"""Your own Hugging Face text classifier, whatever its architecture: BERT-layout encoders (BERT, RoBERTa) and
DistilBERT prune and reload with the same logits and distill into a shallower copy; ALBERT (one layer shared
across depth) and a base encoder without a trained classification head fail clearly."""
from __future__ import annotations

import csv

import pytest
import torch

from edgeopt.core.artifacts import Artifact
from edgeopt.core.data import dataset_of, load_rotten_tomatoes, load_text_csv
from edgeopt.core.errors import InvalidInput
from edgeopt.core.models.bert import BertClassifier, minilm_path
from edgeopt.core.models.transformer_layout import LAYOUTS
from edgeopt.core.models.zoo import load_module, preprocessor_of
from edgeopt.core.train import TrainConfig, evaluate
from edgeopt.optimize import DistillConfig, PruneConfig, distill, prune
from edgeopt.optimize.prune import BertPruner
from edgeopt.pipeline import Node, _build_source

SIZES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
DISTILBERT_SIZES = {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128}


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory):
    """120 Rotten Tomatoes rows as the user's own CSV."""
    data = load_rotten_tomatoes().train
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(data.inputs[:120], data.labels[:120].tolist()))
    return path


def save_hf(directory, model_type: str, head: bool = True):
    """A tiny randomly initialised `model_type` (with the MiniLM tokenizer) saved as a Hugging Face directory."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    sizes = DISTILBERT_SIZES if model_type == "distilbert" else SIZES
    # pad_token_id 0: the id the tokenizer pads with (RoBERTa's default is 1)
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), num_labels=2, pad_token_id=0, **sizes)
    torch.manual_seed(0)
    model = (AutoModelForSequenceClassification if head else AutoModel).from_config(config)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def user_source(directory, text_csv, out) -> Artifact:
    """The pipeline's path for `huggingface: directory` with `dataset: text_csv`."""
    node = Node(key="test", kind="source", params={"model": "mine", "huggingface": str(directory),
                                                   "dataset": str(text_csv)})
    return _build_source(node, None, out, None)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert"])
def test_prune_and_distill_any_layout(model_type, text_csv, tmp_path):
    source = user_source(save_hf(tmp_path / "hf", model_type), text_csv, tmp_path / "source")
    layout = LAYOUTS[model_type]
    pruned = prune(source, PruneConfig(ratio=0.5, head_ratio=0.5, eval_samples=8), tmp_path / "pruned")
    model = load_module(Artifact.load(pruned.path))
    assert model.hf.config.edgeopt_pruned_layers == [{"heads": 2, "intermediate": 64}] * 2
    for layer in layout.encoder_layers(model.hf):
        assert layout.heads(layer) == 2 and layout.part(layer, "query").out_features == 2 * 16
        assert layout.part(layer, "up").out_features == 64 == layout.part(layer, "down").in_features
    assert pruned.metrics["params"] < source.metrics["params"]
    test = dataset_of(pruned).test.subset(8)
    assert evaluate(model, preprocessor_of(pruned), test) == pytest.approx(pruned.metrics["test_accuracy"])

    model = load_module(source)  # pruned in memory, then saved and loaded: the same logits
    BertPruner(model, {}, PruneConfig(ratio=0.5, head_ratio=0.5)).step(1, iter(()))
    inputs = {k: torch.from_numpy(v) for k, v in preprocessor_of(source)(test.inputs).items()}
    model.eval().save_pretrained(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(BertClassifier.from_pretrained(tmp_path / "saved")(**inputs), model(**inputs))

    train = TrainConfig(epochs=1, max_train_samples=16, batch_size=8)
    config = DistillConfig(student="bert", depth=1, hidden_weight=1.0, attention_weight=1.0, train=train,
                           baseline=False, eval_samples=8, val_samples=8)
    student = distill(pruned, config, tmp_path / "student")
    model = load_module(Artifact.load(student.path))
    assert len(layout.encoder_layers(model.hf)) == model.hf.config.num_hidden_layers == 1
    assert layout.heads(layout.encoder_layers(model.hf)[0]) == 2
    assert model(**inputs).shape == (len(test), 2)


def test_albert_refuses_pruning_and_bert_students_only(text_csv, tmp_path):
    source = user_source(save_hf(tmp_path / "hf", "albert"), text_csv, tmp_path / "source")
    assert source.metrics["params"] > 0
    with pytest.raises(InvalidInput, match="'albert' architecture.*shares one layer.*supported: bert, "):
        prune(source, PruneConfig(ratio=0.5, eval_samples=8), tmp_path / "pruned")
    config = DistillConfig(student="bert", depth=1, train=TrainConfig(epochs=1, max_train_samples=8),
                           baseline=False, eval_samples=8, val_samples=8)
    with pytest.raises(InvalidInput, match="'albert'"):
        distill(source, config, tmp_path / "student")
    textcnn = config.model_copy(update={"student": "textcnn", "width": 0.25})
    assert distill(source, textcnn, tmp_path / "textcnn").arch["builder"] == "textcnn"


def test_base_encoder_without_a_trained_head_is_refused(text_csv, tmp_path):
    directory = save_hf(tmp_path / "hf", "distilbert", head=False)
    with pytest.raises(InvalidInput, match="no trained classification head .*classifier.weight"):
        user_source(directory, text_csv, tmp_path / "source")


def test_a_head_narrower_than_the_classes_is_refused(tmp_path):
    directory = save_hf(tmp_path / "hf", "bert")
    with pytest.raises(InvalidInput, match="has 2 outputs but the data has 3 classes; give a label_map"):
        BertClassifier.from_pretrained(directory, num_labels=3)
    assert BertClassifier.from_pretrained(directory, num_labels=2).hf.config.num_labels == 2


def test_the_models_own_label_names_map_the_data(tmp_path):
    """id2label {0: POSITIVE, 1: NEGATIVE} on a CSV labelled negative/positive: each class is scored against the
    output the model names for it (sorted classes would otherwise put negative on output 0)."""
    from transformers import AutoConfig

    directory = save_hf(tmp_path / "hf", "bert")
    config = AutoConfig.from_pretrained(str(directory))
    config.id2label, config.label2id = {0: "POSITIVE", 1: "NEGATIVE"}, {"POSITIVE": 0, "NEGATIVE": 1}
    config.save_pretrained(str(directory))
    data = load_rotten_tomatoes().train
    named = tmp_path / "named.csv"
    with open(named, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label")] + [(t, ("negative", "positive")[y]) for t, y in
                                                             zip(data.inputs[:120], data.labels[:120].tolist())])
    source = user_source(directory, named, tmp_path / "source")
    assert source.dataset["label_map"] == {"negative": 1, "positive": 0}
    assert source.labels == ["positive", "negative"]  # output i's class
    assert (dataset_of(source).test.labels == 1 - load_text_csv(named).test.labels).all()

    unnamed = tmp_path / "other.csv"
    unnamed.write_text(named.read_text().replace(",negative", ",bad").replace(",positive", ",good"))
    with pytest.raises(InvalidInput, match=r"names its outputs \['POSITIVE', 'NEGATIVE'\].*\['bad', 'good'\]"):
        user_source(directory, unnamed, tmp_path / "source2")
