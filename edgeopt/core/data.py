"""Real data, offline: Fashion-MNIST images and Rotten Tomatoes sentiment snippets, or the user's own.

Every data set comes as seeded train / validation / test splits; each split carries a sha256 of its
contents so a measurement can be traced to the exact data it used.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from .errors import DataUnavailable, InvalidInput
from .paths import BUNDLED_DATA_DIR

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SENTIMENT_FILE = BUNDLED_DATA_DIR / "rotten_tomatoes_corpus_full.csv.bz2"
SENTIMENT_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
SENTIMENT_CLASSES = ["rotten", "fresh"]
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


class ImageFiles:
    """The image files of a split, decoded only when a batch needs them, at the model's size and channels (by
    its ImagePreprocessor): a folder of 224 x 224 photos is never held in memory whole."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        return iter(self.paths)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.paths[index]
        if isinstance(index, slice):
            return ImageFiles(self.paths[index])
        return ImageFiles([self.paths[i] for i in np.asarray(index, dtype=np.int64)])

    def update(self, digest) -> None:
        """Hash the files' contents (not their names), so a moved folder is the same data."""
        for path in self.paths:
            digest.update(hashlib.sha256(path.read_bytes()).digest())


@dataclass(frozen=True)
class Split:
    """One split: inputs (uint8 images N x H x W, image files, or a list of strings) and integer labels."""

    name: str
    inputs: np.ndarray | ImageFiles | list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        if isinstance(self.inputs, np.ndarray):
            digest.update(np.ascontiguousarray(self.inputs).tobytes())
        elif isinstance(self.inputs, ImageFiles):
            self.inputs.update(digest)
        else:
            for text in self.inputs:
                digest.update(text.encode("utf-8") + b"\0")
        digest.update(np.asarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def subset(self, count: int | None, seed: int = 0) -> "Split":
        """A seeded random subset (the whole split when count is None or larger)."""
        if count is None or count >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        inputs = [self.inputs[i] for i in index] if isinstance(self.inputs, list) else self.inputs[index]
        return Split(f"{self.name}[{count}@{seed}]", inputs, self.labels[index])


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "image" or "text"
    classes: list[str]
    train: Split
    val: Split
    test: Split
    source: str = ""
    extra: dict = field(default_factory=dict)
    label_map: dict[str, int] | None = None  # class name -> model output index (see apply_label_map)
    labelled: bool = True  # False: inputs only; the source model's own predictions label it (see with_reference)
    reference_labels: dict[str, list[int]] | None = None  # split -> the source model's top-1, once labelled so

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise InvalidInput(f"unknown split {name!r}; expected one of train, val, test")
        return getattr(self, name)

    def describe(self) -> dict:
        """What an artifact records about its data, enough for `dataset_of` to load and map it again."""
        return {
            "name": self.name, "kind": self.kind, "source": self.source, "classes": self.classes,
            "splits": {s.name: {"size": len(s), "sha256": s.sha256} for s in (self.train, self.val, self.test)},
            **({"label_map": self.label_map} if self.label_map else {}),
            **({"reference_labels": self.reference_labels} if self.reference_labels else {}),
        }


def with_reference(data: Dataset, labels: dict[str, np.ndarray], outputs: int, where: str) -> Dataset:
    """An unlabelled data set labelled with its source model's top-1 prediction per input: every accuracy
    measured on it is top-1 agreement with that model (and is reported as agreement, never as accuracy)."""
    for split in (data.train, data.val, data.test):
        if len(labels.get(split.name, ())) != len(split):
            raise InvalidInput(f"{where}: {len(labels.get(split.name, ()))} reference labels for the {split.name} "
                               f"split of {data.source}, which has {len(split)} inputs (the data set changed)")
    relabel = lambda s: Split(s.name, s.inputs, np.asarray(labels[s.name], dtype=np.int64))  # noqa: E731
    return Dataset(name=data.name, kind=data.kind, classes=[f"output {i}" for i in range(outputs)],
                   source=data.source, train=relabel(data.train), val=relabel(data.val), test=relabel(data.test),
                   extra=data.extra, labelled=False,
                   reference_labels={k: [int(v) for v in values] for k, values in labels.items()})


def split_sizes(count: int, fractions: tuple[float, ...], where: str) -> list[int]:
    """Held-out split sizes: a fraction of `count` each, at least one sample, leaving a non-empty train split.

    Fixed sizes broke small data sets (5,000 validation images out of 4,000 left training empty, so calibration
    and fine-tuning ran on nothing); an empty split is an error naming the data set.
    """
    sizes = [max(1, int(round(count * fraction))) for fraction in fractions]
    if count - sum(sizes) < 1:
        raise InvalidInput(f"{where}: {count} samples are too few to split into train plus "
                           f"{' + '.join(map(str, sizes))} held out (fractions {fractions}); add samples")
    return sizes


def _seeded_split(count: int, fractions: tuple[float, float], seed: int,
                  where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    n_val, n_test = split_sizes(count, fractions, where)
    return np.sort(order[n_val + n_test:]), np.sort(order[:n_val]), np.sort(order[n_val:n_val + n_test])


# ---------------------------------------------------------------- images

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a numpy array; errors name the file and what was wrong."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise InvalidInput(f"{path}: cannot read IDX file: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise InvalidInput(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != expected:
        raise InvalidInput(f"{path}: truncated IDX file: header says {dims} ({expected} bytes), found {body.size}")
    return body.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.exists():
            return candidate
    return None


def load_idx_dir(root: Path | str | None = None, name: str = "fashion-mnist",
                 val_fraction: float = 1 / 12, seed: int = 0, classes: list[str] | None = None) -> Dataset:
    """MNIST-style IDX files: the official train file is split seeded into train/val (`val_fraction` of it,
    5,000 of Fashion-MNIST's 60,000); the test file is test."""
    root = Path(root) if root is not None else FASHION_MNIST_DIR
    files = {key: _find_idx(root, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, v in files.items() if v is None]
    if missing:
        hint = (" Install the Debian package: `apt-get install dataset-fashion-mnist`."
                if root == FASHION_MNIST_DIR else "")
        raise DataUnavailable(f"{root}: missing IDX file(s) {', '.join(missing)} (.gz or plain).{hint}")
    train_x, train_y = read_idx(files["train_images"]), read_idx(files["train_labels"]).astype(np.int64)
    test_x, test_y = read_idx(files["test_images"]), read_idx(files["test_labels"]).astype(np.int64)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise InvalidInput(f"{root}: image and label counts differ ({len(train_x)}/{len(train_y)} train, "
                           f"{len(test_x)}/{len(test_y)} test)")
    if len(test_x) == 0:
        raise InvalidInput(f"{root}: the test IDX files hold no samples")
    order = np.random.default_rng(seed).permutation(len(train_x))
    (val_size,) = split_sizes(len(train_x), (val_fraction,), str(root))
    val_index, train_index = np.sort(order[:val_size]), np.sort(order[val_size:])
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    classes = classes or (FASHION_MNIST_CLASSES if n_classes == 10 and name == "fashion-mnist"
                          else [str(i) for i in range(n_classes)])
    return Dataset(name=name, kind="image", classes=classes, source=str(root),
                   train=Split("train", train_x[train_index], train_y[train_index]),
                   val=Split("val", train_x[val_index], train_y[val_index]),
                   test=Split("test", test_x, test_y))


def load_image_folder(root: Path | str, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)) -> Dataset:
    """ImageFolder layout (root/CLASS/*.png, any size and channels), read lazily as image files.

    With root/train and root/test subfolders those are used as given; otherwise splits are seeded. The
    model's preprocessing (resize, crop, channels, normalisation) decodes them batch by batch.
    """
    root = Path(root)

    def read_tree(base: Path, classes: list[str]) -> tuple[ImageFiles, np.ndarray]:
        files = [(file, label) for label, cls in enumerate(classes) if (base / cls).is_dir()
                 for file in sorted((base / cls).iterdir()) if file.suffix.lower() in IMAGE_SUFFIXES]
        return ImageFiles([f for f, _ in files]), np.asarray([label for _, label in files], np.int64)

    if not root.is_dir():
        raise InvalidInput(f"{root}: not a directory (expected an ImageFolder layout root/CLASS/image.png)")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    class_root = root / "train" if has_splits else root
    classes = sorted(p.name for p in class_root.iterdir() if p.is_dir())
    loose = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not classes and loose:  # images without labels: the source model's predictions will be the reference
        x = ImageFiles(loose)
        index = _seeded_split(len(x), fractions, seed, str(root))
        return _unlabelled(root.name, "image", str(root), [x[i] for i in index])
    if not classes:
        raise InvalidInput(f"{root}: no class folders found (expected root/CLASS/image.png, or images directly "
                           "in it for a data set without labels)")
    if has_splits:
        x, y = read_tree(root / "train", classes)
        test_x, test_y = read_tree(root / "test", classes)
        order = np.random.default_rng(seed).permutation(len(x))
        (n_val,) = split_sizes(len(x), fractions[:1], str(root / "train"))
        if not len(test_x):
            raise InvalidInput(f"{root / 'test'}: no images in the class folders {classes}")
        val_i, train_i = np.sort(order[:n_val]), np.sort(order[n_val:])
        splits = (Split("train", x[train_i], y[train_i]), Split("val", x[val_i], y[val_i]),
                  Split("test", test_x, test_y))
    else:
        x, y = read_tree(root, classes)
        train_i, val_i, test_i = _seeded_split(len(x), fractions, seed, str(root))
        splits = tuple(Split(n, x[i], y[i]) for n, i in (("train", train_i), ("val", val_i), ("test", test_i)))
    return Dataset(name=root.name, kind="image", classes=classes, source=str(root),
                   train=splits[0], val=splits[1], test=splits[2])


def image_shape(split: Split) -> tuple[int, int]:
    """(channels, size) of a split's images as stored: an IDX array's, or its first file's (shorter side)."""
    if isinstance(split.inputs, np.ndarray):
        return (1 if split.inputs.ndim == 3 else split.inputs.shape[-1]), int(min(split.inputs.shape[1:3]))
    from PIL import Image

    try:
        with Image.open(split.inputs[0]) as image:
            mode, size = image.mode, min(image.size)
    except OSError as error:
        raise InvalidInput(f"{split.inputs[0]}: not a readable image: {error}") from None
    return (1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 4 if mode == "RGBA" else 3), size


def apply_label_map(data: Dataset, label_map: dict[str, int], where: str = "label_map") -> Dataset:
    """The data labelled by the model's output indices (class name -> output index), for a model whose label
    space differs from the data's classes (an ImageNet model on a folder of some ImageNet classes): accuracy
    then compares the model's top output with the mapped index. Unnamed outputs are called "output N"."""
    missing = [c for c in data.classes if c not in label_map]
    unknown = [c for c in label_map if c not in data.classes]
    if missing or unknown:
        raise InvalidInput(f"{where}: must name every class of {data.source} exactly (classes "
                           f"{data.classes}); missing {missing}, unknown {unknown}")
    index = np.asarray([label_map[c] for c in data.classes], dtype=np.int64)
    if len(set(index.tolist())) != len(index) or index.min() < 0:
        raise InvalidInput(f"{where}: output indices must be distinct and >= 0, got {label_map}")
    names = {label_map[c]: c for c in data.classes}
    classes = [names.get(i, f"output {i}") for i in range(int(index.max()) + 1)]
    relabel = lambda s: Split(s.name, s.inputs, index[s.labels])  # noqa: E731
    return Dataset(name=data.name, kind=data.kind, classes=classes, source=data.source,
                   train=relabel(data.train), val=relabel(data.val), test=relabel(data.test), extra=data.extra,
                   label_map=dict(label_map))


# ---------------------------------------------------------------- text

def load_rotten_tomatoes(seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)) -> Dataset:
    """The bundled Rotten Tomatoes snippets (fresh=1 / rotten=0; 'plot' rows dropped), 80/10/10 seeded."""
    if not SENTIMENT_FILE.exists():
        raise DataUnavailable(f"{SENTIMENT_FILE}: bundled sentiment data missing; reinstall edgeopt")
    digest = sentiment_bytes_sha256()
    if digest != SENTIMENT_SHA256:
        raise DataUnavailable(f"{SENTIMENT_FILE}: sha256 {digest[:16]}... is not the bundled file's "
                              f"({SENTIMENT_SHA256[:16]}...); it was modified or damaged; reinstall edgeopt")
    with bz2.open(SENTIMENT_FILE, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts, labels = [], []
    for row in rows:
        if row["category"] in SENTIMENT_CLASSES:
            texts.append(row["text"])
            labels.append(SENTIMENT_CLASSES.index(row["category"]))
    return _text_dataset("rotten-tomatoes", texts, labels, SENTIMENT_CLASSES, str(SENTIMENT_FILE), seed, fractions)


def load_text_csv(path: Path | str, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)) -> Dataset:
    """A user CSV with a header and columns `text,label` (label: an integer or a class name)."""
    path = Path(path)
    opener = bz2.open if path.suffix == ".bz2" else gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            if "text" not in fields or "label" not in fields:
                raise InvalidInput(f"{path}: CSV header is {fields}; expected columns 'text' and 'label'")
            rows = [(row["text"], row["label"]) for row in reader]
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read CSV: {error}") from None
    raw = [label for _, label in rows]
    if all(r.strip().lstrip("-").isdigit() for r in raw):
        classes = [str(i) for i in range(max(int(r) for r in raw) + 1)]
        labels = [int(r) for r in raw]
    else:
        classes = sorted(set(raw))
        labels = [classes.index(r) for r in raw]
    return _text_dataset(path.stem, [t for t, _ in rows], labels, classes, str(path), seed, fractions)


def load_text_lines(path: Path | str, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)) -> Dataset:
    """A text file of one input per line, without labels (blank lines skipped): the source model's own
    predictions will be the reference."""
    path = Path(path)
    try:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read the text file: {error}") from None
    index = _seeded_split(len(texts), fractions, seed, str(path))
    return _unlabelled(path.stem, "text", str(path), [[texts[i] for i in part] for part in index])


def _unlabelled(name: str, kind: str, source: str, parts) -> Dataset:
    splits = [Split(n, inputs, np.full(len(inputs), -1, dtype=np.int64))
              for n, inputs in zip(("train", "val", "test"), parts)]
    return Dataset(name=name, kind=kind, classes=[], source=source, train=splits[0], val=splits[1], test=splits[2],
                   labelled=False)


def _text_dataset(name, texts, labels, classes, source, seed, fractions) -> Dataset:
    labels = np.asarray(labels, dtype=np.int64)
    train_i, val_i, test_i = _seeded_split(len(texts), fractions, seed, source)
    pick = lambda index: [texts[i] for i in index]  # noqa: E731
    return Dataset(name=name, kind="text", classes=classes, source=source,
                   train=Split("train", pick(train_i), labels[train_i]),
                   val=Split("val", pick(val_i), labels[val_i]),
                   test=Split("test", pick(test_i), labels[test_i]))


# ---------------------------------------------------------------- dispatch

BUILTIN_DATASETS = {"fashion-mnist": lambda: load_idx_dir(), "rotten-tomatoes": lambda: load_rotten_tomatoes()}


def load_dataset(spec: str | Path) -> Dataset:
    """A built-in name (fashion-mnist, rotten-tomatoes), a directory of IDX files or images, or a text CSV."""
    spec_str = str(spec)
    if spec_str in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[spec_str]()
    path = Path(spec_str).expanduser()
    if not path.exists():
        raise InvalidInput(f"{spec}: no such data set; expected one of {', '.join(BUILTIN_DATASETS)}, "
                           "a directory of IDX files, an ImageFolder directory, a CSV file (text,label), or "
                           "without labels a folder of images or a .txt file of one text per line")
    if path.is_dir():
        if _find_idx(path, IDX_FILES["train_images"]):
            return load_idx_dir(path, name=path.name)
        return load_image_folder(path)
    return load_text_lines(path) if path.suffix == ".txt" else load_text_csv(path)


def sentiment_bytes_sha256() -> str:
    return hashlib.sha256(SENTIMENT_FILE.read_bytes()).hexdigest()


def dataset_of(artifact) -> Dataset:
    """The data set an artifact was made with, found from what its manifest records: a built-in name, else
    the recorded path; its splits must still hash as recorded. The one way to find an artifact's data: a
    missing or changed data set is an error, never a silent stand-in."""
    recorded = artifact.dataset or {}
    name = recorded.get("name")
    spec = name if name in BUILTIN_DATASETS else recorded.get("source") or name
    if not spec:
        raise InvalidInput(f"{artifact.path}: the manifest records no data set, so there are no real inputs for it")
    try:
        data = _load_unchanged(spec, _modified(spec))
    except (InvalidInput, DataUnavailable) as error:
        raise DataUnavailable(f"{artifact.path}: cannot load its data set {spec}: {error}") from None
    if recorded.get("label_map"):
        data = apply_label_map(data, recorded["label_map"], f"{artifact.path}: label_map")
    if recorded.get("reference_labels"):
        data = with_reference(data, recorded["reference_labels"], len(recorded.get("classes") or []),
                              str(artifact.path))
    for split, saved in (recorded.get("splits") or {}).items():
        current = data.split(split)
        if saved.get("sha256") and saved["sha256"] != current.sha256:
            raise InvalidInput(f"{artifact.path}: its data set {spec} changed since the artifact was made: "
                               f"{split} split sha256 {current.sha256[:12]} ({len(current)} samples), recorded "
                               f"{saved['sha256'][:12]} ({saved.get('size')} samples)")
    return data


@lru_cache(maxsize=4)
def _load_unchanged(spec: str, modified: int) -> Dataset:
    """load_dataset, cached while the files are unchanged: export parity and sweeps read one data set often."""
    return load_dataset(spec)


def _modified(spec: str) -> int:
    path = {"fashion-mnist": FASHION_MNIST_DIR, "rotten-tomatoes": SENTIMENT_FILE}.get(spec, Path(spec).expanduser())
    return path.stat().st_mtime_ns if path.exists() else 0


__all__ = ["Dataset", "ImageFiles", "Split", "apply_label_map", "with_reference", "load_text_lines", "image_shape",
           "dataset_of", "load_dataset", "load_idx_dir", "load_image_folder", "load_rotten_tomatoes",
           "load_text_csv", "read_idx", "FASHION_MNIST_CLASSES", "SENTIMENT_CLASSES"]
