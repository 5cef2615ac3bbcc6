"""Bring your own model and data through the same pipeline as the zoo models.

    python examples/user_model/run_example.py [WORK_DIR]

What it does, as a user would:
1. makes an image-folder data set (WORK_DIR/images/CLASS/*.png: RGB photos of 80 x 72, here 3 Fashion-MNIST
   classes, tinted, stand in for yours; IDX directories and text CSVs work too),
2. trains `my_model.TinyNet` (RGB 64 x 64, 10 outputs, like an ImageNet model in miniature: the folder's classes
   are its outputs 1, 7 and 8) with a plain torch loop and saves its state_dict (weights.pt),
3. writes `edgeopt.yaml` naming the factory `my_model:make_model`, the weights, the data set, the preprocessing
   used in training and the label map, with FP32, INT8, pruned and distilled (MobileNetV2) recipes,
4. runs the pipeline: build (cached), verify parity, measure accuracy/latency/memory/size, report.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

HERE = Path(__file__).resolve().parent
CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}  # Fashion-MNIST label (= the model's output) -> folder name
PER_CLASS = 100
# The preprocessing this model is trained with; edgeopt must use the same (it is written to the config).
PREPROCESSING = {"image_channels": 3, "image_size": 64, "image_resize": 64,
                 "image_mean": [0.3, 0.25, 0.15], "image_std": [0.3, 0.25, 0.15]}


def make_image_folder(root: Path) -> Path:
    from edgeopt.core.data import load_dataset

    fashion = load_dataset("fashion-mnist").test
    rng = np.random.default_rng(0)
    for label, name in CLASSES.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(fashion.labels == label)[:PER_CLASS]):
            tint = rng.uniform(0.6, 1.0, 3) * [1.0, 0.8, 0.5]
            rgb = (fashion.inputs[index][..., None] * tint).astype(np.uint8)
            Image.fromarray(rgb).resize((72, 80)).save(folder / f"{i:04d}.png")
    return root


def train(images: Path, weights: Path) -> None:
    sys.path.insert(0, str(HERE))
    from my_model import make_model

    from edgeopt.core.data import load_image_folder
    from edgeopt.core.preprocess import ImagePreprocessor

    data = load_image_folder(images)  # image files, decoded by the preprocessing the model is trained with
    preprocess = ImagePreprocessor(PREPROCESSING["image_mean"], PREPROCESSING["image_std"], channels=3,
                                   size=PREPROCESSING["image_size"], resize=PREPROCESSING["image_resize"])
    x = torch.from_numpy(preprocess(data.train.inputs)["pixel_values"])
    outputs = {name: label for label, name in CLASSES.items()}
    y = torch.tensor([outputs[data.classes[i]] for i in data.train.labels])  # folder -> the model's output
    torch.manual_seed(0)
    model = make_model(num_classes=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(12):
        order = torch.randperm(len(x))  # the folder is read class by class: shuffle
        for start in range(0, len(x), 32):
            batch = order[start:start + 32]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
    torch.save(model.eval().state_dict(), weights)


def write_config(work: Path) -> Path:
    shutil.copy2(HERE / "my_model.py", work / "my_model.py")  # the factory sits beside the config
    config = {
        "output": str(work / "edgeopt-out"),
        "devices": ["cpu-1t"],
        "batch_sizes": [1],
        "measure": {"latency": {"warmup_runs": 2, "warmup_seconds": 0.05, "min_runs": 10, "min_seconds": 0.2}},
        "models": {"my-net": {
            "module": "my_model:make_model", "kwargs": {"num_classes": 10}, "weights": "weights.pt",
            "dataset": "./images", **PREPROCESSING,
            "label_map": {name: label for label, name in CLASSES.items()},  # folder -> the model's output
            "recipes": [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
                {"name": "int8", "quantize": {"mode": "static", "samples": 64}, "runtimes": ["onnxruntime"]},
                {"name": "pruned", "prune": {"ratio": 0.3, "finetune": {"epochs": 3, "batch_size": 32}},
                 "runtimes": ["onnxruntime"]},
                {"name": "mbv2", "distill": {"student": "mobilenetv2", "width": 0.5,
                                             "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3}},
                 "runtimes": ["onnxruntime"]},
            ],
        }},
    }
    path = work / "edgeopt.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(work: Path):
    from edgeopt import Pipeline

    work.mkdir(parents=True, exist_ok=True)
    make_image_folder(work / "images")
    train(work / "images", work / "weights.pt")
    result = Pipeline(write_config(work)).run()
    for row in result.rows:
        accuracy = f"{row.accuracy:.2%}" if row.accuracy is not None else "-"
        print(f"{row.label:24} {row.precision:5} {row.status:6} accuracy {accuracy}  {row.error or ''}")
    print("report:", result.reports["html"])
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("edgeopt-out/user-model-example"))
