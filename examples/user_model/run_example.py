"""Bring your own model and data through the same pipeline as the zoo models.

    python examples/user_model/run_example.py [WORK_DIR]              # RGB 64 x 64, 10 outputs: a few minutes
    python examples/user_model/run_example.py WORK_DIR --imagenet     # RGB 224 x 224, 1000 outputs: about 10 minutes

What it does, as a user would:
1. makes an image-folder data set (WORK_DIR/images/CLASS/*.png: RGB photos, here 3 Fashion-MNIST classes, tinted
   and resized up, stand in for yours; IDX directories and text CSVs work too),
2. trains `my_model.TinyNet` with a plain torch loop and saves its state_dict (weights.pt). By default it is an
   ImageNet model in miniature (RGB 64 x 64, 10 outputs; the folder's classes are its outputs 1, 7 and 8); with
   --imagenet it is ImageNet-shaped: 224 x 224 input (resize 256, centre crop 224), ImageNet mean/std, 1000 outputs,
   the folder's classes mapped onto ImageNet's indices for jeans (608), running shoes (770) and backpacks (414),
3. writes `edgeopt.yaml` naming the factory `my_model:make_model`, the weights, the data set, the preprocessing
   used in training and the label map, with FP32 (torch, ONNX Runtime, OpenVINO), INT8 (ONNX Runtime and
   OpenVINO, static), pruned and distilled (MobileNetV2) recipes,
4. runs the pipeline: build (cached), verify parity, measure accuracy/latency/memory/size, report. The same
   config runs from the command line: `edgeopt run -c WORK_DIR/edgeopt.yaml`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

HERE = Path(__file__).resolve().parent
PER_CLASS = 100
FASHION = {1: "trouser", 7: "sneaker", 8: "bag"}  # Fashion-MNIST label -> folder name

# One setting per mode: the model's outputs for the folder's classes (label_map), the preprocessing it is trained
# with (edgeopt must use the same: it is written to the config), the photos' size and the training budgets.
SETTINGS = {
    "mini": {
        "kwargs": {"num_classes": 10},
        "outputs": {"trouser": 1, "sneaker": 7, "bag": 8},
        "preprocessing": {"image_channels": 3, "image_size": 64, "image_resize": 64,
                          "image_mean": [0.3, 0.25, 0.15], "image_std": [0.3, 0.25, 0.15]},
        "photo_size": (72, 80),  # width, height
        "test_per_class": 0,  # one folder, split 80/10/10
        "epochs": 12,
        "prune": {"ratio": 0.3, "finetune": {"epochs": 3, "batch_size": 32}},
        "distill": {"student": "mobilenetv2", "width": 0.5, "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3}},
    },
    "imagenet": {
        "kwargs": {"num_classes": 1000, "stages": 5},  # 224 -> 7 x 7 before the pooling
        "outputs": {"trouser": 608, "sneaker": 770, "bag": 414},  # ImageNet: jean, running shoe, backpack
        "preprocessing": {"image_channels": 3, "image_size": 224, "image_resize": 256,
                          "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
        "photo_size": (288, 320),
        "test_per_class": 100,  # train/ (a tenth of it validation) and test/: 300 test photos
        "epochs": 8,
        "prune": {"ratio": 0.3, "finetune": {"epochs": 6, "batch_size": 32, "lr": 3e-3}},
        "distill": {"student": "mobilenetv2", "width": 0.5, "train": {"epochs": 4, "batch_size": 16, "lr": 3e-3}},
    },
}


def make_image_folder(root: Path, photo_size: tuple[int, int], test_per_class: int = 0) -> Path:
    """root/CLASS/*.png (edgeopt splits it 80/10/10), or with `test_per_class` root/train/CLASS and root/test/CLASS
    (a tenth of train is validation): a larger test split makes accuracy and the parity checks less coarse."""
    from edgeopt.core.data import load_dataset

    fashion = load_dataset("fashion-mnist").test
    rng = np.random.default_rng(0)
    for label, name in FASHION.items():
        indices = np.flatnonzero(fashion.labels == label)
        splits = {"train": indices[:PER_CLASS], "test": indices[PER_CLASS:PER_CLASS + test_per_class]}
        for split, chosen in splits.items():
            folder = (root / split / name) if test_per_class else root / name
            if not len(chosen):
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(chosen):
                tint = rng.uniform(0.6, 1.0, 3) * [1.0, 0.8, 0.5]
                rgb = (fashion.inputs[index][..., None] * tint).astype(np.uint8)
                Image.fromarray(rgb).resize(photo_size, Image.BILINEAR).save(folder / f"{i:04d}.png")
    return root


def train(images: Path, weights: Path, settings: dict) -> None:
    sys.path.insert(0, str(HERE))
    from my_model import make_model

    from edgeopt.core.data import load_image_folder
    from edgeopt.core.preprocess import ImagePreprocessor

    pre = settings["preprocessing"]
    data = load_image_folder(images)  # image files, decoded by the preprocessing the model is trained with
    preprocess = ImagePreprocessor(pre["image_mean"], pre["image_std"], channels=3,
                                   size=pre["image_size"], resize=pre["image_resize"])
    x = torch.from_numpy(preprocess(data.train.inputs)["pixel_values"])
    outputs = settings["outputs"]
    y = torch.tensor([outputs[data.classes[i]] for i in data.train.labels])  # folder -> the model's output
    torch.manual_seed(0)
    model = make_model(**settings["kwargs"])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = -(-len(x) // 32)  # one-cycle: warm up, then anneal, so the last epoch's weights (and BN stats) settle
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=settings["epochs"] * batches)
    for _ in range(settings["epochs"]):
        order = torch.randperm(len(x))  # the folder is read class by class: shuffle
        for start in range(0, len(x), 32):
            batch = order[start:start + 32]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
    torch.save(model.eval().state_dict(), weights)


def write_config(work: Path, settings: dict) -> Path:
    shutil.copy2(HERE / "my_model.py", work / "my_model.py")  # the factory sits beside the config
    config = {
        "output": str(work / "edgeopt-out"),
        "devices": ["cpu-1t"],
        "batch_sizes": [1],
        "measure": {"latency": {"warmup_runs": 2, "warmup_seconds": 0.05, "min_runs": 10, "min_seconds": 0.2}},
        "models": {"my-net": {
            "module": "my_model:make_model", "kwargs": settings["kwargs"],
            "weights": "weights.pt", "dataset": "./images", **settings["preprocessing"],
            "label_map": dict(settings["outputs"]),  # folder -> the model's output
            "recipes": [
                {"name": "fp32", "runtimes": ["torch", "onnxruntime", "openvino"]},
                {"name": "int8", "quantize": {"mode": "static", "samples": 64}, "runtimes": ["onnxruntime"]},
                {"name": "int8-ov", "quantize": {"mode": "static", "samples": 64}, "runtimes": ["openvino"]},
                {"name": "pruned", "prune": settings["prune"], "runtimes": ["onnxruntime"]},
                {"name": "mbv2", "distill": settings["distill"], "runtimes": ["onnxruntime"]},
            ],
        }},
    }
    path = work / "edgeopt.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(work: Path, imagenet: bool = False):
    from edgeopt import Pipeline

    settings = SETTINGS["imagenet" if imagenet else "mini"]
    work.mkdir(parents=True, exist_ok=True)
    make_image_folder(work / "images", settings["photo_size"], settings["test_per_class"])
    start = time.perf_counter()
    train(work / "images", work / "weights.pt", settings)
    print(f"trained my_model in {time.perf_counter() - start:.0f} s")
    result = Pipeline(write_config(work, settings)).run()
    for row in result.rows:
        accuracy = f"{row.accuracy:.2%}" if row.accuracy is not None else "-"
        p95 = f"{row.latency['p95']:.2f} ms" if "p95" in row.latency else "-"
        print(f"{row.label:24} {row.precision:5} {row.status:6} accuracy {accuracy}  p95 {p95}  {row.error or ''}")
    print("report:", result.reports["html"])
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="?", type=Path, default=None,
                        help="working directory (default edgeopt-out/user-model-example[-imagenet])")
    parser.add_argument("--imagenet", action="store_true",
                        help="ImageNet-shaped: 224 x 224 (resize 256, crop 224), ImageNet mean/std, 1000 outputs")
    args = parser.parse_args()
    default = "edgeopt-out/user-model-example" + ("-imagenet" if args.imagenet else "")
    main(args.work or Path(default), imagenet=args.imagenet)
