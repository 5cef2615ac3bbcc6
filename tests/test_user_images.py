"""Your own image model: RGB at any size with explicit preprocessing and a label map, and what broke when an
ImageNet-style model (RGB, 1000 outputs) was brought: its output layer pruned, distillation crashing on the
output width, MACs missing Conv2d subclasses, and empty splits on small data sets."""
from __future__ import annotations

import gzip
import json
import struct
import textwrap

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from edgeopt.core.artifacts import Artifact
from edgeopt.core.data import ImageFiles, load_dataset, load_idx_dir, load_image_folder
from edgeopt.core.errors import InvalidInput
from edgeopt.core.preprocess import ImagePreprocessor, load_preprocessor

# A small ImageNet-style net: a same-padding Conv2d subclass (like timm's Conv2dSame), BatchNorm, a residual
# block, global pooling and a linear head with more outputs (10) than the user's folder has classes (3).
MODEL_CODE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class SameConv2d(nn.Conv2d):
        def forward(self, x):
            pad_h = max((-(-x.shape[-2] // self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - x.shape[-2], 0)
            pad_w = max((-(-x.shape[-1] // self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - x.shape[-1], 0)
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


    class Net(nn.Module):
        def __init__(self, num_classes=10, width=16):
            super().__init__()
            self.stem = nn.Sequential(SameConv2d(3, width, 3, stride=2, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.block = nn.Sequential(SameConv2d(width, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                       SameConv2d(width, width, 3, bias=False), nn.BatchNorm2d(width))
            self.down = nn.Sequential(SameConv2d(width, 2 * width, 3, stride=2), nn.ReLU())
            self.head = nn.Linear(2 * width, num_classes)

        def forward(self, pixel_values):
            x = self.stem(pixel_values)
            x = torch.relu(x + self.block(x))
            return self.head(self.down(x).mean((2, 3)))


    def make_model(num_classes=10, width=16):
        return Net(num_classes, width)
''')
CLASSES = {"trouser": 1, "sneaker": 7, "bag": 8}  # folder name -> Fashion-MNIST index = the model's output
SIZE, RESIZE = 32, 36


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory, fashion):
    """Real Fashion-MNIST photos as tinted RGB PNGs of 48 x 40 (not square, not the model's size)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("rgb") / "images"
    rng = np.random.default_rng(0)
    for name, label in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(fashion.train.labels == label)[:40]):
            tint = rng.uniform(0.6, 1.0, 3) * [1.0, 0.8, 0.5]  # red strongest, blue weakest
            rgb = (fashion.train.inputs[index][..., None] * tint).astype(np.uint8)
            Image.fromarray(rgb).resize((40, 48)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def factory_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("factory")
    (directory / "rgb_net.py").write_text(MODEL_CODE)
    return directory


def model_config(folder, factory_dir, weights=None, **fields) -> dict:
    return {"module": "rgb_net:make_model", "python_path": str(factory_dir), "dataset": str(folder),
            "weights": str(weights) if weights else None, "image_size": SIZE, "image_resize": RESIZE,
            "label_map": CLASSES, **fields}


@pytest.fixture(scope="module")
def teacher_weights(rgb_folder, factory_dir, tmp_path_factory):
    """The net trained for a few epochs on the folder, its labels mapped to outputs 1, 7 and 8."""
    import sys

    from edgeopt.core.data import apply_label_map
    from edgeopt.core.train import TrainConfig, fit

    sys.path.insert(0, str(factory_dir))
    try:
        from rgb_net import make_model
    finally:
        sys.path.remove(str(factory_dir))
    data = apply_label_map(load_image_folder(rgb_folder), CLASSES)
    preprocessor = ImagePreprocessor([0.3, 0.3, 0.3], [0.3, 0.3, 0.3], channels=3, size=SIZE, resize=RESIZE)
    torch.manual_seed(0)
    model = make_model()
    fit(model, preprocessor, data.train, data.val, TrainConfig(epochs=6, batch_size=16, lr=3e-3))
    path = tmp_path_factory.mktemp("weights") / "weights.pt"
    torch.save(model.eval().state_dict(), path)
    return path


def build_source(tmp_path, name="rgb", **fields) -> Artifact:
    from edgeopt.config import ModelConfig
    from edgeopt.pipeline import build_node, source_node

    node = source_node(name, ModelConfig.model_validate({k: v for k, v in fields.items() if v is not None}))
    return Artifact.load(build_node(node, None, tmp_path / "cache").path, trust_code=True)


@pytest.fixture(scope="module")
def teacher(rgb_folder, factory_dir, teacher_weights, tmp_path_factory):
    return build_source(tmp_path_factory.mktemp("teacher"),
                        **model_config(rgb_folder, factory_dir, teacher_weights, image_mean=[0.3, 0.3, 0.3],
                                       image_std=[0.3, 0.3, 0.3]))


# --- MACs: one counter, every convolution and attention -----------------------------------------------------

def test_macs_count_conv_subclasses_attention_and_lstm(factory_dir):
    from edgeopt.core.models.zoo import count_macs_params

    namespace: dict = {}
    exec(MODEL_CODE, namespace)  # noqa: S102 - the test's own model code
    net = namespace["make_model"](num_classes=10, width=16)
    macs, params = count_macs_params(net, {"pixel_values": np.zeros((2, 3, 32, 32), np.float32)})
    expected = (16 * 16 * 3 * 9 * 16     # stem: 16 x 16 outputs, 3 in, 3x3, 16 out (a Conv2d subclass)
                + 2 * 16 * 16 * 16 * 9 * 16  # two same-padding 3x3 convs in the block
                + 8 * 8 * 16 * 9 * 32    # downsampling conv to 8 x 8
                + 32 * 10)               # head
    assert macs == expected
    assert params == sum(p.numel() for p in net.parameters())

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
            self.lstm = nn.LSTM(16, 8, batch_first=True)

        def forward(self, x):
            return self.lstm(self.attention(x, x, x)[0])[0]

    macs, _ = count_macs_params(Attention(), {"x": np.zeros((1, 5, 16), np.float32)})
    projections, scores = 4 * 5 * 16 * 16, 2 * 5 * 5 * 16  # q, k, v, out; QK^T and AV
    assert macs == projections + scores + 4 * 8 * (16 + 8) * 5


def test_fidelity_counts_macs_with_the_project_counter(teacher, tmp_path):
    from edgeopt.benchmarks.fidelity import macs_at
    from edgeopt.benchmarks.sweep import Lineage
    from edgeopt.core.data import dataset_of
    from edgeopt.core.models.zoo import preprocessor_of

    batch = preprocessor_of(teacher)(dataset_of(teacher).test.inputs[:4])
    np.savez(tmp_path / "inputs.npz", **{f"lat/{name}": value for name, value in batch.items()})
    assert macs_at(teacher, Lineage.around([teacher]), tmp_path / "inputs.npz") == teacher.metrics["macs"]


# --- splits: fractions with a floor, never empty --------------------------------------------------------------

def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape))
        handle.write(array.tobytes())


def write_idx_dir(root, fashion, train: int, test: int):
    root.mkdir()
    for prefix, split, count in (("train", fashion.train, train), ("t10k", fashion.test, test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", split.inputs[:count])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", split.labels[:count])
    return root


def test_small_idx_set_keeps_a_train_split(tmp_path, fashion):
    data = load_dataset(write_idx_dir(tmp_path / "small", fashion, train=4000, test=100))
    assert (len(data.train), len(data.val), len(data.test)) == (3667, 333, 100)  # 1/12 held out, not 5,000
    tiny = load_idx_dir(write_idx_dir(tmp_path / "tiny", fashion, train=5, test=3), name="tiny")
    assert (len(tiny.train), len(tiny.val)) == (4, 1)  # the floor: one validation sample
    with pytest.raises(InvalidInput, match="1 samples are too few to split"):
        load_idx_dir(write_idx_dir(tmp_path / "one", fashion, train=1, test=3))


def test_tiny_image_folder_is_an_error_not_an_empty_split(tmp_path, rgb_folder):
    import shutil

    for name in ("bag", "trouser"):
        (tmp_path / name).mkdir()
        shutil.copy(next((rgb_folder / name).iterdir()), tmp_path / name / "a.png")
    with pytest.raises(InvalidInput, match="2 samples are too few"):
        load_image_folder(tmp_path)


# --- images: explicit preprocessing, read lazily at the model's size ----------------------------------------

def test_image_preprocessing_is_explicit_and_travels(tmp_path):
    from PIL import Image

    image = np.zeros((48, 40, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 50
    image[:4] = 255  # a top border the centre crop removes
    Image.fromarray(image).save(tmp_path / "a.png")
    rgb = ImagePreprocessor([0.5, 0.4, 0.2], [0.5, 0.25, 0.1], channels=3, size=SIZE, resize=RESIZE)
    pixels = rgb([tmp_path / "a.png"])["pixel_values"]
    assert pixels.shape == (1, 3, SIZE, SIZE)
    expected = (np.array([200, 100, 50]) / 255 - [0.5, 0.4, 0.2]) / [0.5, 0.25, 0.1]
    assert np.allclose(pixels[0].mean((1, 2)), expected, atol=1e-4)
    bgr = ImagePreprocessor(0.0, 1.0, channels=3, size=SIZE, channel_order="BGR", layout="NHWC")
    assert np.allclose(bgr([tmp_path / "a.png"])["pixel_values"][0, SIZE // 2, SIZE // 2], [50 / 255, 100 / 255, 200 / 255])
    assert bgr.input_specs()[0].shape == ["batch", SIZE, SIZE, 3]
    again = load_preprocessor(tmp_path, rgb.to_spec())
    assert np.array_equal(again([tmp_path / "a.png"])["pixel_values"], pixels)
    with pytest.raises(ValueError, match="mean has 2 values"):
        ImagePreprocessor([0.5, 0.5], 1.0, channels=3)


def test_image_folder_is_read_lazily(rgb_folder):
    data = load_image_folder(rgb_folder)
    assert isinstance(data.train.inputs, ImageFiles) and data.classes == sorted(CLASSES)
    assert (len(data.train), len(data.val), len(data.test)) == (96, 12, 12)
    subset = data.test.subset(5)
    assert isinstance(subset.inputs, ImageFiles) and len(subset.inputs) == 5
    assert data.test.sha256 == load_image_folder(rgb_folder).test.sha256


def test_unreadable_image_is_named(tmp_path, rgb_folder):
    import shutil

    shutil.copytree(rgb_folder, tmp_path / "images")
    (tmp_path / "images" / "bag" / "000.png").write_bytes(b"not a png")
    data = load_image_folder(tmp_path / "images")
    with pytest.raises(InvalidInput, match=r"bag/000.png: not a readable image"):
        ImagePreprocessor(channels=3, size=SIZE)([tmp_path / "images" / "bag" / "000.png"])
    assert len(data.train) + len(data.val) + len(data.test) == 120  # listed, decoded only when used


def test_label_map_must_name_every_class(rgb_folder, factory_dir, tmp_path):
    with pytest.raises(InvalidInput, match=r"models.rgb.label_map: must name every class.*missing \['trouser'\]"):
        build_source(tmp_path, **model_config(rgb_folder, factory_dir, label_map={"bag": 8, "sneaker": 7}))


def test_source_records_preprocessing_outputs_and_the_map(teacher):
    assert teacher.preprocess["channels"] == 3 and teacher.preprocess["size"] == SIZE
    assert teacher.preprocess["resize"] == RESIZE and teacher.preprocess["mean"] == [0.3, 0.3, 0.3]
    assert teacher.inputs[0].shape == ["batch", 3, SIZE, SIZE]
    assert teacher.outputs[0].shape == ["batch", 10]  # the model's width, not the 3 classes
    assert teacher.dataset["label_map"] == CLASSES
    assert [teacher.labels[i] for i in CLASSES.values()] == list(CLASSES)
    assert teacher.metrics["macs"] > 0


def test_accuracy_goes_through_the_label_map(teacher):
    from edgeopt.core.models.zoo import evaluate_artifact

    assert evaluate_artifact(teacher)["accuracy"] > 0.6  # chance is 1/3 on 3 classes, 1/10 over all outputs


def test_measured_default_normalisation_is_per_channel(rgb_folder, factory_dir, tmp_path):
    source = build_source(tmp_path, **model_config(rgb_folder, factory_dir))
    mean, std = source.preprocess["mean"], source.preprocess["std"]
    assert len(mean) == 3 and len(std) == 3 and mean[0] > mean[1] > mean[2]  # the tints differ per channel
    assert all(0 < m < 1 for m in mean) and all(0 < s < 1 for s in std)


def test_an_onnx_model_that_takes_nhwc(rgb_folder, tmp_path):
    import onnxruntime as ort

    from edgeopt.core.data import dataset_of
    from edgeopt.core.models.zoo import preprocessor_of

    class ChannelsLast(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.head = nn.Linear(4, 10)

        def forward(self, pixel_values):  # batch x height x width x channels, like a TF-converted model
            return self.head(self.conv(pixel_values.permute(0, 3, 1, 2)).mean((2, 3)))

    path = tmp_path / "nhwc.onnx"
    torch.onnx.export(ChannelsLast().eval(), (torch.zeros(1, SIZE, SIZE, 3),), str(path),
                      input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}}, dynamo=False)
    fields = {"onnx": str(path), "dataset": str(rgb_folder), "image_size": SIZE, "label_map": CLASSES,
              "recipes": [{"name": "fp32", "runtimes": ["onnxruntime"]}]}
    source = build_source(tmp_path, **fields, layout="NHWC")
    assert source.inputs[0].shape == ["batch", SIZE, SIZE, 3] and source.outputs[0].shape[-1] == 10
    inputs = preprocessor_of(source)(dataset_of(source).test.inputs[:2])
    assert ort.InferenceSession(str(source.model_path)).run(None, inputs)[0].shape == (2, 10)
    with pytest.raises(InvalidInput, match=r"'pixel_values' is \['batch', 32, 32, 3\] in the graph.*layout NCHW"):
        build_source(tmp_path / "nchw", **fields)


def test_an_onnx_model_with_its_own_input_name_and_dtype(rgb_folder, tmp_path):
    """An ONNX image model whose one input is `images` in float16 (a converted model, say): edgeopt feeds it
    under that name and dtype, and its INT8 and OpenVINO variants keep them, with parity."""
    from edgeopt import Pipeline

    class Half(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2)
            self.head = nn.Linear(8, 10)

        def forward(self, images):
            return self.head(torch.relu(self.conv(images.float())).mean((2, 3)))

    torch.manual_seed(0)
    path = tmp_path / "half.onnx"
    torch.onnx.export(Half().eval(), (torch.zeros(1, 3, SIZE, SIZE, dtype=torch.float16),), str(path),
                      input_names=["images"], output_names=["scores"], dynamic_axes={"images": {0: "batch"}},
                      dynamo=False)
    config = {"output": str(tmp_path / "out"),
              "measure": {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}},
              "models": {"half": {"onnx": str(path), "dataset": str(rgb_folder), "image_size": SIZE,
                                  "image_channels": 3, "label_map": CLASSES, "recipes": [
                                      {"name": "fp32", "runtimes": ["onnxruntime", "openvino"]},
                                      {"name": "int8", "quantize": {"mode": "dynamic"},
                                       "runtimes": ["onnxruntime"]}]}}}
    result = Pipeline(config).run(report=False)
    assert result.exit_code == 0, [r.error for r in result.rows]
    assert {(r.recipe, r.runtime) for r in result.rows} == {("fp32", "onnxruntime"), ("fp32", "openvino"),
                                                           ("int8", "onnxruntime")}
    for row in result.rows:
        artifact = Artifact.load(row.artifact_path)
        assert [(t.name, t.dtype) for t in artifact.inputs] == [("images", "float16")], row.label
    source = Artifact.load(next(r.artifact_path for r in result.rows if r.runtime == "onnxruntime"
                                and r.recipe == "fp32"))
    assert source.preprocess["input_name"] == "images" and source.preprocess["dtype"] == "float16"
    assert len({round(r.accuracy, 6) for r in result.rows if r.recipe == "fp32"}) == 1  # one model, both runtimes


# --- what broke ------------------------------------------------------------------------------------------------

def test_pruning_never_prunes_the_output_layer(teacher, tmp_path):
    from edgeopt.core.models.zoo import load_module
    from edgeopt.optimize.prune import PruneConfig, prune

    child = prune(teacher, PruneConfig(ratio=0.5, eval_samples=12), tmp_path / "pruned")
    model = load_module(Artifact.load(child.path, trust_code=True))
    assert model.head.out_features == 10  # a 10-way head on 3-class data stays 10 wide
    assert model.stem[0].out_channels < 16  # the rest was pruned
    assert child.outputs[0].shape == ["batch", 10]
    assert child.metrics["macs"] < teacher.metrics["macs"]
    assert child.dataset["label_map"] == CLASSES  # so its exports are measured through the map too


def test_distilled_student_takes_the_teachers_outputs_and_channels(teacher, tmp_path):
    from edgeopt.core.models.zoo import load_module
    from edgeopt.core.train import TrainConfig
    from edgeopt.optimize.distill import DistillConfig, distill

    config = DistillConfig(student="mobilenetv2", width=0.25, train=TrainConfig(epochs=2, batch_size=16, lr=3e-3))
    child = distill(teacher, config, tmp_path / "student")
    assert (child.arch["num_classes"], child.arch["in_channels"], child.arch["image_size"]) == (10, 3, SIZE)
    student = load_module(child)
    logits = student(pixel_values=torch.zeros(1, 3, SIZE, SIZE))
    assert logits.shape == (1, 10)
    summary = child.metrics["distill"]
    assert {"baseline_test_accuracy", "distillation_gain", "teacher_test_accuracy"} <= set(summary)
    assert summary["teacher_test_accuracy"] > 0.6


def test_imagenet_shaped_model_keeps_its_1000_outputs(rgb_folder, factory_dir, tmp_path):
    """RGB, resize 256, crop 224, 1000 outputs, three of them named by the label map: the case that broke."""
    from edgeopt.core.models.zoo import load_module
    from edgeopt.optimize.prune import PruneConfig, prune

    source = build_source(tmp_path, **model_config(
        rgb_folder, factory_dir, kwargs={"num_classes": 1000, "width": 8}, image_size=224, image_resize=256,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        label_map={"trouser": 414, "sneaker": 770, "bag": 636}))
    assert source.inputs[0].shape == ["batch", 3, 224, 224] and source.outputs[0].shape == ["batch", 1000]
    assert len(source.labels) == 771 and source.labels[636] == "bag" and source.labels[0] == "output 0"
    # every same-padding conv at 224 x 224 counted: stem to 112, two block convs, down to 56, the head
    assert source.metrics["macs"] == 112**2 * 3 * 9 * 8 + 2 * 112**2 * 8 * 9 * 8 + 56**2 * 8 * 9 * 16 + 16 * 1000
    child = prune(source, PruneConfig(ratio=0.5, eval_samples=12), tmp_path / "pruned")
    assert load_module(Artifact.load(child.path, trust_code=True)).head.out_features == 1000
    assert child.outputs[0].shape == ["batch", 1000]


@pytest.mark.parametrize("builder", ["mobilenetv2", "squeezenet"])
def test_students_take_imagenet_inputs(builder):
    """RGB 224 x 224 with 1000 outputs: the blocks work on feature maps as small as at 28 x 28 (7 x 7 at the end)."""
    from edgeopt.core.models import build_module

    student = build_module({"builder": builder, "num_classes": 1000, "in_channels": 3, "image_size": 224}).eval()
    with torch.no_grad():
        assert student.features(torch.zeros(1, 3, 224, 224)).shape[-1] == 7
        assert student(pixel_values=torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_distillation_names_a_teacher_narrower_than_its_labels(rgb_folder, factory_dir, tmp_path):
    from edgeopt.optimize.distill import DistillConfig, distill

    narrow = build_source(tmp_path, **model_config(rgb_folder, factory_dir, label_map=None, kwargs={"num_classes": 2}))
    with pytest.raises(InvalidInput, match="the teacher has 2 outputs but its data has label 2; .*label_map"):
        distill(narrow, DistillConfig(), tmp_path / "student")


# --- end to end ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_rgb_model_through_prune_export_quantize_measure(rgb_folder, factory_dir, teacher_weights, tmp_path):
    from edgeopt import Pipeline

    (tmp_path / "rgb_net.py").write_text(MODEL_CODE)
    model = model_config(rgb_folder, factory_dir, teacher_weights, image_mean=[0.3, 0.3, 0.3],
                         image_std=[0.3, 0.3, 0.3])
    model.update(python_path=None, recipes=[
        {"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
        {"name": "int8", "quantize": {"mode": "static", "samples": 32}, "runtimes": ["onnxruntime"]},
        {"name": "pruned", "prune": {"ratio": 0.3, "finetune": {"epochs": 4, "batch_size": 16, "lr": 2e-3}},
         "runtimes": ["onnxruntime"]},
    ])
    config = {"output": str(tmp_path / "out"), "devices": ["cpu-1t"], "batch_sizes": [1],
              "measure": {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}},
              "models": {"rgb": {k: v for k, v in model.items() if v is not None}}}
    path = tmp_path / "edgeopt.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = Pipeline(path).run()
    rows = {(row.label, row.runtime): row for row in result.rows}
    assert all(row.status == "ok" for row in rows.values()), [row.error for row in rows.values()]
    assert len(rows) == 4
    accuracies = {key: row.accuracy for key, row in rows.items()}
    assert all(accuracy > 0.6 for accuracy in accuracies.values()), accuracies  # own runtime, through the map


def test_images_without_labels_are_measured_as_agreement(rgb_folder, factory_dir, teacher_weights, tmp_path):
    """A folder of images with no class folders: the source model's own top-1 is the reference, so the source
    agrees 100% with itself, its INT8 and pruned variants report agreement (never accuracy), and the report,
    results and recommend's --min-agreement say so."""
    import shutil

    from typer.testing import CliRunner

    from edgeopt import Pipeline
    from edgeopt.cli import app

    loose = tmp_path / "unlabelled"
    loose.mkdir()
    for i, image in enumerate(sorted(rgb_folder.rglob("*.png"))):
        shutil.copy(image, loose / f"{i:04d}.png")
    model = model_config(loose, factory_dir, teacher_weights, image_mean=[0.3, 0.3, 0.3], image_std=[0.3, 0.3, 0.3],
                         label_map=None)
    model["recipes"] = [{"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
                        {"name": "int8", "quantize": {"mode": "static", "samples": 32}, "runtimes": ["onnxruntime"]},
                        {"name": "pruned", "prune": {"ratio": 0.5}, "runtimes": ["onnxruntime"]}]
    config = {"output": str(tmp_path / "out"),
              "measure": {"latency": {"warmup_runs": 1, "warmup_seconds": 0.01, "min_runs": 5, "min_seconds": 0.05}},
              "models": {"rgb": {k: v for k, v in model.items() if v is not None}}}
    result = Pipeline(config).run()
    assert result.exit_code == 0, [r.error for r in result.rows]
    rows = {(r.recipe, r.runtime): r for r in result.rows}
    assert all(r.agreement for r in rows.values())
    assert rows[("fp32", "torch")].accuracy == rows[("fp32", "onnxruntime")].accuracy == 1.0
    assert 0.5 < rows[("int8", "onnxruntime")].accuracy <= 1.0 and rows[("pruned", "onnxruntime")].accuracy < 1.0
    source = Artifact.load(rows[("fp32", "onnxruntime")].artifact_path)
    assert len(source.labels) == 10 and source.labels[0] == "output 0"  # the model's outputs, not invented classes
    assert len(source.dataset["reference_labels"]["test"]) == source.dataset["splits"]["test"]["size"]
    for report in (result.reports["md"], result.reports["html"]):
        text = report.read_text()
        assert "Without labels: agreement, not accuracy" in text and "agreement 100.00%" in text
    out = CliRunner().invoke(app, ["recommend", "--device", "cpu-1t", "--max-latency-ms", "1000",
                                   "--min-agreement", "0.999", "--results", str(tmp_path / "out"), "--json"])
    picks = json.loads(out.stdout)["picks"]
    assert out.exit_code == 0 and picks and all(p["row"]["accuracy"] >= 0.999 and p["row"]["agreement"]
                                                for p in picks), out.stdout
