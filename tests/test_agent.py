"""The device agent, for real: `edgeopt agent serve` in a subprocess on loopback, a real ONNX export of the
shipped CNN, the host side through `edgeopt devices add` and `bench`."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the agent extra is not installed: pip install 'edgeopt[agent]'")
pytest.importorskip("uvicorn", reason="the agent extra is not installed: pip install 'edgeopt[agent]'")

from edgeopt.agent.client import AgentClient, AgentError  # noqa: E402
from edgeopt.agent.store import describe_directory  # noqa: E402
from edgeopt.benchmarks import BenchConfig, LatencyConfig, bench  # noqa: E402

EDGEOPT = str(Path(sys.executable).parent / "edgeopt")
TOKEN = "test-token-0123456789abcdef"
QUICK = BenchConfig(batch_sizes=[1], accuracy_samples=256, timeout_s=120,
                    latency=LatencyConfig(warmup_runs=5, warmup_seconds=0.1, min_runs=50, min_seconds=0.3,
                                          max_seconds=3, rounds=2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """`edgeopt agent serve` in its own process group, on a free loopback port."""

    def __init__(self, root: Path, profile: str = "cpu", token: str | None = TOKEN, port: int | None = None):
        self.root, self.port = root, port or free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = root / "store"
        args = [EDGEOPT, "agent", "serve", "--port", str(self.port), "--store", str(self.store), "--profile", profile]
        if token:
            token_file = root / "token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            args += ["--token-file", str(token_file)]
        self.log = open(root / f"agent-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "EDGEOPT_CACHE": str(root / "cache")})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (root / f"agent-{self.port}.log").read_text()
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("the agent did not come up")

    def client(self, token: str | None = TOKEN) -> AgentClient:
        return AgentClient(self.url, token)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def maps_torch(self) -> bool:
        """Whether libtorch is mapped into the agent process (torch was imported there)."""
        return "libtorch" in Path(f"/proc/{self.proc.pid}/maps").read_text()


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory):
    """The shipped CNN exported to ONNX (a real artifact, made once for this module)."""
    from edgeopt.core.models.zoo import load_zoo_model
    from edgeopt.export import export_artifact

    return export_artifact(load_zoo_model("cnn"), "onnx", tmp_path_factory.mktemp("export") / "cnn-onnx")


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """One agent for the module, under the emulated 1-core 512 MB profile."""
    server = Agent(tmp_path_factory.mktemp("agent"), profile="edge-1c-512m")
    yield server
    server.kill()


def stored_files(agent: Agent) -> list[Path]:
    return [p for p in agent.store.rglob("*") if p.is_file() and p.name != "deployed.json"]


def test_refuses_a_non_loopback_address_without_a_token(tmp_path):
    result = subprocess.run([EDGEOPT, "agent", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
                             "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "without --token-file" in result.stderr


def test_wrong_or_missing_token_is_401_and_nothing_is_stored(agent, onnx_cnn):
    assert json.loads(urllib.request.urlopen(agent.url + "/health").read()) == {"ok": True}
    before = stored_files(agent)
    for token in (None, "wrong-token-0123456789abcdef", TOKEN + "x"):
        client = agent.client(token)
        for call in (lambda: client.info(), lambda: client.upload(onnx_cnn.path), lambda: client.metrics(),
                     lambda: client.call("PUT", "/inputs/" + "0" * 64, b"x" * 10)):
            with pytest.raises(AgentError, match="401"):
                call()
    assert stored_files(agent) == before


def test_upload_rejects_tampered_truncated_and_escaping_names(agent, onnx_cnn, tmp_path):
    client = agent.client()
    sha = onnx_cnn.sha256
    plan = describe_directory(onnx_cnn.path)
    model = (onnx_cnn.path / "model.onnx").read_bytes()

    def begin(files=None, manifest=None):
        body = {"manifest": manifest or plan.manifest, "files": files or [f.model_dump() for f in plan.files]}
        return client.call("POST", f"/artifacts/{sha}", json.dumps(body).encode())

    assert begin()["missing"] == ["model.onnx"]
    with pytest.raises(AgentError, match="truncated"):
        client.call("PUT", f"/artifacts/{sha}/files/model.onnx", model[: len(model) // 2], "application/octet-stream")
    tampered = bytearray(model)
    tampered[len(model) // 2] ^= 0xFF
    with pytest.raises(AgentError, match="tampered"):
        client.call("PUT", f"/artifacts/{sha}/files/model.onnx", bytes(tampered), "application/octet-stream")
    with pytest.raises(AgentError, match="not uploaded"):
        client.call("POST", f"/artifacts/{sha}/commit")
    assert not (agent.store / "artifacts" / sha).exists()

    for name in ("../escape.txt", "/etc/passwd", "a/../../escape.txt", "..", ".hidden", "a\\..\\b"):
        files = [f.model_dump() for f in plan.files] + [{"name": name, "size": 1, "sha256": "0" * 64}]
        with pytest.raises(AgentError, match="400.*not allowed"):
            begin(files)
    with pytest.raises(AgentError, match="40[04]"):
        client.call("PUT", f"/artifacts/{sha}/files/..%2F..%2Fescape.txt", b"x", "application/octet-stream")
    edited = json.loads(plan.manifest)
    edited["labels"] = ["cat"] * 10  # a manifest that does not hash to the sha it claims
    with pytest.raises(AgentError, match="400"):
        begin(manifest=json.dumps(edited))
    assert not list(agent.root.rglob("escape.txt"))

    with pytest.raises(AgentError, match="413"):  # a body declared over the limit is refused before it is read
        client.call("POST", f"/artifacts/{sha}", b"{}", length=2 * 2**20)
    assert begin()["missing"] == ["model.onnx"]  # resumable: the manifest is kept, only the model is missing
    client.call("PUT", f"/artifacts/{sha}/files/model.onnx", model, "application/octet-stream")
    assert client.call("POST", f"/artifacts/{sha}/commit")["sha256"] == sha
    assert client.call("GET", f"/artifacts/{sha}")["name"] == "cnn"


def test_torch_artifacts_are_refused(agent):
    from edgeopt.core.models.zoo import load_zoo_model

    with pytest.raises(AgentError, match="do not run on the agent"):
        agent.client().upload(load_zoo_model("cnn").path)


def add_device(name: str, agent: Agent, monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from edgeopt.cli import app

    monkeypatch.setenv("EDGEOPT_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("BOARD_TOKEN", TOKEN)
    result = CliRunner().invoke(app, ["devices", "add", name, "--url", agent.url, "--token-env", "BOARD_TOKEN"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["devices", "--json"])
    profile = next(p for p in json.loads(listed.stdout) if p["name"] == name)
    assert profile["remote"]["url"] == agent.url and "token" not in json.dumps(profile["remote"]).replace(
        "token_env", "")


def test_bench_through_the_agent_matches_the_same_profile_locally(agent, onnx_cnn, monkeypatch, tmp_path):
    """A loopback agent under edge-1c-512m vs edge-1c-512m measured here: same accuracy on the same samples,
    medians within noise, the board's provenance, labelled emulated (the agent's profile is)."""
    from edgeopt.store import ResultStore

    add_device("board", agent, monkeypatch, tmp_path)
    agent.client().upload(onnx_cnn.path)
    calls = []
    original = AgentClient.call
    monkeypatch.setattr(AgentClient, "call", lambda self, method, path, *a, **k: (
        calls.append((method, path)), original(self, method, path, *a, **k))[1])
    with ResultStore(tmp_path / "results.db") as store:
        local, remote = (bench([onnx_cnn], devices=[device], config=QUICK, store=store)[0]
                         for device in ("edge-1c-512m", "board"))
    assert local.ok and remote.ok, (local.error, remote.error)
    print(f"\nmedian ms, batch 1: local {local.latency.median:.4f} "
          f"[{local.latency.median_ci_low:.4f}, {local.latency.median_ci_high:.4f}]; through the agent "
          f"{remote.latency.median:.4f} [{remote.latency.median_ci_low:.4f}, {remote.latency.median_ci_high:.4f}]")
    assert remote.accuracy == local.accuracy and remote.accuracy_samples == local.accuracy_samples == 256
    assert 0.5 < remote.latency.median / local.latency.median < 2.0
    assert remote.emulated and remote.device == "board"
    assert remote.provenance["agent"] == agent.url
    assert remote.provenance["agent_profile"]["name"] == "edge-1c-512m"
    assert remote.peak_rss_mb and remote.peak_rss_mb < 512
    assert ("GET", f"/artifacts/{onnx_cnn.sha256}") in calls
    assert ("POST", f"/artifacts/{onnx_cnn.sha256}") not in calls  # the agent has it: no upload
    assert not agent.maps_torch()


def test_predict_and_metrics_count_what_was_sent(agent, onnx_cnn, fashion, monkeypatch, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    from typer.testing import CliRunner

    from edgeopt.cli import app
    from edgeopt.core.preprocess import load_preprocessor
    from edgeopt.runtimes import load_runtime

    add_device("served", agent, monkeypatch, tmp_path)
    result = CliRunner().invoke(app, ["deploy", str(onnx_cnn.path), "--device", "served", "--json"])
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.stdout)
    assert deployed["version"] == onnx_cnn.sha256[:12] and deployed["runtime"] == "onnxruntime"
    assert deployed["predict"] == agent.url + "/predict"
    client = agent.client()
    pixels = load_preprocessor(onnx_cnn.path, onnx_cnn.preprocess)(fashion.test.inputs[:8])["pixel_values"]
    with load_runtime(onnx_cnn) as session:
        expected = session.run({"pixel_values": pixels}).argmax(axis=1).tolist()

    json_replies = [client.predict({"pixel_values": pixels[i:i + 2]}) for i in range(0, 8, 2)]
    assert [p for r in json_replies for p in r["predicted"]] == expected
    buffer = io.BytesIO()
    np.savez(buffer, pixel_values=pixels)
    npz_reply = client.call("POST", "/predict", buffer.getvalue(), "application/x-npz")
    assert npz_reply["predicted"] == expected
    for bad in ({"pixel_values": pixels[:, :, :5]}, {"wrong_name": pixels}):
        with pytest.raises(AgentError, match="400"):
            client.predict(bad)

    text = client.metrics()

    def value(line_start: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))

    version = {"model": "cnn", "version": onnx_cnn.sha256[:12]}

    def value(sample: str, **labels) -> float:
        return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                   if s.name == sample and {**version, **labels}.items() <= s.labels.items())

    assert value("edgeopt_predict_requests_total") == 7
    assert value("edgeopt_predict_errors_total") == value("edgeopt_predict_errors_total", reason="bad input") == 2
    assert value("edgeopt_predict_samples_total") == 16
    assert value("edgeopt_predict_latency_seconds_count") == 5
    assert value("edgeopt_predicted_class_total") == 16
    assert all(value("edgeopt_predicted_class_total", label=fashion.classes[c]) == expected.count(c) * 2
               for c in set(expected))
    assert value("edgeopt_model_info", runtime="onnxruntime", format="onnx", precision="fp32") == 1
    assert not agent.maps_torch()


def test_a_killed_agent_fails_its_row_the_sweep_goes_on_and_a_rerun_completes(onnx_cnn, monkeypatch, tmp_path):
    import psutil

    from edgeopt.store import ResultStore

    first = Agent(tmp_path / "a", profile="cpu-1t")
    try:
        add_device("flaky", first, monkeypatch, tmp_path)
        slow = QUICK.model_copy(update={"latency": QUICK.latency.model_copy(
            update={"min_seconds": 8, "max_seconds": 8, "rounds": 1})})
        rows: list = []

        def sweep_in_background():
            with ResultStore(tmp_path / "results.db") as store:
                rows.extend(bench([onnx_cnn], devices=["flaky", "cpu-1t"], config=slow, store=store))

        sweep = threading.Thread(target=sweep_in_background)
        sweep.start()
        deadline = time.monotonic() + 120
        while not psutil.Process(first.proc.pid).children(recursive=True):  # the worker is measuring
            assert time.monotonic() < deadline and sweep.is_alive()
            time.sleep(0.2)
        time.sleep(1)
        first.kill()
        sweep.join(timeout=300)
    finally:
        first.kill()
    by_device = {r.device: r for r in rows}
    assert by_device["flaky"].status == "failed" and "device agent" in by_device["flaky"].error
    assert by_device["cpu-1t"].ok  # the sweep went on

    second = Agent(tmp_path / "a", profile="cpu-1t", port=first.port)  # the same board comes back
    try:
        with ResultStore(tmp_path / "results.db") as store:
            again = bench([onnx_cnn], devices=["flaky", "cpu-1t"], config=slow, store=store)
            assert [(r.device, r.status) for r in again] == [("flaky", "ok")]  # only what was missing
            assert store.has(again[0].candidate_id, 1)
    finally:
        second.kill()


def test_inputs_are_stored_by_hash(agent, tmp_path):
    client = agent.client()
    data = tmp_path / "inputs.npz"
    np.savez(data, labels=np.arange(3))
    sha = client.put_inputs(data)
    assert sha == hashlib.sha256(data.read_bytes()).hexdigest()
    with pytest.raises(AgentError, match="does not match"):
        client.call("PUT", "/inputs/" + "1" * 64, data.read_bytes(), "application/x-npz")


def test_tls(onnx_cnn, tmp_path):
    """--tls-cert/--tls-key serve https; the host checks the agent against the CA file it was given."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)
    proc = subprocess.Popen([EDGEOPT, "agent", "serve", "--port", str(port), "--token-file", str(tmp_path / "token"),
                             "--store", str(tmp_path / "store"), "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        client = AgentClient(f"https://127.0.0.1:{port}", TOKEN, ca_file=str(cert))
        deadline = time.monotonic() + 180
        while True:
            try:
                assert client.info()["profile"]["name"] == "cpu"
                break
            except AgentError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.5)
        with pytest.raises(AgentError, match="unreachable"):  # an https agent does not answer plain http
            AgentClient(f"http://127.0.0.1:{port}", TOKEN).info()
        with pytest.raises(AgentError, match="CERTIFICATE_VERIFY_FAILED"):  # nor a host that does not trust it
            AgentClient(f"https://127.0.0.1:{port}", TOKEN).info()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_run_config_plans_a_remote_device_with_the_runtimes_of_its_board(monkeypatch, tmp_path):
    """`devices: [board]` in a run config: candidates for what the board's agent runs, a note for the rest."""
    import yaml

    from edgeopt.config import load_config
    from edgeopt.pipeline import make_plan

    monkeypatch.setenv("EDGEOPT_CONFIG", str(tmp_path / "config"))
    (tmp_path / "config" / "profiles").mkdir(parents=True)
    (tmp_path / "config" / "profiles" / "board.yaml").write_text(yaml.safe_dump({
        "name": "board", "remote": {"url": "http://127.0.0.1:9", "token_env": "BOARD_TOKEN",
                                    "board": {"runtimes": {"onnxruntime": "1.32.0", "openvino": "2026.4.1"}}}}))
    config = load_config({"output": str(tmp_path / "out"), "devices": ["board", "cpu-1t"], "batch_sizes": [1],
                          "models": {"cnn": {"zoo": "cnn", "recipes": [
                              {"name": "fp32", "runtimes": ["torch", "onnxruntime", "openvino"]}]}}})
    plan = make_plan(config)
    assert sorted((c.runtime, c.device) for c in plan.candidates) == [
        ("onnxruntime", "board"), ("onnxruntime", "cpu-1t"), ("openvino", "board"), ("openvino", "cpu-1t"),
        ("torch", "cpu-1t")]
    assert any("torch on board" in note and "127.0.0.1:9" in note for note in plan.notes)
