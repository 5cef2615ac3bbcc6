"""Preprocessors turn raw samples (uint8 images, strings) into a model's named input arrays.

They are saved beside every artifact (`artifact.preprocess` + files), so an ONNX or OpenVINO artifact can
be evaluated on raw test data without the torch model that produced it.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .artifacts import Family, TensorSpec
from .errors import InvalidInput

FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
PAD, UNK = "<pad>", "<unk>"


class Preprocessor(Protocol):
    family: Family

    def __call__(self, samples: Any) -> dict[str, np.ndarray]: ...

    def to_spec(self) -> dict[str, Any]: ...

    def input_specs(self) -> list[TensorSpec]: ...


class ImagePreprocessor:
    """Raw images -> float32 `pixel_values`: resize the shorter side, centre crop, channel order, per-channel
    mean/std, layout.

    Every step is explicit and saved with the artifact, so an exported or quantized model sees exactly what
    the model was trained on. Takes uint8 arrays (N x H x W grey, or N x H x W x C) or image file paths.
    """

    family = Family.CNN

    def __init__(self, mean: float | list[float] = FASHION_MNIST_MEAN, std: float | list[float] = FASHION_MNIST_STD,
                 channels: int = 1, size: int = 28, resize: int | None = None, channel_order: str = "RGB",
                 layout: str = "NCHW"):
        if channels not in PIL_MODES:
            raise ValueError(f"channels must be one of {sorted(PIL_MODES)}, got {channels}")
        if channel_order not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
            raise ValueError(f"channel_order must be RGB or BGR and layout NCHW or NHWC, got {channel_order}, "
                             f"{layout}")
        for name, value in (("mean", mean), ("std", std)):
            if isinstance(value, list) and len(value) not in (1, channels):
                raise ValueError(f"{name} has {len(value)} values; give 1 or one per channel ({channels})")
        self.mean, self.std, self.channels, self.size = mean, std, channels, size
        self.resize, self.channel_order, self.layout = resize or size, channel_order, layout

    def __call__(self, images) -> dict[str, np.ndarray]:
        pixels = self.pixels(images).astype(np.float32) / 255.0
        if self.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1) for v in (self.mean, self.std))
        pixels = (pixels - mean) / std
        if self.layout == "NCHW":
            pixels = pixels.transpose(0, 3, 1, 2)
        # a fresh C-order copy: ascontiguousarray keeps the transposed strides of a size-1 channel axis, which
        # torch reads as channels-last (and torch.export bakes into an ExecuTorch program's dim order)
        return {"pixel_values": pixels.astype(np.float32).copy(order="C")}

    def pixels(self, images) -> np.ndarray:
        """uint8 N x size x size x channels; arrays already at the model's size and channels pass straight."""
        if isinstance(images, np.ndarray):
            arrays = images[..., None] if images.ndim == 3 else images
            if arrays.shape[1:] == (self.size, self.size, self.channels) and self.resize == self.size:
                return arrays
            decoded = (_from_array(array) for array in arrays)
        else:
            decoded = (_open_image(path) for path in images)
        fitted = [self._fit(image) for image in decoded]
        return np.stack(fitted) if fitted else np.zeros((0, self.size, self.size, self.channels), np.uint8)

    def _fit(self, image) -> np.ndarray:
        """Convert to the model's channels, scale the shorter side to `resize`, crop the centre size x size."""
        from PIL import Image

        image = image.convert(PIL_MODES[self.channels])
        scale = self.resize / min(image.size)
        if scale != 1:
            image = image.resize((max(self.size, round(image.width * scale)),
                                  max(self.size, round(image.height * scale))), Image.BILINEAR)
        left, top = (image.width - self.size) // 2, (image.height - self.size) // 2
        array = np.asarray(image.crop((left, top, left + self.size, top + self.size)), dtype=np.uint8)
        return array.reshape(self.size, self.size, self.channels)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "image", "mean": self.mean, "std": self.std, "channels": self.channels,
                "size": self.size, "resize": self.resize, "channel_order": self.channel_order,
                "layout": self.layout, "files": []}

    def input_specs(self) -> list[TensorSpec]:
        shape = (["batch", self.channels, self.size, self.size] if self.layout == "NCHW"
                 else ["batch", self.size, self.size, self.channels])
        return [TensorSpec(name="pixel_values", dtype="float32", shape=shape)]


PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _from_array(array: np.ndarray):
    """H x W x C uint8 as a PIL image (one channel as greyscale)."""
    from PIL import Image

    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _open_image(path):
    """An image file, decoded now; an unreadable file is an error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image
    except OSError as error:
        raise InvalidInput(f"{path}: not a readable image: {error}") from None


def tokenize(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text.lower())


class VocabEncoder:
    """Word-level vocabulary built from the train split; right-padded int64 ids (pad id 0, unknown id 1)."""

    family = Family.LSTM
    vocab_file = "vocab.json"

    def __init__(self, vocab: list[str], max_len: int = 64):
        self.vocab = vocab
        self.index = {word: i for i, word in enumerate(vocab)}
        self.max_len = max_len

    @classmethod
    def build(cls, texts: list[str], max_size: int = 12000, min_count: int = 2, max_len: int = 64) -> "VocabEncoder":
        counts = Counter(token for text in texts for token in tokenize(text))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls([PAD, UNK] + words[: max_size - 2], max_len)

    def __call__(self, texts: list[str], max_len: int | None = None) -> dict[str, np.ndarray]:
        limit = max_len or self.max_len
        rows = [[self.index.get(t, 1) for t in tokenize(text)][:limit] or [1] for text in texts]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return {"input_ids": ids}

    def save(self, directory: Path) -> None:
        (Path(directory) / self.vocab_file).write_text(json.dumps(self.vocab))

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> "VocabEncoder":
        return cls(json.loads((Path(directory) / spec["vocab_file"]).read_text()), spec.get("max_len", 64))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "vocab", "vocab_file": self.vocab_file, "vocab_size": len(self.vocab),
                "max_len": self.max_len, "files": [self.vocab_file]}

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name="input_ids", dtype="int64", shape=["batch", "sequence"])]


class WordPieceEncoder:
    """A Hugging Face tokenizer directory (AutoTokenizer) -> input_ids + attention_mask, padded to the batch."""

    family = Family.BERT
    tokenizer_dir = "tokenizer"

    def __init__(self, tokenizer: Any, max_len: int = 64):
        self.tokenizer, self.max_len = tokenizer, max_len

    @classmethod
    def from_pretrained(cls, directory: Path | str, max_len: int = 64) -> "WordPieceEncoder":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(directory)), max_len)

    def __call__(self, texts: list[str], max_len: int | None = None) -> dict[str, np.ndarray]:
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len or self.max_len,
                                 return_tensors="np")
        return {"input_ids": encoded["input_ids"].astype(np.int64),
                "attention_mask": encoded["attention_mask"].astype(np.int64)}

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(directory) / self.tokenizer_dir))

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> "WordPieceEncoder":
        return cls.from_pretrained(Path(directory) / spec["tokenizer_dir"], spec.get("max_len", 64))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "wordpiece", "tokenizer_dir": self.tokenizer_dir, "max_len": self.max_len,
                "files": [self.tokenizer_dir]}

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name="input_ids", dtype="int64", shape=["batch", "sequence"]),
                TensorSpec(name="attention_mask", dtype="int64", shape=["batch", "sequence"])]


def load_preprocessor(directory: Path, spec: dict[str, Any]) -> Preprocessor:
    """Rebuild the preprocessor an artifact was saved with."""
    kind = spec.get("kind")
    if kind == "image":
        return ImagePreprocessor(spec["mean"], spec["std"], spec.get("channels", 1), spec.get("size", 28),
                                 spec.get("resize"), spec.get("channel_order", "RGB"), spec.get("layout", "NCHW"))
    if kind == "vocab":
        return VocabEncoder.load(directory, spec)
    if kind == "wordpiece":
        return WordPieceEncoder.load(directory, spec)
    raise ValueError(f"{directory}: unknown preprocess kind {kind!r}; expected image, vocab or wordpiece")
