"""The agent's HTTP API (FastAPI). Every route but /health needs the bearer token.

    GET  /health                          liveness, no token
    GET  /info                            the board: doctor report, provenance, the agent's profile
    GET  /artifacts/{sha}                 200 when the agent has the artifact (the host then skips the upload)
    POST /artifacts/{sha}                 start or resume an upload: manifest + file list -> files still missing
    PUT  /artifacts/{sha}/files/{name}    one file's bytes (size and sha256 checked)
    POST /artifacts/{sha}/commit          verify the whole artifact and store it
    PUT  /inputs/{sha}                    measurement inputs (npz), stored by sha256
    POST /measure                         a worker request -> the worker's outcome, one at a time
    POST /deploy                          load an artifact behind /predict
    POST /predict                         JSON or npz inputs -> logits and classes
    GET  /metrics                         Prometheus exposition
"""
from __future__ import annotations

import datetime as dt
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from edgeopt.benchmarks.isolation import run_isolated
from edgeopt.benchmarks.profiles import DeviceProfile
from edgeopt.benchmarks.worker import WorkerRequest
from edgeopt.core.errors import EdgeoptError, InvalidInput

from .security import BearerAuth, read_body
from .serving import Deployed, Metrics
from .store import AGENT_RUNTIMES, SHA256, ArtifactStore, UploadPlan, check_sha

MB = 2**20
DEPLOYED = "deployed.json"


@dataclass
class Limits:
    """Request size limits (bytes) and the longest a measurement may take."""

    json_bytes: int = 1 * MB
    artifact_bytes: int = 2048 * MB
    inputs_bytes: int = 256 * MB
    predict_bytes: int = 16 * MB
    measure_timeout_s: float = 3600


@dataclass
class AgentSettings:
    """What `edgeopt agent serve` hands the app: where to keep things, the token, the board's description."""

    store: Path
    token: str | None
    profile: DeviceProfile
    board: dict[str, Any] = field(default_factory=dict)  # the doctor report, made once at start-up
    provenance: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


class MeasureRequest(BaseModel):
    """A host's worker request; the artifact and inputs are named by sha256, the agent's profile decides where
    it runs (threads, cores, memory cap), and the rest passes to the same worker unchanged."""

    model_config = ConfigDict(extra="forbid")
    artifact: str = Field(pattern=SHA256.pattern)
    inputs: str = Field(pattern=SHA256.pattern)
    timeout_s: float = Field(gt=0)
    request: dict[str, Any]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact: str = Field(pattern=SHA256.pattern)
    runtime: str | None = None


def board_report() -> tuple[dict[str, Any], dict[str, Any]]:
    """The board's own description (CPU, versions, the runtimes installed) and provenance, without importing torch."""
    from edgeopt.core.environment import cpu_info, package_versions, provenance
    from edgeopt.runtimes import runtime_report

    runtimes = {name: r for name, r in runtime_report(list(AGENT_RUNTIMES)).items() if r["ok"]}  # installed here
    gpus = sorted({d for r in runtimes.values() for d in r["devices"] if d.lower().startswith(("cuda", "gpu"))})
    board = {"cpu": cpu_info(), "versions": package_versions(), "runtimes": runtimes}
    return board, provenance(gpus=gpus)


