"""Artifact: a model file plus what it is.

An artifact is a directory: the model file(s), the preprocessing files that turn raw samples into its
inputs, and `artifact.json` describing family, format, precision, input spec, parent and sha256.
Every step of edgeopt (train, prune, distill, export, quantize) reads one artifact and writes another.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import secrets
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from .errors import CheckpointError, InvalidInput, UntrustedCode
from .hashing import sha256_json, sha256_tree

MANIFEST = "artifact.json"
UNHASHED = {"sha256", "metrics", "created", "versions"}  # what a model is told apart from how it measured


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
    EXECUTORCH = "executorch"
    LITERT = "litert"


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
    trust_code: bool = Field(default=False, exclude=True,
                             description="the user consented to run the module factory the manifest names")

    @property
    def model_path(self) -> Path:
        assert self.path is not None, "artifact has no directory"
        return self.path / self.model_file

    @property
    def size_bytes(self) -> int:
        """Bytes of the deployable model (file(s) or directory), excluding preprocessing files."""
        files = [p for f in self.model_files() for p in (f.rglob("*") if f.is_dir() else [f]) if p.is_file()]
        return sum(p.stat().st_size for p in files)

    def model_file_names(self) -> list[str]:
        if self.format == Format.OPENVINO:  # weights live in the .bin beside the .xml
            return [self.model_file, str(Path(self.model_file).with_suffix(".bin"))]
        return [self.model_file]

    def model_files(self) -> list[Path]:
        assert self.path is not None, "artifact has no directory"
        return [self.path / name for name in self.model_file_names()]

    def file_names(self) -> list[str]:
        """Every name the manifest joins to the artifact directory: the model file and the preprocessing files."""
        named = [v for k, v in self.preprocess.items() if k.endswith(("_file", "_dir")) and isinstance(v, str)]
        return [*self.model_file_names(), *self.preprocess.get("files", []), *named]

    def model_hash(self) -> str:
        """sha256 of the model file(s) alone: the checksum manifests had before the manifest was covered."""
        digest = hashlib.sha256()
        for file in self.model_files():
            digest.update(sha256_tree(file).encode())
        return digest.hexdigest()

    def content_hash(self) -> str:
        """sha256 over the model file(s), the preprocessing files and the manifest's content fields, so a changed
        file or an edited manifest (another factory, other labels) fails verification."""
        assert self.path is not None, "artifact has no directory"
        files = [self.path / name for name in self.preprocess.get("files", [])]
        parts = [self.model_hash(), *(sha256_tree(f) for f in files if f.exists()),
                 sha256_json(self.model_dump(mode="json", exclude=UNHASHED))]
        return sha256_json(parts)

    def save(self) -> "Artifact":
        """Stamp versions and time, hash files and manifest, write artifact.json. Returns self."""
        assert self.path is not None, "set artifact.path before saving"
        self.created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.versions = self.versions or library_versions()
        self.sha256 = self.content_hash()
        (self.path / MANIFEST).write_text(self.model_dump_json(indent=2))
        return self

    @classmethod
    def load(cls, path: str | Path, verify: bool = True, trust_code: bool = False) -> "Artifact":
        """Read an artifact directory; with verify, fail loudly when its files or manifest do not match its hash.

        `trust_code` is the user's consent to run the module factory a torch artifact's `arch` may name; without
        it, building the module refuses (UntrustedCode), like Hugging Face's `trust_remote_code`.
        """
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
        artifact.trust_code = trust_code
        for name in artifact.file_names():
            contained(path, name, manifest)
        missing = [f for f in artifact.model_files() if not f.exists()]
        if missing:
            raise CheckpointError(f"{path}: model file missing: {', '.join(str(m) for m in missing)}")
        if verify and artifact.sha256 and artifact.sha256 != artifact.content_hash() and not artifact.legacy():
            raise CheckpointError(
                f"{path}: sha256 of the model files and {MANIFEST} does not match the manifest's "
                f"{artifact.sha256[:12]}…: a file or the manifest is corrupt or was changed. Rebuild it "
                "(for zoo models: `edgeopt zoo train NAME --force`) or restore the original.")
        return artifact

    def legacy(self) -> bool:
        """A manifest saved before the checksum covered it (model files only) still loads, unless it names
        code to run: then it must be saved again."""
        names_code = self.format == Format.TORCH and self.arch.get("builder") == "factory"
        return not names_code and self.sha256 == self.model_hash()

    def derive(self, path: Path, **changes: Any) -> "Artifact":
        """A child artifact in `path`: same description, parent set to this one, preprocessing files copied.

        The child keeps this artifact's consent to run its module factory: it names the same code.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        copy_preprocess_files(self, path)
        step = changes.pop("step", None)
        recipe = list(self.recipe) + ([step] if step else [])
        data = self.model_dump(exclude={"sha256", "created", "versions", "metrics"})
        # what distillation bought stays with the student's exports and quantized variants (the report shows it)
        inherited = {k: self.metrics[k] for k in ("distill",) if k in self.metrics}
        data.update(parent=self.sha256, recipe=recipe, metrics=inherited)
        data.update(changes)
        child = Artifact.model_validate(data)
        child.path = path
        child.trust_code = self.trust_code
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


