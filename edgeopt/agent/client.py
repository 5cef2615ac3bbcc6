"""The host side of the device agent: upload (skipped when the board has it), measure, deploy, predict.

`run_remote` is how a remote device profile measures: the host's WorkerRequest goes to the board, which runs
it with the same worker (benchmarks.isolation.run_isolated) under its own profile, and the WorkerOutcome comes
back with the board's provenance. An agent that cannot be reached becomes that candidate's error.
Standard library HTTP only: nothing extra on the host, JSON and npz on the wire, never pickle.
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edgeopt.benchmarks.isolation import WorkerOutcome
from edgeopt.benchmarks.profiles import RemoteTransport
from edgeopt.benchmarks.worker import WorkerRequest
from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import EdgeoptError, InvalidInput
from edgeopt.core.hashing import sha256_file

from .security import token_from_env
from .store import describe_directory

SLACK_S = 120  # beyond a measurement's own timeout: the worker's start, the reply


class AgentError(EdgeoptError):
    """The agent could not be reached or refused a request; the message says which and why."""


class AgentClient:
    def __init__(self, url: str, token: str | None = None, ca_file: str | None = None, timeout_s: float = 60):
        self.url, self.token, self.timeout_s = url.rstrip("/"), token, timeout_s
        context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
        # straight to the board: no proxy from the environment ever sees the token
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPSHandler(context=context))

    @classmethod
    def of(cls, remote: RemoteTransport) -> "AgentClient":
        token = token_from_env(remote.token_env)
        if token is None:
            raise InvalidInput(f"the agent at {remote.url} needs its token in ${remote.token_env}, which is not set")
        return cls(remote.url, token, remote.ca_file)

    def call(self, method: str, path: str, body: bytes | BinaryIO | None = None, content_type: str = "application/json",
             length: int | None = None, timeout_s: float | None = None, missing_ok: bool = False) -> Any:
        """One request; JSON back (text for /metrics). 404 gives None when `missing_ok`, other errors raise."""
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if length is not None:
            headers["Content-Length"] = str(length)
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=timeout_s or self.timeout_s) as reply:
                data = reply.read()
                kind = reply.headers.get("content-type", "")
        except urllib.error.HTTPError as error:
            if error.code == 404 and missing_ok:
                return None
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["detail"]
            except (ValueError, KeyError, TypeError):
                pass
            raise AgentError(f"device agent {self.url}: {method} {path.split('?')[0]} -> {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AgentError(f"device agent {self.url} unreachable ({method} {path}): {reason}") from None
        return json.loads(data) if kind.startswith("application/json") else data.decode()

    def info(self) -> dict[str, Any]:
        return self.call("GET", "/info")

    def upload(self, artifact_dir: Path) -> str:
        """Send the artifact directory unless the agent has it; resumes a broken upload. Returns its sha256."""
        artifact = Artifact.load(artifact_dir, verify=False)
        sha = artifact.sha256
        if self.call("GET", f"/artifacts/{sha}", missing_ok=True) is not None:
            return sha
        plan = describe_directory(Path(artifact_dir))
        missing = self.call("POST", f"/artifacts/{sha}", plan.model_dump_json().encode())["missing"]
        for name in missing:
            path = Path(artifact_dir) / name
            with open(path, "rb") as handle:
                self.call("PUT", f"/artifacts/{sha}/files/{urllib.request.quote(name)}", handle,
                          "application/octet-stream", length=path.stat().st_size, timeout_s=3600)
        self.call("POST", f"/artifacts/{sha}/commit")
        return sha

    def put_inputs(self, path: Path) -> str:
        sha = sha256_file(path)
        if self.call("GET", f"/inputs/{sha}", missing_ok=True) is None:
            with open(path, "rb") as handle:
                self.call("PUT", f"/inputs/{sha}", handle, "application/x-npz", length=path.stat().st_size,
                          timeout_s=3600)
        return sha

    def measure(self, request: WorkerRequest, timeout_s: float) -> tuple[WorkerOutcome, dict[str, Any]]:
        """The worker's outcome on the board and the board's provenance."""
        artifact, inputs = self.upload(Path(request.artifact)), self.put_inputs(Path(request.inputs))
        job = {"artifact": artifact, "inputs": inputs, "timeout_s": timeout_s,
               "request": request.model_dump(mode="json", exclude={"artifact", "inputs", "result", "parent_pid"})}
        reply = self.call("POST", "/measure", json.dumps(job).encode(), timeout_s=timeout_s + SLACK_S)
        return WorkerOutcome(**reply["outcome"]), {**reply["provenance"], "agent": self.url,
                                                   "agent_warnings": reply.get("warnings", [])}

    def deploy(self, artifact_dir: Path, runtime: str | None = None) -> dict[str, Any]:
        sha = self.upload(artifact_dir)
        return self.call("POST", "/deploy", json.dumps({"artifact": sha, "runtime": runtime}).encode(), timeout_s=600)

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}})
        return self.call("POST", "/predict", body.encode())

    def metrics(self) -> str:
        return self.call("GET", "/metrics")


def run_remote(remote: RemoteTransport, request: WorkerRequest, timeout_s: float) -> tuple[WorkerOutcome, dict]:
    """A remote profile's measurement: the outcome and the board's provenance, or the reason it failed (the
    sweep records it and goes on; a re-run measures it again)."""
    try:
        return AgentClient.of(remote).measure(request, timeout_s)
    except EdgeoptError as error:
        return WorkerOutcome(None, str(error), 0.0, 0.0), {"agent": remote.url}
