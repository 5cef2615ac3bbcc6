"""Artifact: a model file plus what it is.

An artifact is a directory: the model file(s), the preprocessing files that turn raw samples into its
inputs, and `artifact.json` describing family, format, precision, input spec, parent and sha256.
Every step of edgeopt (train, prune, distill, export, quantize) reads one artifact and writes another.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from .errors import CheckpointError
from .hashing import sha256_tree

MANIFEST = "artifact.json"


class Family(StrEnum):
    """What kind of inputs a model takes: images (cnn), token ids (lstm), or BERT ids + attention mask (bert)."""

    CNN = "cnn"
    LSTM = "lstm"
    BERT = "bert"


class Format(StrEnum):
    TORCH = "torch"
    ONNX = "onnx"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class TensorSpec(BaseModel):
    """One model input or output; string dimensions are dynamic ("batch", "sequence")."""

    model_config = ConfigDict(frozen=True)
    name: str
    dtype: str
    shape: list[int | str]


class Artifact(BaseModel):
    """A model on disk and its provenance. `path` is the artifact directory (not stored in the manifest)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: Family
    format: Format
    precision: Precision = Precision.FP32
    model_file: str = Field(description="model file or directory, relative to the artifact directory")
    arch: dict[str, Any] = Field(default_factory=dict, description="builder + kwargs for torch-format models")
    preprocess: dict[str, Any] = Field(default_factory=dict, description="how raw samples become inputs")
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    dataset: dict[str, Any] = Field(default_factory=dict, description="data set name and split hashes")
    parent: str | None = Field(default=None, description="sha256 of the artifact this one was made from")
    recipe: list[dict[str, Any]] = Field(default_factory=list, description="steps applied since the zoo model")
    sha256: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    created: str = ""

    path: Path | None = Field(default=None, exclude=True)

    @property
    def model_path(self) -> Path:
        assert self.path is not None, "artifact has no directory"
        return self.path / self.model_file

    @property
    def size_bytes(self) -> int:
        """Bytes of the deployable model (file or directory), excluding preprocessing files."""
        target = self.model_path
        if target.is_dir():
            return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        size = target.stat().st_size
        if self.format == Format.OPENVINO:  # weights live in the .bin beside the .xml
            weights = target.with_suffix(".bin")
            size += weights.stat().st_size if weights.exists() else 0
        return size

    def model_files(self) -> list[Path]:
        target = self.model_path
        if self.format == Format.OPENVINO:
            return [target, target.with_suffix(".bin")]
        return [target]

    def content_hash(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        for file in self.model_files():
            digest.update(sha256_tree(file).encode())
        return digest.hexdigest()

    def save(self) -> "Artifact":
        """Hash the model file(s), stamp versions and time, write artifact.json. Returns self."""
        assert self.path is not None, "set artifact.path before saving"
        self.sha256 = self.content_hash()
        self.created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.versions = self.versions or library_versions()
        (self.path / MANIFEST).write_text(self.model_dump_json(indent=2))
        return self

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Artifact":
        """Read an artifact directory; with verify, fail loudly when the model file does not match its hash."""
        path = Path(path)
        if path.is_file() and path.name == MANIFEST:
            path = path.parent
        manifest = path / MANIFEST
        if not manifest.exists():
            raise CheckpointError(f"{path}: not an edgeopt artifact (no {MANIFEST}); "
                                  "export or import the model first (see `edgeopt export --help`).")
        try:
            artifact = cls.model_validate_json(manifest.read_text())
        except ValueError as error:
            raise CheckpointError(f"{manifest}: unreadable manifest: {error}") from None
        artifact.path = path
        missing = [f for f in artifact.model_files() if not f.exists()]
        if missing:
            raise CheckpointError(f"{path}: model file missing: {', '.join(str(m) for m in missing)}")
        if verify and artifact.sha256:
            actual = artifact.content_hash()
            if actual != artifact.sha256:
                raise CheckpointError(
                    f"{artifact.model_path}: sha256 {actual[:12]}… does not match the manifest's "
                    f"{artifact.sha256[:12]}…: the file is corrupt or was changed. Rebuild it "
                    "(for zoo models: `edgeopt zoo train NAME --force`) or restore the original.")
        return artifact

    def derive(self, path: Path, **changes: Any) -> "Artifact":
        """A child artifact in `path`: same description, parent set to this one, preprocessing files copied."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        copy_preprocess_files(self, path)
        step = changes.pop("step", None)
        recipe = list(self.recipe) + ([step] if step else [])
        data = self.model_dump(exclude={"sha256", "created", "versions", "metrics"})
        data.update(parent=self.sha256, recipe=recipe, metrics={})
        data.update(changes)
        child = Artifact.model_validate(data)
        child.path = path
        return child

    def describe(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["path"] = str(self.path)
        data["size_bytes"] = self.size_bytes
        return data


def copy_preprocess_files(source: Artifact, destination: Path) -> None:
    """Preprocessing files (vocabulary, tokenizer) travel with every derived artifact."""
    assert source.path is not None
    for name in source.preprocess.get("files", []):
        src = source.path / name
        dst = destination / name
        if src.resolve() == dst.resolve():
            continue
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_directory(destination: Path) -> Iterator[Path]:
    """Build into `<destination>.partial`, then swap it in, so a crash never leaves a half-written artifact."""
    destination = Path(destination)
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model file; recorded in every manifest."""
    from importlib import metadata

    versions = {}
    for name in ("edgeopt", "torch", "onnx", "onnxruntime", "openvino", "nncf", "torch-pruning", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