def contained(directory: Path, name: str, manifest: Path) -> Path:
    """`directory / name`, refused when a manifest's file name would leave the artifact directory (an absolute
    path, `..`, or a symlink pointing out, also inside a named directory): loading reads only its own files."""
    root = Path(directory).resolve()
    target = (root / name).resolve()
    inside = target.rglob("*") if target.is_dir() else []
    if Path(name).is_absolute() or target == root or not all(
            p.resolve().is_relative_to(root) for p in (target, *inside)):
        raise CheckpointError(f"{manifest}: file name {name!r} points outside the artifact directory {root}; "
                              "a manifest may only name files inside it")
    return target


def require_consent(arch: dict[str, Any], trust_code: bool, where: Any) -> None:
    """The one check before a module factory named in a manifest runs: the user must have opted in."""
    if arch.get("builder") == "factory" and not trust_code:
        origin = f" (importable from {arch['path']})" if arch.get("path") else ""
        raise UntrustedCode(
            f"{where}: loading this artifact runs the module factory {arch.get('factory')!r}{origin}; edgeopt "
            "runs code an artifact names only with consent: pass --trust-code (Python: trust_code=True) if you "
            "trust it, or name the factory in your own config")


def check_output(destination: str | Path, source: "Artifact | None" = None, force: bool = False) -> Path:
    """Where a step may write: a new or empty directory, or an existing artifact when `force` replaces it.

    Never a directory edgeopt did not make, and never the source artifact or a directory inside or around it.
    Steps call this before their work starts so a bad `--output` fails at once. Returns the absolute path.
    """
    destination = Path(destination).expanduser().resolve()
    if source is not None and source.path is not None:
        origin = Path(source.path).resolve()
        if destination.is_relative_to(origin) or origin.is_relative_to(destination):
            raise InvalidInput(f"{destination}: the output would overwrite the source artifact {origin}; "
                               "choose a directory outside it")
    if destination.exists() and not destination.is_dir():
        raise InvalidInput(f"{destination}: exists and is not a directory; choose a new or empty directory")
    if destination.is_dir() and any(destination.iterdir()):
        if not (destination / MANIFEST).exists():
            raise InvalidInput(f"{destination}: exists, is not empty and is not an edgeopt artifact; edgeopt "
                               "will not overwrite it: choose a new or empty directory")
        if not force:
            raise InvalidInput(f"{destination}: already holds an edgeopt artifact; pass --force "
                               "(Python: force=True) to replace it")
    return destination


@contextlib.contextmanager
def output_directory(destination: str | Path, source: "Artifact | None" = None,
                     force: bool = False) -> Iterator[Path]:
    """The only way a step writes its output: checked (see `check_output`), built in a fresh sibling staging
    directory, then swapped in with renames. A failed step leaves `destination` exactly as it was and never a
    half-written artifact; the artifact it replaces is removed only after the new one is in place."""
    destination = check_output(destination, source, force)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = sibling(destination, "partial")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    check_output(destination, source, force)  # nothing else moved in while the step ran
    aside = None
    if destination.exists():
        aside = sibling(destination, "replaced")
        destination.rename(aside)  # onto the empty directory just made
    try:
        staging.rename(destination)
    except OSError:
        if aside is not None:
            aside.rename(destination)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside)


def sibling(destination: Path, kind: str) -> Path:
    """A new, uniquely named, hidden directory beside `destination` (same file system, so renames are atomic)."""
    path = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.{kind}")
    path.mkdir()
    return path


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
