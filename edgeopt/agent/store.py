"""The agent's store: artifacts by sha256, uploaded file by file, verified, then swapped in whole.

An upload starts with the manifest and a list of files (name, size, sha256). Each file is then sent on its
own, checked against its declared size and hash, and kept; a broken connection loses only the file in flight,
and starting again asks only for what is missing (resumable). Commit loads the staged directory as an
artifact, which checks the manifest's content hash, and renames it into place. Names are checked before any
path is made from them, so nothing can be written outside the store. Inputs (npz) are kept by sha256 too.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.core.artifacts import MANIFEST, Artifact, contained
from edgeopt.core.errors import EdgeoptError, InvalidInput
from edgeopt.core.hashing import sha256_file

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
MAX_DEPTH, MAX_FILES = 8, 10_000
PLAN = ".upload.json"
# What a board may run: file formats whose loading runs no code an artifact names (never a torch module), through
# runtimes that need no torch (ExecuTorch's Python runtime imports it). The agent offers those it has installed.
AGENT_RUNTIMES = ("onnxruntime", "openvino", "litert")


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256.pattern)


class UploadPlan(BaseModel):
    """What the host says it will send: the manifest text and every file of the artifact directory."""

    model_config = ConfigDict(extra="forbid")
    manifest: str
    files: list[FileEntry] = Field(max_length=MAX_FILES)


def check_sha(sha: str) -> str:
    if not SHA256.match(sha):
        raise InvalidInput(f"{sha[:80]!r} is not a sha256 (64 lower-case hex digits)")
    return sha


def check_name(name: str) -> str:
    """A relative POSIX name of plain parts, written the one normal way; `..`, `.`, absolute paths,
    backslashes, empty parts and hidden names are refused."""
    parts = name.split("/")
    if len(parts) > MAX_DEPTH or not all(NAME_PART.match(part) for part in parts):
        raise InvalidInput(f"file name {name[:200]!r} is not allowed: relative names of letters, digits and "
                           "._+- only, no '..', no leading '/' or '.'")
    return name


def describe_directory(directory: Path) -> UploadPlan:
    """The host side of an upload: the manifest and every file below the artifact directory."""
    files = [FileEntry(name=p.relative_to(directory).as_posix(), size=p.stat().st_size, sha256=sha256_file(p))
             for p in sorted(directory.rglob("*")) if p.is_file()]
    return UploadPlan(manifest=(directory / MANIFEST).read_text(), files=files)


class ArtifactStore:
    """artifacts/<sha>/ (complete, verified), partial/<sha>/ (uploads in progress), inputs/<sha>.npz."""

    def __init__(self, root: Path, max_artifact_bytes: int, max_inputs_bytes: int):
        self.root = Path(root)
        self.max_artifact_bytes, self.max_inputs_bytes = max_artifact_bytes, max_inputs_bytes
        for sub in ("artifacts", "partial", "inputs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def artifact_dir(self, sha: str) -> Path:
        return self.root / "artifacts" / check_sha(sha)

    def has(self, sha: str) -> bool:
        return (self.artifact_dir(sha) / MANIFEST).exists()

    def load(self, sha: str) -> Artifact:
        if not self.has(sha):
            raise KeyError(sha)
        return Artifact.load(self.artifact_dir(sha), verify=False)  # verified when it was committed

    def artifacts(self) -> list[str]:
        return sorted(p.parent.name for p in (self.root / "artifacts").glob(f"*/{MANIFEST}"))

    # ------------------------------------------------------------ uploads

    def begin(self, sha: str, plan: UploadPlan) -> list[str]:
        """Check the plan before any byte of a model arrives; returns the names still to send."""
        check_sha(sha)
        if self.has(sha):
            return []
        artifact = parse_manifest(plan.manifest)
        if artifact.sha256 != sha:
            raise InvalidInput(f"the manifest's sha256 {artifact.sha256[:12]}… is not the upload's {sha[:12]}…")
        names = [check_name(f.name) for f in plan.files]
        if len(set(names)) != len(names):
            raise InvalidInput("the upload names a file twice")
        total = sum(f.size for f in plan.files)
        if total > self.max_artifact_bytes:
            raise InvalidInput(f"the artifact is {total} bytes, over this agent's limit of {self.max_artifact_bytes}")
        declared = {f.name: f for f in plan.files}
        manifest_bytes = plan.manifest.encode()
        entry = declared.get(MANIFEST)
        if entry is None or entry.sha256 != hashlib.sha256(manifest_bytes).hexdigest():
            raise InvalidInput(f"the file list must hold {MANIFEST} with the manifest's own hash")
        missing = [n for n in artifact.file_names() if n not in declared
                   and not any(d.startswith(n.rstrip("/") + "/") for d in declared)]
        if missing:
            raise InvalidInput(f"the manifest names files the upload does not hold: {', '.join(missing)}")
        staging = self._staging(sha)
        old = self._plan(staging)
        if old is not None and old != plan:  # another plan for the same sha: start over
            shutil.rmtree(staging)
            staging = self._staging(sha)
        (staging / PLAN).write_text(plan.model_dump_json())
        incoming = Incoming(staging / MANIFEST, entry)
        incoming.write(manifest_bytes)
        incoming.finish()
        return [f.name for f in plan.files if not self._done(staging, f)]

    def receive(self, sha: str, name: str) -> "Incoming":
        """Start receiving one declared file; its size and sha256 must be what the plan said."""
        staging = self.root / "partial" / check_sha(sha)
        plan = self._plan(staging)
        if plan is None:
            raise InvalidInput(f"no upload of {sha[:12]}… in progress: send the file list first")
        name = check_name(name)
        entry = next((f for f in plan.files if f.name == name), None)
        if entry is None:
            raise InvalidInput(f"{name!r} is not in the upload's file list")
        return Incoming(contained(staging, name, staging / PLAN), entry)

    def commit(self, sha: str) -> Artifact:
        """Every file is there and verified: load the artifact (its content hash is checked), swap it in."""
        if self.has(sha):
            return self.load(sha)
        staging = self.root / "partial" / check_sha(sha)
        plan = self._plan(staging)
        if plan is None:
            raise InvalidInput(f"no upload of {sha[:12]}… in progress")
        missing = [f.name for f in plan.files if not self._done(staging, f)]
        if missing:
            raise InvalidInput(f"files not uploaded yet: {', '.join(missing[:10])}")
        (staging / PLAN).unlink()
        for stray in staging.rglob(".incoming-*"):  # a file whose connection broke
            stray.unlink()
        try:
            artifact = Artifact.load(staging, verify=True)
        except EdgeoptError as error:
            shutil.rmtree(staging)
            raise InvalidInput(f"the uploaded artifact does not verify: {error}") from None
        if artifact.sha256 != sha:
            shutil.rmtree(staging)
            raise InvalidInput(f"the uploaded artifact's sha256 {artifact.sha256[:12]}… is not {sha[:12]}…")
        staging.rename(self.artifact_dir(sha))
        return self.load(sha)

    def _staging(self, sha: str) -> Path:
        path = self.root / "partial" / sha
        path.mkdir(exist_ok=True)
        return path

    @staticmethod
    def _plan(staging: Path) -> UploadPlan | None:
        try:
            return UploadPlan.model_validate_json((staging / PLAN).read_text())
        except (OSError, ValidationError):
            return None

    @staticmethod
    def _done(staging: Path, entry: FileEntry) -> bool:
        path = staging / entry.name
        return path.is_file() and path.stat().st_size == entry.size

    # ------------------------------------------------------------ inputs

    def inputs_path(self, sha: str) -> Path:
        return self.root / "inputs" / f"{check_sha(sha)}.npz"

    def put_inputs(self, sha: str, data: bytes) -> Path:
        """Measurement inputs (npz, read later with allow_pickle=False), stored only if their hash is `sha`."""
        if hashlib.sha256(data).hexdigest() != check_sha(sha):
            raise InvalidInput("the inputs' sha256 does not match the one in the URL (tampered or truncated)")
        path = self.inputs_path(sha)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.rename(path)
        return path


class Incoming:
    """One file being received: written beside its final name, renamed in only once size and hash match."""

    def __init__(self, target: Path, entry: FileEntry):
        self.target, self.entry = target, entry
        target.parent.mkdir(parents=True, exist_ok=True)
        # hidden, so never a declared name; random, so two senders of the same file do not mix their bytes
        self.partial = target.with_name(f".incoming-{secrets.token_hex(4)}-{target.name}")
        self.handle = open(self.partial, "wb")
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.entry.size:
            self.abort()
            raise InvalidInput(f"{self.entry.name}: rejected: more bytes than the declared {self.entry.size}")
        self.digest.update(chunk)
        self.handle.write(chunk)

    def finish(self) -> None:
        self.handle.close()
        if self.size != self.entry.size or self.digest.hexdigest() != self.entry.sha256:
            self.abort()
            why = (f"{self.size} bytes received of the declared {self.entry.size} (truncated)"
                   if self.size != self.entry.size else "its sha256 is not the declared one (tampered or corrupt)")
            raise InvalidInput(f"{self.entry.name}: rejected: {why}")
        self.partial.rename(self.target)

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


def parse_manifest(text: str) -> Artifact:
    """The manifest as an Artifact; refused unless an agent runtime runs its format (so never a torch module,
    whose loading may run code the manifest names)."""
    from edgeopt.runtimes import RUNTIMES

    try:
        artifact = Artifact.model_validate_json(text)
    except ValidationError as error:
        raise InvalidInput(f"{MANIFEST}: not a valid manifest: {error.errors()[0]['msg']}") from None
    formats = {str(f) for name in AGENT_RUNTIMES for f in RUNTIMES[name].formats}
    if artifact.format not in formats:
        raise InvalidInput(f"{artifact.name}: {artifact.format} artifacts do not run on the agent (it runs "
                           f"{', '.join(sorted(formats))}: no torch on a board, and no code a manifest names); "
                           "export it first (`edgeopt export NAME --format onnx`)")
    return artifact
