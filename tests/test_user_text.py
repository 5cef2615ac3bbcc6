"""Your own text model: a module factory over token ids with its own vocabulary (or a Hugging Face tokenizer),
its input names read from `forward`, through prune / distill / export / INT8 / measure like the zoo LSTM."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml

from edgeopt.config import load_config
from edgeopt.core.errors import InvalidInput
from edgeopt.core.preprocess import VocabEncoder, load_preprocessor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_text" / "run_example.py"
# input_ids only, and a tokenizer's vocabulary: edgeopt must feed just what forward takes
TEXTCNN_CODE = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, vocab_size, num_classes=2):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, 32)
            self.conv = nn.Conv1d(32, 32, 3, padding=1)
            self.head = nn.Linear(32, num_classes)

        def forward(self, input_ids):
            return self.head(torch.relu(self.conv(self.embed(input_ids).transpose(1, 2))).amax(-1))


    def make_model(vocab_size, num_classes=2):
        return Net(vocab_size, num_classes)


    class TakesTokens(Net):
        def forward(self, tokens):
            return super().forward(tokens)


    def make_positional(vocab_size):
        return TakesTokens(vocab_size)
''')


@pytest.fixture(scope="module")
def reviews(tmp_path_factory, sentiment):
    path = tmp_path_factory.mktemp("text") / "reviews.csv"
    lines = ["text,label"] + [f'"{t.replace(chr(34), "")}",{"good" if y else "bad"}'
                              for t, y in zip(sentiment.test.inputs[:300], sentiment.test.labels[:300])]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tmp_path: Path, **model) -> dict:
    return {"output": str(tmp_path / "out"), "models": {"mine": {"module": "text_net:make_model", "family": "lstm",
                                                                  "dataset": "./reviews.csv", **model}}}


def test_a_text_module_needs_its_preprocessing(tmp_path):
    with pytest.raises(InvalidInput, match="exactly one of vocab .* or tokenizer"):
        load_config(_config(tmp_path))
    with pytest.raises(InvalidInput, match="vocab and tokenizer go with a text model of your own"):
        load_config({"models": {"m": {"zoo": "lstm", "vocab": "v.txt"}}})
    with pytest.raises(InvalidInput, match="family bert is a huggingface directory"):
        load_config({"models": {"m": {"module": "a:b", "family": "bert", "dataset": "x.csv"}}})


def test_a_vocabulary_file_names_its_pad_and_unknown_tokens(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[UNK]\nthe\n[PAD]\nfilm\nFilm\n")
    encode = VocabEncoder.from_file(vocab, padding_side="left", inputs=("input_ids", "attention_mask"))
    out = encode(["The film", "film noir is"])
    assert encode.pad_id == 2 and encode.unk_id == 0
    assert out["input_ids"].tolist() == [[2, 1, 3], [3, 0, 0]]  # left-padded with [PAD]; unknown words -> [UNK]
    assert out["attention_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    cased = VocabEncoder.from_file(vocab, lowercase=False)
    assert cased(["Film"])["input_ids"].tolist() == [[4]] and "attention_mask" not in cased(["Film"])
    encode.save(tmp_path)
    reloaded = load_preprocessor(tmp_path, encode.to_spec())
    assert reloaded(["film noir"])["input_ids"].tolist() == encode(["film noir"])["input_ids"].tolist() == [[3, 0]]
    assert VocabEncoder.build(["a a b b"]).to_spec().keys() == {"kind", "vocab_file", "vocab_size", "max_len",
                                                                "files"}  # the zoo's manifests are unchanged
    vocab.write_text("the\nfilm\n")
    with pytest.raises(InvalidInput, match="no pad token"):
        VocabEncoder.from_file(vocab)


def test_forward_must_take_input_ids(tmp_path, reviews):
    from edgeopt import Pipeline

    (tmp_path / "text_net.py").write_text(TEXTCNN_CODE)
    (tmp_path / "reviews.csv").write_text(reviews.read_text())
    (tmp_path / "vocab.txt").write_text("<pad>\n<unk>\nthe\n")
    config = _config(tmp_path, module="text_net:make_positional", vocab="vocab.txt", kwargs={"vocab_size": 3})
    (tmp_path / "edgeopt.yaml").write_text(yaml.safe_dump(config))
    result = Pipeline(tmp_path / "edgeopt.yaml").run(report=False)
    assert result.exit_code != 0
    assert result.rows and all("forward takes (tokens)" in r.error for r in result.rows), result.rows


def test_a_module_with_a_tokenizer_takes_only_what_forward_names(tmp_path, reviews):
    """A TextCNN over a Hugging Face tokenizer's ids, forward(input_ids): exported and measured with input_ids
    alone, on ONNX Runtime and OpenVINO, with parity."""
    from edgeopt import Pipeline
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.models.bert import minilm_path

    (tmp_path / "text_net.py").write_text(TEXTCNN_CODE)
    (tmp_path / "reviews.csv").write_text(reviews.read_text())
    config = _config(tmp_path, tokenizer=str(minilm_path()), kwargs={"vocab_size": 30522}, max_len=32,
                     recipes=[{"name": "fp32", "runtimes": ["torch", "onnxruntime", "openvino"]}])
    config["measure"] = {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}}
    (tmp_path / "edgeopt.yaml").write_text(yaml.safe_dump(config))
    result = Pipeline(tmp_path / "edgeopt.yaml").run(report=False)
    assert result.exit_code == 0, [r.error for r in result.rows]
    assert {r.runtime for r in result.rows if r.ok} == {"torch", "onnxruntime", "openvino"}
    onnx_row = next(r for r in result.rows if r.runtime == "onnxruntime")
    artifact = Artifact.load(onnx_row.artifact_path, trust_code=True)
    assert [t.name for t in artifact.inputs] == ["input_ids"]
    assert artifact.preprocess["kind"] == "wordpiece" and artifact.preprocess["inputs"] == ["input_ids"]
    assert artifact.metrics["parity"]["ok"] and artifact.metrics["parity"]["samples"] > 0
    torch_accuracy = next(r.accuracy for r in result.rows if r.runtime == "torch")
    assert onnx_row.accuracy == pytest.approx(torch_accuracy)  # the same inputs reach both


def _load_example():
    spec = importlib.util.spec_from_file_location("user_text_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # trains the user's LSTM, then prunes, distills, exports and quantizes it (~2 min on 2 cores)
def test_user_text_example(tmp_path):
    from edgeopt.core.artifacts import Artifact

    result = _load_example().main(tmp_path)
    assert result.exit_code == 0, [r.error for r in result.rows]
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert set(rows) == {("fp32", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime"),
                         ("int8-ov", "openvino"), ("pruned", "onnxruntime"), ("textcnn", "onnxruntime")}
    assert all(r.ok and r.family == "lstm" and r.accuracy_samples == 400 for r in rows.values())
    fp32 = rows[("fp32", "torch")].accuracy
    assert fp32 > 0.6  # 3 classes: far above chance, so weights, vocabulary and pad id all held
    assert rows[("fp32", "onnxruntime")].accuracy == pytest.approx(fp32)
    for int8 in (rows[("int8", "onnxruntime")], rows[("int8-ov", "openvino")]):
        assert int8.precision == "int8" and int8.accuracy > fp32 - 0.03
    source = Artifact.load(rows[("fp32", "onnxruntime")].artifact_path, trust_code=True)
    assert source.preprocess["pad_id"] == 1 and [t.name for t in source.inputs] == ["input_ids", "attention_mask"]
    cache = tmp_path / "edgeopt-out" / "cache"
    (pruned,) = [Artifact.load(d, trust_code=True) for d in cache.glob("prune-*")]
    assert pruned.metrics["prune"]["hidden"] == 64 and pruned.metrics["prune"]["original_hidden"] == 128
    (student,) = [Artifact.load(d) for d in cache.glob("distill-*")]
    assert student.arch["pad_id"] == 1 and student.arch["num_classes"] == 3  # masks the user's padding
    assert "baseline_test_accuracy" in student.metrics["distill"]  # compared with the same student alone
    report = result.reports["html"].read_text()
    assert "my-lstm" in report and "my-lstm → textcnn student" in report and "trained alone" in report


def test_a_text_file_without_labels_is_an_unlabelled_data_set(tmp_path):
    from edgeopt.core.data import load_dataset, with_reference

    path = tmp_path / "sentences.txt"
    path.write_text("".join(f"sentence number {i}\n\n" for i in range(50)))
    data = load_dataset(path)
    assert not data.labelled and data.kind == "text" and data.classes == []
    assert (len(data.train), len(data.val), len(data.test)) == (40, 5, 5) and "sentence number 0" in (
        data.train.inputs + data.val.inputs + data.test.inputs)
    labels = {s.name: [i % 3 for i in range(len(s))] for s in (data.train, data.val, data.test)}
    labelled = with_reference(data, labels, 4, "here")
    assert labelled.classes == ["output 0", "output 1", "output 2", "output 3"]
    assert labelled.describe()["reference_labels"]["test"] == [0, 1, 2, 0, 1]
    with pytest.raises(InvalidInput, match="4 reference labels for the test split .* has 5 inputs"):
        with_reference(data, {**labels, "test": [0, 1, 2, 0]}, 4, "here")


def test_the_zoo_lstm_recipe_trains_on_a_users_csv(tmp_path, reviews):
    """`zoo: lstm` + `dataset: my.csv`: the zoo's architecture and schedule, its vocabulary and classes built from
    the user's rows, then exported and quantized like any source (the bundled checkpoint is not touched)."""
    from edgeopt import Pipeline
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.models.zoo import find_zoo_checkpoint

    before = find_zoo_checkpoint("lstm")
    config = {"output": str(tmp_path / "out"),
              "measure": {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}},
              "models": {"my-lstm": {"zoo": "lstm", "dataset": str(reviews), "recipes": [
                  {"name": "fp32", "runtimes": ["onnxruntime"]},
                  {"name": "int8", "quantize": {"mode": "dynamic"}, "runtimes": ["onnxruntime"]}]}}}
    result = Pipeline(config).run(report=False)
    assert result.exit_code == 0, [r.error for r in result.rows]
    assert {r.recipe for r in result.rows} == {"fp32", "int8"} and all(r.accuracy > 0.3 for r in result.rows)
    source = Artifact.load(next(r.artifact_path for r in result.rows if r.recipe == "fp32"))
    assert source.labels == ["bad", "good"] and source.dataset["source"] == str(reviews)
    assert source.dataset["splits"]["test"]["size"] == 30 and source.recipe[0]["step"] == "train"
    assert (find_zoo_checkpoint("lstm").sha256 if before else None) == (before.sha256 if before else None)
    with pytest.raises(InvalidInput, match="zoo model 'cnn' is trained and measured on Fashion-MNIST"):
        load_config({"models": {"m": {"zoo": "cnn", "dataset": str(reviews)}}})