def create_app(settings: AgentSettings) -> FastAPI:
    store = ArtifactStore(settings.store, settings.limits.artifact_bytes, settings.limits.inputs_bytes)
    metrics = Metrics()
    state: dict[str, Deployed | None] = {"deployed": None}
    measuring, deploying = threading.Lock(), threading.Lock()
    limits, profile = settings.limits, settings.profile
    app = FastAPI(title="edgeopt agent", docs_url=None, redoc_url=None, openapi_url=None)
    auth = [Depends(BearerAuth(settings.token))]

    @app.exception_handler(EdgeoptError)
    async def user_error(request: Request, error: EdgeoptError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    async def json_body(request: Request, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(await read_body(request, limits.json_bytes))
        except ValidationError as error:
            raise HTTPException(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                               for e in error.errors())) from None

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/info", dependencies=auth)
    def info() -> dict:
        deployed = state["deployed"]
        return {"board": settings.board, "provenance": settings.provenance, "profile": profile.model_dump(),
                "runtimes": list(settings.board.get("runtimes", {})), "artifacts": store.artifacts(),
                "deployed": deployed.describe() if deployed else None,
                "limits": asdict(limits)}

    @app.get("/artifacts/{sha}", dependencies=auth)
    def has_artifact(sha: str) -> dict:
        if not store.has(check_sha(sha)):
            raise HTTPException(404, f"no artifact {sha[:12]}… here")
        return {"sha256": sha, "name": store.load(sha).name}

    @app.post("/artifacts/{sha}", dependencies=auth)
    async def begin_upload(sha: str, request: Request) -> dict:
        plan = await json_body(request, UploadPlan)
        return {"missing": store.begin(sha, plan)}

    @app.put("/artifacts/{sha}/files/{name:path}", dependencies=auth)
    async def upload_file(sha: str, name: str, request: Request) -> dict:
        incoming = store.receive(sha, name)
        try:
            async for chunk in request.stream():
                incoming.write(chunk)
        except BaseException:
            incoming.abort()
            raise
        incoming.finish()
        return {"stored": name}

    @app.post("/artifacts/{sha}/commit", dependencies=auth)
    def commit(sha: str) -> dict:
        artifact = store.commit(sha)
        return {"sha256": artifact.sha256, "name": artifact.name}

    @app.get("/inputs/{sha}", dependencies=auth)
    def has_inputs(sha: str) -> dict:
        if not store.inputs_path(sha).exists():
            raise HTTPException(404, "no such inputs")
        return {"sha256": sha}

    @app.put("/inputs/{sha}", dependencies=auth)
    async def upload_inputs(sha: str, request: Request) -> dict:
        check_sha(sha)
        store.put_inputs(sha, await read_body(request, limits.inputs_bytes))
        return {"sha256": sha}

    def run_measurement(job: MeasureRequest) -> dict:
        if not store.has(job.artifact):
            raise HTTPException(404, f"no artifact {job.artifact[:12]}… here: upload it first")
        if not store.inputs_path(job.inputs).exists():
            raise HTTPException(404, f"no inputs {job.inputs[:12]}… here: upload them first")
        cores, notes = profile.pinned_cores()
        try:
            request = WorkerRequest.model_validate({
                **job.request, "artifact": str(store.artifact_dir(job.artifact)),
                "inputs": str(store.inputs_path(job.inputs)), "device": profile.device, "threads": profile.threads,
                "cores": cores, "memory_mb": profile.memory_mb, "trust_code": False, "result": ""})
        except ValidationError as error:
            raise HTTPException(422, f"worker request: {error.errors()[0]['msg']}") from None
        if request.runtime not in AGENT_RUNTIMES:
            raise InvalidInput(f"runtime {request.runtime!r} does not run on the agent; it runs "
                               f"{', '.join(AGENT_RUNTIMES)}")
        with measuring:  # one at a time: measurements must not disturb each other
            outcome = run_isolated(request, min(job.timeout_s, limits.measure_timeout_s))
        metrics.measurements.labels(status="failed" if outcome.error else "ok").inc()
        return {"outcome": asdict(outcome), "warnings": notes,
                "provenance": {**settings.provenance, "threads": profile.threads, "cores": cores,
                               "agent_profile": profile.model_dump(),
                               "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}

    @app.post("/measure", dependencies=auth)
    async def measure(request: Request) -> dict:
        job = await json_body(request, MeasureRequest)
        return await run_in_threadpool(run_measurement, job)

    def deploy_artifact(job: DeployRequest) -> dict:
        if not store.has(job.artifact):
            raise HTTPException(404, f"no artifact {job.artifact[:12]}… here: upload it first")
        artifact = store.load(job.artifact)
        from edgeopt.runtimes import DEFAULT_RUNTIME

        runtime = job.runtime or DEFAULT_RUNTIME[artifact.format]
        if runtime not in AGENT_RUNTIMES:
            raise InvalidInput(f"runtime {runtime!r} does not run on the agent")
        with deploying:
            new = Deployed(artifact, runtime, profile.threads, metrics)
            old, state["deployed"] = state["deployed"], new
            (settings.store / DEPLOYED).write_text(job.model_copy(update={"runtime": runtime}).model_dump_json())
        if old is not None:
            old.close()
        return new.describe()

    @app.post("/deploy", dependencies=auth)
    async def deploy(request: Request) -> dict:
        job = await json_body(request, DeployRequest)
        return await run_in_threadpool(deploy_artifact, job)

    @app.post("/predict", dependencies=auth)
    async def predict(request: Request) -> dict:
        deployed = state["deployed"]
        if deployed is None:
            raise HTTPException(409, "no model deployed: `edgeopt deploy ARTIFACT --device NAME`")
        body = await read_body(request, limits.predict_bytes)
        return await run_in_threadpool(deployed.predict, body, request.headers.get("content-type", ""))

    @app.get("/metrics", dependencies=auth)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    saved = settings.store / DEPLOYED
    if saved.exists():  # the model deployed before a restart comes back; a broken one leaves /predict empty
        try:
            deploy_artifact(DeployRequest.model_validate_json(saved.read_text()))
        except (EdgeoptError, HTTPException, ValidationError) as error:
            warnings.warn(f"the model deployed before the restart did not load again: {error}", stacklevel=1)
    return app
