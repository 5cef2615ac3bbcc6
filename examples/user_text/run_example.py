"""Bring your own text model, vocabulary and CSV through the same pipeline as the zoo models.

    python examples/user_text/run_example.py [WORK_DIR]

What it does, as a user would:
1. writes a CSV of 4,000 texts in three classes (`text,label`: film reviews labelled fresh or rotten, and plot
   summaries labelled plot, from the Rotten Tomatoes snippets edgeopt bundles; stand-ins for yours),
2. builds its own vocabulary file from the CSV's train rows (one token per line; `<unk>` is id 0 and `<pad>`
   id 1) and trains `my_text_model.LSTMClassifier` on exactly those rows (edgeopt's seeded split, so its test
   rows were never trained on) with a plain torch loop, saving its state_dict,
3. writes `edgeopt.yaml` naming the factory, weights, vocabulary and CSV, with FP32 (torch, ONNX Runtime,
   OpenVINO), INT8 (ONNX Runtime dynamic, OpenVINO static), pruned and distilled (TextCNN) recipes,
4. runs the pipeline: build (cached), verify parity, measure accuracy/latency/memory/size, report.
"""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
ROWS = 4000
MAX_LEN = 64


def write_csv(path: Path) -> Path:
    import bz2

    from edgeopt.core.data import SENTIMENT_FILE

    with bz2.open(SENTIMENT_FILE, "rt", encoding="utf-8") as handle:
        rows = [(row["text"], row["category"]) for row in csv.DictReader(handle)]
    picked = np.random.default_rng(0).choice(len(rows), ROWS, replace=False)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows[i] for i in sorted(picked))
    return path


def write_vocabulary(texts: list[str], path: Path) -> Path:
    """The user's vocabulary: words seen twice in the train rows, most frequent first (as the zoo builds its own),
    with its unknown and padding tokens in its own order."""
    from edgeopt.core.preprocess import VocabEncoder

    words = VocabEncoder.build(texts, max_size=len(texts) * 100, min_count=2).vocab[2:]  # after <pad>, <unk>
    path.write_text("\n".join(["<unk>", "<pad>", *words]) + "\n", encoding="utf-8")
    return path


def train(data, vocab: Path, weights: Path) -> None:
    sys.path.insert(0, str(HERE))
    from my_text_model import make_model

    from edgeopt.core.preprocess import VocabEncoder

    encode = VocabEncoder.from_file(vocab, max_len=MAX_LEN, inputs=("input_ids", "attention_mask"))
    torch.manual_seed(0)
    model = make_model(vocab_size=len(encode.vocab), num_classes=len(data.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    texts, labels = list(data.train.inputs), torch.from_numpy(data.train.labels)
    for _ in range(4):
        order = torch.randperm(len(texts)).tolist()
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            inputs = {k: torch.from_numpy(v) for k, v in encode([texts[i] for i in batch]).items()}
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(**inputs), labels[batch]).backward()
            optimizer.step()
    torch.save(model.eval().state_dict(), weights)


def write_config(work: Path, vocab_size: int, classes: int) -> Path:
    shutil.copy2(HERE / "my_text_model.py", work / "my_text_model.py")  # the factory sits beside the config
    config = {
        "output": str(work / "edgeopt-out"),
        "devices": ["cpu-1t"],
        "batch_sizes": [1],
        "measure": {"eval_samples": None,
                    "latency": {"warmup_runs": 2, "warmup_seconds": 0.05, "min_runs": 10, "min_seconds": 0.2}},
        "models": {"my-lstm": {
            "module": "my_text_model:make_model", "family": "lstm",
            "kwargs": {"vocab_size": vocab_size, "num_classes": classes},
            "weights": "weights.pt", "vocab": "vocab.txt", "max_len": MAX_LEN, "dataset": "./reviews.csv",
            "recipes": [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime", "openvino"]},
                {"name": "int8", "quantize": {"mode": "dynamic"}, "runtimes": ["onnxruntime"]},
                {"name": "int8-ov", "quantize": {"mode": "static", "samples": 128}, "runtimes": ["openvino"]},
                {"name": "pruned", "prune": {"ratio": 0.5, "finetune": {"epochs": 1, "batch_size": 32}},
                 "runtimes": ["onnxruntime"]},
                {"name": "textcnn", "distill": {"student": "textcnn", "width": 0.5,
                                                "train": {"epochs": 3, "batch_size": 32, "lr": 2e-3}},
                 "runtimes": ["onnxruntime"]},
            ],
        }},
    }
    path = work / "edgeopt.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(work: Path):
    from edgeopt import Pipeline
    from edgeopt.core.data import load_text_csv

    work.mkdir(parents=True, exist_ok=True)
    data = load_text_csv(write_csv(work / "reviews.csv"))  # the split edgeopt will use (seeded)
    vocab = write_vocabulary(list(data.train.inputs), work / "vocab.txt")
    train(data, vocab, work / "weights.pt")
    vocab_size = len(vocab.read_text(encoding="utf-8").splitlines())
    result = Pipeline(write_config(work, vocab_size, len(data.classes))).run()
    for row in result.rows:
        accuracy = f"{row.accuracy:.2%}" if row.accuracy is not None else "-"
        print(f"{row.label:28} {row.precision:5} {row.status:6} accuracy {accuracy}  {row.error or ''}")
    print("report:", result.reports["html"])
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("edgeopt-out/user-text-example"))
