"""`edgeopt agent serve` (on the board), `edgeopt devices add` and `edgeopt deploy` (on the host)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from . import bench
from .output import JSON_OPTION_HELP, console, console_err, emit

agent_app = typer.Typer(help="The device agent: runs on a board, measures with the same harness as the host, and "
                             "serves a deployed model with /predict and Prometheus /metrics.", no_args_is_help=True)
devices_app = typer.Typer(help="Device profiles.")
devices_app.callback(invoke_without_command=True)(bench.devices)  # `edgeopt devices` lists


@agent_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs "
                             "--token-file."),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bearer token (chmod "
                                              "600); every route but /health then needs it."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="TLS certificate (PEM) to serve https."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="TLS private key (PEM)."),
    profile: str = typer.Option("cpu", "--profile", help="Device profile the measurements run under (threads, "
                                "pinned cores, memory cap), e.g. edge-1c-512m to emulate a smaller board."),
    store: Optional[Path] = typer.Option(None, "--store", help="Where uploaded artifacts and inputs are kept "
                                         "(default: <cache>/agent)."),
    max_artifact_mb: int = typer.Option(2048, "--max-artifact-mb", min=1, help="Largest artifact accepted."),
    max_inputs_mb: int = typer.Option(256, "--max-inputs-mb", min=1, help="Largest measurement inputs accepted."),
) -> None:
    """Serve the device agent on this board until interrupted."""
    from edgeopt.benchmarks.profiles import get_profile
    from edgeopt.core.errors import BackendUnavailable, InvalidInput
    from edgeopt.core.paths import cache_dir

    try:
        import uvicorn

        from edgeopt.agent.security import check_bind, read_token
        from edgeopt.agent.server import AgentSettings, Limits, board_report, create_app
    except ImportError as error:
        raise BackendUnavailable(f"the agent needs its extra ({error.name} is missing): "
                                 "pip install 'edgeopt[agent]'") from None
    token = read_token(token_file) if token_file else None
    check_bind(host, token)
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together")
    chosen = get_profile(profile)
    if chosen.remote is not None:
        raise InvalidInput(f"--profile {profile}: a remote profile describes another board, not this one")
    board, provenance = board_report()
    mb = 2**20
    settings = AgentSettings(store=store or cache_dir() / "agent", token=token, profile=chosen, board=board,
                             provenance=provenance,
                             limits=Limits(artifact_bytes=max_artifact_mb * mb, inputs_bytes=max_inputs_mb * mb))
    app = create_app(settings)
    scheme = "https" if tls_cert else "http"
    console_err.print(f"edgeopt agent on {scheme}://{host}:{port} (profile {chosen.name}, store {settings.store}"
                      f"{', no token: loopback only' if token is None else ''})", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=tls_cert, ssl_keyfile=tls_key)


def devices_add(
    name: str = typer.Argument(..., help="Name of the new device profile (used with --device)."),
    url: str = typer.Option(..., "--url", help="The agent's address, e.g. http://pi.local:8765."),
    token_env: str = typer.Option(..., "--token-env", help="Environment variable that holds the agent's token "
                                  "(the token itself is never written to the profile)."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="CA certificate for an https agent."),
    force: bool = typer.Option(False, "--force", help="Replace a remote profile of the same name."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Add a real board: probe its agent's /info and write a remote device profile to your profile directory."""
    import yaml
    from pydantic import ValidationError

    from edgeopt.agent.client import AgentClient
    from edgeopt.benchmarks.profiles import BUNDLED_DIR, DeviceProfile, RemoteTransport, load_profile_file
    from edgeopt.core.errors import InvalidInput
    from edgeopt.core.paths import config_dir

    try:
        remote = RemoteTransport(url=url, token_env=token_env, ca_file=str(ca_file) if ca_file else None)
        DeviceProfile(name=name)
    except ValidationError as error:
        raise InvalidInput(f"devices add: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}") from None
    path = config_dir() / "profiles" / f"{name}.yaml"
    if (BUNDLED_DIR / f"{name}.yaml").exists():
        raise InvalidInput(f"{name}: a bundled profile has that name; choose another")
    if path.exists() and not (force and load_profile_file(path).remote is not None):
        raise InvalidInput(f"{path}: exists; pass --force to replace it (only a remote profile is replaced)")
    info = AgentClient.of(remote).info()
    remote.board = board_summary(info)
    cpu, agent_profile = info["board"]["cpu"], info["profile"]
    profile = DeviceProfile(
        name=name, device="cpu", emulated=agent_profile["emulated"], remote=remote,
        description=f"{cpu['model']} ({cpu['arch']}, {cpu['logical_cores']} cores, "
                    f"{cpu['memory_bytes'] / 2**30:.1f} GiB) through the agent at {url}, "
                    f"its profile {agent_profile['name']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude={"source"}, exclude_none=True),
                                   sort_keys=False))
    emit({"profile": str(path), **profile.model_dump(mode="json", exclude={"source"})}, as_json,
         lambda data: console.print(f"added remote device [bold]{name}[/] -> {path}\n{profile.description}",
                                    highlight=False))


devices_app.command("add")(devices_add)


def board_summary(info: dict[str, Any]) -> dict[str, Any]:
    """What of /info describes the board's measurements (kept in the profile, part of the measurement key)."""
    cpu, profile = info["board"]["cpu"], info["profile"]
    return {"cpu_model": cpu["model"], "arch": cpu["arch"], "logical_cores": cpu["logical_cores"],
            "memory_bytes": cpu["memory_bytes"], "isa": sorted(k for k, v in cpu["isa"].items() if v),
            "runtimes": {name: r["version"] for name, r in info["board"]["runtimes"].items() if r["ok"]},
            "agent_profile": {k: profile[k] for k in ("name", "device", "threads", "cores", "memory_mb", "emulated")}}


def deploy(
    artifact: Path = typer.Argument(..., help="Artifact directory (ONNX or OpenVINO) to serve."),
    device: str = typer.Option(..., "--device", "-d", help="A remote device profile (see `edgeopt devices`)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime on the board (default: the "
                                          "artifact format's)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Put an artifact behind a board's /predict (uploaded unless the agent has it); /metrics then watches it."""
    from edgeopt.agent.client import AgentClient
    from edgeopt.benchmarks.profiles import get_profile
    from edgeopt.core.errors import InvalidInput

    profile = get_profile(device)
    if profile.remote is None:
        raise InvalidInput(f"--device {device}: not a remote device; add one with `edgeopt devices add`")
    deployed = AgentClient.of(profile.remote).deploy(artifact, runtime)
    emit({**deployed, "predict": f"{profile.remote.url}/predict", "metrics": f"{profile.remote.url}/metrics"},
         as_json, lambda d: console.print(f"{d['name']} ({d['version']}, {d['runtime']}) serves on {d['predict']}; "
                                          f"metrics on {d['metrics']}", highlight=False))