def test_a_text_onnx_model_with_its_vocabulary(tmp_path, reviews):
    """An ONNX text model (input_ids + attention_mask, dynamic axes) with a vocabulary file: inputs read from the
    graph, measured on ONNX Runtime and OpenVINO, quantized; a graph with a fixed sequence length is refused."""
    import torch
    from torch import nn

    from edgeopt import Pipeline
    from edgeopt.core.artifacts import Artifact

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 16, padding_idx=0)
            self.head = nn.Linear(16, 2)

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.unsqueeze(-1).float()
            return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))

    words = sorted({w for line in reviews.read_text().splitlines()[1:] for w in line.lower().split()})[:48]
    (tmp_path / "vocab.txt").write_text("\n".join(["<pad>", "<unk>", *words]) + "\n")
    torch.manual_seed(0)
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    torch.onnx.export(Bag().eval(), example, str(tmp_path / "bag.onnx"), input_names=list(axes),
                      output_names=["logits"], dynamic_axes=axes, dynamo=False)
    torch.onnx.export(Bag().eval(), example, str(tmp_path / "fixed.onnx"), input_names=list(axes),
                      output_names=["logits"], dynamo=False)
    config = {"output": str(tmp_path / "out"),
              "measure": {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}},
              "models": {"bag": {"onnx": str(tmp_path / "bag.onnx"), "family": "lstm",
                                 "vocab": str(tmp_path / "vocab.txt"), "dataset": str(reviews), "recipes": [
                                     {"name": "fp32", "runtimes": ["onnxruntime", "openvino"]},
                                     {"name": "int8", "quantize": {"mode": "dynamic"}, "runtimes": ["onnxruntime"]}]}}}
    result = Pipeline(config).run(report=False)
    assert result.exit_code == 0, [r.error for r in result.rows]
    assert {(r.recipe, r.runtime) for r in result.rows} == {("fp32", "onnxruntime"), ("fp32", "openvino"),
                                                           ("int8", "onnxruntime")}
    source = Artifact.load(next(r.artifact_path for r in result.rows if r.recipe == "fp32"))
    assert [t.name for t in source.inputs] == ["input_ids", "attention_mask"] and source.family == "lstm"
    config["models"]["bag"]["onnx"] = str(tmp_path / "fixed.onnx")
    config["output"] = str(tmp_path / "out2")
    fixed = Pipeline(config).run(report=False)
    assert fixed.exit_code != 0 and all("dynamic batch and sequence axes" in r.error for r in fixed.rows)
