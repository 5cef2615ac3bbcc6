"""Real loaders on the real files: Fashion-MNIST IDX, the bundled sentiment CSV, and user-provided data."""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import struct

import numpy as np
import pytest

from edgeopt.core import data as D
from edgeopt.core.errors import DataUnavailable, InvalidInput
from edgeopt.core.preprocess import ImagePreprocessor


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_splits(fashion):
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (55000, 5000, 10000)
    assert fashion.train.inputs.shape[1:] == (28, 28) and fashion.train.inputs.dtype == np.uint8
    assert set(np.unique(fashion.test.labels)) == set(range(10))
    assert fashion.classes[9] == "Ankle boot"
    described = fashion.describe()["splits"]
    assert len({s["sha256"] for s in described.values()}) == 3


def test_splits_are_seeded_and_hashed(fashion):
    again = D.load_idx_dir()
    assert again.val.sha256 == fashion.val.sha256
    other_seed = D.load_idx_dir(seed=1)
    assert other_seed.val.sha256 != fashion.val.sha256
    assert fashion.test.subset(100, seed=3).sha256 == fashion.test.subset(100, seed=3).sha256


def test_sentiment_drops_plot_rows(sentiment):
    total = len(sentiment.train) + len(sentiment.val) + len(sentiment.test)
    assert total == 12808
    assert sentiment.classes == ["rotten", "fresh"]
    assert 1200 < len(sentiment.test) < 1400
    assert 0.5 < sentiment.train.labels.mean() < 0.65  # 7,403 fresh of 12,808


def test_bundled_sentiment_file_is_the_documented_one():
    assert hashlib.sha256(D.SENTIMENT_FILE.read_bytes()).hexdigest() == D.SENTIMENT_SHA256


def test_user_idx_directory(tmp_path, fashion):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", fashion.train.inputs[:300])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", fashion.train.labels[:300])
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", fashion.test.inputs[:50])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", fashion.test.labels[:50])
    loaded = D.load_idx_dir(tmp_path, name="mine", val_fraction=0.1)
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (270, 30, 50)
    assert np.array_equal(loaded.test.inputs, fashion.test.inputs[:50])
    assert D.load_dataset(tmp_path).kind == "image"


def test_truncated_idx_names_the_file(tmp_path):
    path = tmp_path / "broken.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(InvalidInput, match="broken.gz.*truncated"):
        D.read_idx(path)


def test_missing_data_says_what_to_install(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailable, match="missing IDX") as user_dir:
        D.load_idx_dir(tmp_path)
    assert "apt-get" not in str(user_dir.value)
    monkeypatch.setattr(D, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataUnavailable, match="apt-get install dataset-fashion-mnist"):
        D.load_dataset("fashion-mnist")


def test_image_folder(tmp_path, fashion):
    from PIL import Image

    for index in range(12):
        label = fashion.classes[fashion.test.labels[index]].replace("/", "-")
        folder = tmp_path / label
        folder.mkdir(exist_ok=True)
        Image.fromarray(fashion.test.inputs[index]).save(folder / f"{index}.png")
    loaded = D.load_dataset(tmp_path)
    assert loaded.kind == "image"
    assert len(loaded.train) + len(loaded.val) + len(loaded.test) == 12
    assert isinstance(loaded.train.inputs, D.ImageFiles)  # decoded per batch, at the model's size
    first = loaded.train.inputs[0]
    index = int(first.stem)
    assert np.array_equal(ImagePreprocessor().pixels(loaded.train.inputs[:1])[0, ..., 0], fashion.test.inputs[index])


def test_user_csv_with_class_names(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow([f"review number {i}", "good" if i % 2 else "bad"])
    loaded = D.load_dataset(path)
    assert loaded.classes == ["bad", "good"] and loaded.kind == "text"
    assert len(loaded.train) == 32


def test_csv_without_expected_columns_is_rejected(tmp_path):
    path = tmp_path / "wrong.csv.bz2"
    with bz2.open(path, "wt") as handle:
        handle.write("sentence,sentiment\nhello,1\n")
    with pytest.raises(InvalidInput, match="wrong.csv.bz2.*'text' and 'label'"):
        D.load_dataset(path)


def test_unknown_dataset_lists_choices():
    with pytest.raises(InvalidInput, match="fashion-mnist"):
        D.load_dataset("no-such-dataset")


def test_a_modified_bundled_sentiment_file_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / D.SENTIMENT_FILE.name
    damaged.write_bytes(bz2.compress(bz2.decompress(D.SENTIMENT_FILE.read_bytes()) + b"extra,fresh,row\n"))
    monkeypatch.setattr(D, "SENTIMENT_FILE", damaged)
    with pytest.raises(DataUnavailable, match="modified or damaged; reinstall edgeopt"):
        D.load_rotten_tomatoes()


def test_dataset_of_loads_what_the_artifact_recorded_and_checks_its_hashes(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / "reviews.csv"
    rows = [("good film", "pos"), ("bad film", "neg")] * 10
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    recorded = {**D.load_dataset(path).describe(), "name": str(path)}
    artifact = SimpleNamespace(path=tmp_path / "artifact", dataset=recorded)
    assert D.dataset_of(artifact).test.sha256 == recorded["splits"]["test"]["sha256"]
    with open(path, "a", newline="") as handle:
        csv.writer(handle).writerow(("an extra review", "pos"))
    with pytest.raises(InvalidInput, match=r"reviews.csv changed since the artifact was made: train split"):
        D.dataset_of(artifact)
    path.unlink()
    with pytest.raises(DataUnavailable, match="cannot load its data set .*reviews.csv"):
        D.dataset_of(artifact)
