"""Bring your own model and data through the same pipeline as the zoo models.

    python examples/user_model/run_example.py [WORK_DIR]

What it does, as a user would:
1. makes an image-folder data set (WORK_DIR/images/CLASS/*.png; here 3 Fashion-MNIST classes stand in for your
   photos; IDX directories and text CSVs work the same way),
2. trains `my_model.TinyNet` with a plain torch loop and saves its state_dict (weights.pt),
3. writes `edgeopt.yaml` naming the factory `my_model:make_model`, the weights, the data set and the
   normalisation used in training, with an FP32 and an INT8 recipe,
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
CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}  # Fashion-MNIST label -> folder name
PER_CLASS = 100
MEAN, STD = 0.5, 0.5  # the normalisation this model is trained with; edgeopt must use the same


def make_image_folder(root: Path) -> Path:
    from edgeopt.core.data import load_dataset

    fashion = load_dataset("fashion-mnist").test
    for label, name in CLASSES.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(fashion.labels == label)[:PER_CLASS]):
            Image.fromarray(fashion.inputs[index]).save(folder / f"{i:04d}.png")
    return root


def train(images: Path, weights: Path) -> None:
    sys.path.insert(0, str(HERE))
    from my_model import make_model

    from edgeopt.core.data import load_image_folder
    from edgeopt.core.preprocess import ImagePreprocessor

    data = load_image_folder(images)  # image files, decoded by the preprocessing the model was trained with
    x = torch.from_numpy(ImagePreprocessor(MEAN, STD)(data.train.inputs)["pixel_values"])
    y = torch.from_numpy(data.train.labels)
    torch.manual_seed(0)
    model = make_model(num_classes=len(data.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        for start in range(0, len(x), 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[start:start + 32]), y[start:start + 32])
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
            "module": "my_model:make_model", "kwargs": {"num_classes": len(CLASSES)}, "weights": "weights.pt",
            "dataset": "./images", "image_mean": MEAN, "image_std": STD,
            "recipes": [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
                {"name": "int8", "quantize": {"mode": "static", "samples": 64}, "runtimes": ["onnxruntime"]},
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
