"""Bring your own Hugging Face text classifier (a DistilBERT directory) and CSV through the same pipeline as the zoo.

    python examples/user_hf/run_example.py [WORK_DIR]

What it does, as a user would:
1. writes a CSV of 4,000 texts in three classes (`text,label`: film reviews labelled fresh or rotten, and plot
   summaries labelled plot, from the Rotten Tomatoes snippets edgeopt bundles; stand-ins for yours),
2. builds a small `DistilBertForSequenceClassification` (2 layers, dim 128, 4 heads, the MiniLM WordPiece
   vocabulary edgeopt bundles). No pre-trained DistilBERT is available offline, so it starts from RANDOM weights
   and is trained from scratch, with a plain torch loop, on exactly the CSV's train rows (edgeopt's seeded split,
   so its test rows were never trained on); its `id2label`/`label2id` name the data's classes. The model
   (safetensors) and its tokenizer are saved with `save_pretrained` into WORK_DIR/my-distilbert/,
3. writes `edgeopt.yaml` naming that directory (`huggingface: ./my-distilbert`) and the CSV, with FP32 (torch,
   ONNX Runtime, OpenVINO), INT8 (ONNX Runtime dynamic, OpenVINO static), pruned (heads and FFN units) and
   distilled (a 1-layer copy of the teacher) recipes,
4. runs the pipeline: build (cached), verify parity, measure accuracy/latency/memory/size, report.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROWS = 4000
MAX_LEN = 64
# A small DistilBERT: big enough to learn the three classes from 3,200 rows, quick to train (~1 min on one core).
SIZES = {"dim": 128, "n_layers": 2, "n_heads": 4, "hidden_dim": 512, "max_position_embeddings": 512}
EPOCHS = 4


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


def train(data, directory: Path) -> Path:
    """A randomly initialised DistilBERT trained on the train split, saved with its tokenizer."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from edgeopt.core.models.bert import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SIZES,
                              id2label=dict(enumerate(data.classes)),
                              label2id={name: i for i, name in enumerate(data.classes)})
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(config).train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps this small gain nothing from more threads, and lose a lot on a busy machine
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    texts, labels = list(data.train.inputs), torch.from_numpy(data.train.labels)
    steps = EPOCHS * -(-len(texts) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    for _ in range(EPOCHS):
        order = torch.randperm(len(texts)).tolist()
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            inputs = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=MAX_LEN,
                               return_tensors="pt")
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(**inputs).logits, labels[batch]).backward()
            optimizer.step()
            schedule.step()
    torch.set_num_threads(threads)
    model.eval().save_pretrained(str(directory))  # safetensors
    tokenizer.save_pretrained(str(directory))
    return directory


def write_config(work: Path) -> Path:
    config = {
        "output": str(work / "edgeopt-out"),
        "devices": ["cpu-1t"],
        "batch_sizes": [1],
        "measure": {"eval_samples": None,
                    "latency": {"warmup_runs": 2, "warmup_seconds": 0.05, "min_runs": 10, "min_seconds": 0.2}},
        "models": {"my-distilbert": {
            "huggingface": "./my-distilbert", "dataset": "./reviews.csv", "max_len": MAX_LEN,
            "recipes": [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime", "openvino"]},
                {"name": "int8", "quantize": {"mode": "dynamic"}, "runtimes": ["onnxruntime"]},
                {"name": "int8-ov", "quantize": {"mode": "static", "samples": 128}, "runtimes": ["openvino"]},
                {"name": "pruned", "prune": {"ratio": 0.3, "head_ratio": 0.25,
                                             "finetune": {"epochs": 1, "batch_size": 32}},
                 "runtimes": ["onnxruntime"]},
                {"name": "student", "distill": {"student": "bert", "depth": 1,
                                                "train": {"epochs": 2, "batch_size": 32}},
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
    train(data, work / "my-distilbert")
    result = Pipeline(write_config(work)).run()
    for row in result.rows:
        accuracy = f"{row.accuracy:.2%}" if row.accuracy is not None else "-"
        print(f"{row.label:32} {row.precision:5} {row.status:6} accuracy {accuracy}  {row.error or ''}")
    print("report:", result.reports["html"])
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("edgeopt-out/user-hf-example"))
