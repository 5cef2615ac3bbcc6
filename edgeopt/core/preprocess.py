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
TOKEN_PATTERN_CASED = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")
PAD, UNK = "<pad>", "<unk>"


class Preprocessor(Protocol):
    family: Family

    def __call__(self, samples: Any) -> dict[str, np.ndarray]: ...

    def to_spec(self) -> dict[str, Any]: ...

    def input_specs(self) -> list[TensorSpec]: ...


class ImagePreprocessor:
    """Raw images -> float32 `pixel_values`: resize the shorter side, centre crop, channel order, per-channel
    mean/std, layout. An imported ONNX model's own input name and float dtype replace `pixel_values`/float32.

    Every step is explicit and saved with the artifact, so an exported or quantized model sees exactly what
    the model was trained on. Takes uint8 arrays (N x H x W grey, or N x H x W x C) or image file paths.
    """

    family = Family.CNN

    def __init__(self, mean: float | list[float] = FASHION_MNIST_MEAN, std: float | list[float] = FASHION_MNIST_STD,
                 channels: int = 1, size: int = 28, resize: int | None = None, channel_order: str = "RGB",
                 layout: str = "NCHW", input_name: str = "pixel_values", dtype: str = "float32"):
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
        self.input_name, self.dtype = input_name, dtype

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
        return {self.input_name: pixels.astype(self.dtype).copy(order="C")}

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
        spec = {"kind": "image", "mean": self.mean, "std": self.std, "channels": self.channels,
                "size": self.size, "resize": self.resize, "channel_order": self.channel_order,
                "layout": self.layout, "files": []}
        named = {"input_name": self.input_name, "dtype": self.dtype}
        return spec | {k: v for k, v in named.items() if v != {"input_name": "pixel_values", "dtype": "float32"}[k]}

    def input_specs(self) -> list[TensorSpec]:
        shape = (["batch", self.channels, self.size, self.size] if self.layout == "NCHW"
                 else ["batch", self.size, self.size, self.channels])
        return [TensorSpec(name=self.input_name, dtype=self.dtype, shape=shape)]


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
    """Word-level vocabulary -> right-padded int64 ids: the zoo LSTM's vocabulary (built from the train split:
    pad id 0, unknown id 1), or a user's own vocabulary file with its pad and unknown tokens.

    Only what differs from the zoo's settings is recorded in the spec, so zoo artifacts keep their manifests.
    """

    family = Family.LSTM
    vocab_file = "vocab.json"

    def __init__(self, vocab: list[str], max_len: int = 64, pad_id: int = 0, unk_id: int = 1,
                 lowercase: bool = True, padding_side: str = "right", inputs: tuple[str, ...] = ("input_ids",)):
        self.vocab = vocab
        self.index = {word: i for i, word in enumerate(vocab)}
        self.max_len, self.pad_id, self.unk_id = max_len, pad_id, unk_id
        self.lowercase, self.padding_side, self.inputs = lowercase, padding_side, tuple(inputs)

    @classmethod
    def build(cls, texts: list[str], max_size: int = 12000, min_count: int = 2, max_len: int = 64) -> "VocabEncoder":
        counts = Counter(token for text in texts for token in tokenize(text))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls([PAD, UNK] + words[: max_size - 2], max_len)

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> "VocabEncoder":
        """A user's vocabulary: a text file with one token per line (its line number is its id) or a JSON list.
        It must hold a padding token and an unknown token (<pad>/[PAD] and <unk>/[UNK])."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(f"{path}: cannot read the vocabulary: {error}") from None
        vocab = json.loads(text) if path.suffix == ".json" else text.splitlines()
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or len(vocab) < 2:
            raise InvalidInput(f"{path}: expected a vocabulary of one token per line (or a JSON list of strings)")
        found = {}
        for role, names in (("pad", (PAD, "[PAD]", "<PAD>")), ("unk", (UNK, "[UNK]", "<UNK>"))):
            found[role] = next((vocab.index(n) for n in names if n in vocab), None)
            if found[role] is None:
                raise InvalidInput(f"{path}: no {role} token in the vocabulary; expected one of {', '.join(names)}")
        return cls(vocab, pad_id=found["pad"], unk_id=found["unk"], **options)

    def __call__(self, texts: list[str], max_len: int | None = None) -> dict[str, np.ndarray]:
        limit = max_len or self.max_len
        rows = [[self.index.get(t, self.unk_id) for t in self._tokens(text)][:limit] or [self.unk_id]
                for text in texts]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            where = slice(width - len(row), width) if self.padding_side == "left" else slice(0, len(row))
            ids[i, where], mask[i, where] = row, 1
        made = {"input_ids": ids, "attention_mask": mask}
        return {name: made[name] if name in made else np.zeros_like(ids) for name in self.inputs}  # token types

    def _tokens(self, text: str) -> list[str]:
        return tokenize(text) if self.lowercase else TOKEN_PATTERN_CASED.findall(text)

    def save(self, directory: Path) -> None:
        (Path(directory) / self.vocab_file).write_text(json.dumps(self.vocab))

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> "VocabEncoder":
        options = {k: spec[k] for k in ("pad_id", "unk_id", "lowercase", "padding_side") if k in spec}
        return cls(json.loads((Path(directory) / spec["vocab_file"]).read_text()), spec.get("max_len", 64),
                   inputs=tuple(spec.get("inputs", ("input_ids",))), **options)

    def to_spec(self) -> dict[str, Any]:
        spec = {"kind": "vocab", "vocab_file": self.vocab_file, "vocab_size": len(self.vocab),
                "max_len": self.max_len, "files": [self.vocab_file]}
        chosen = {"pad_id": self.pad_id, "unk_id": self.unk_id, "lowercase": self.lowercase,
                  "padding_side": self.padding_side, "inputs": list(self.inputs)}
        zoo = {"pad_id": 0, "unk_id": 1, "lowercase": True, "padding_side": "right", "inputs": ["input_ids"]}
        return spec | {k: v for k, v in chosen.items() if v != zoo[k]}

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name=name, dtype="int64", shape=["batch", "sequence"]) for name in self.inputs]


class WordPieceEncoder:
    """A Hugging Face tokenizer directory (AutoTokenizer) -> input_ids (+ attention_mask), padded to the batch.

    `inputs` are the names the model takes (a user's module may take input_ids alone)."""

    family = Family.BERT
    tokenizer_dir = "tokenizer"

    def __init__(self, tokenizer: Any, max_len: int = 64, inputs: tuple[str, ...] = ("input_ids", "attention_mask")):
        self.tokenizer, self.max_len, self.inputs = tokenizer, max_len, tuple(inputs)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    @classmethod
    def from_pretrained(cls, directory: Path | str, max_len: int = 64,
                        inputs: tuple[str, ...] = ("input_ids", "attention_mask")) -> "WordPieceEncoder":
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(directory)), max_len, inputs)
        except (OSError, ValueError) as error:
            raise InvalidInput(f"{directory}: not a Hugging Face tokenizer directory: {error}") from None

    def __call__(self, texts: list[str], max_len: int | None = None) -> dict[str, np.ndarray]:
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len or self.max_len,
                                 return_tensors="np")
        ids = encoded["input_ids"]
        return {name: encoded[name].astype(np.int64) if name in encoded else np.zeros_like(ids, dtype=np.int64)
                for name in self.inputs}

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(directory) / self.tokenizer_dir))

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> "WordPieceEncoder":
        return cls.from_pretrained(Path(directory) / spec["tokenizer_dir"], spec.get("max_len", 64),
                                   tuple(spec.get("inputs", ("input_ids", "attention_mask"))))

    def to_spec(self) -> dict[str, Any]:
        spec = {"kind": "wordpiece", "tokenizer_dir": self.tokenizer_dir, "max_len": self.max_len,
                "files": [self.tokenizer_dir]}
        return spec if self.inputs == ("input_ids", "attention_mask") else spec | {"inputs": list(self.inputs)}

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(name=name, dtype="int64", shape=["batch", "sequence"]) for name in self.inputs]


def load_preprocessor(directory: Path, spec: dict[str, Any]) -> Preprocessor:
    """Rebuild the preprocessor an artifact was saved with."""
    kind = spec.get("kind")
    if kind == "image":
        return ImagePreprocessor(spec["mean"], spec["std"], spec.get("channels", 1), spec.get("size", 28),
                                 spec.get("resize"), spec.get("channel_order", "RGB"), spec.get("layout", "NCHW"),
                                 spec.get("input_name", "pixel_values"), spec.get("dtype", "float32"))
    if kind == "vocab":
        return VocabEncoder.load(directory, spec)
    if kind == "wordpiece":
        return WordPieceEncoder.load(directory, spec)
    raise ValueError(f"{directory}: unknown preprocess kind {kind!r}; expected image, vocab or wordpiece")
