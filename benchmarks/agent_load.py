"""Load on the device agent's /predict against the bare runtime, on this machine (loopback only).

    python benchmarks/agent_load.py ARTIFACT_DIR [--concurrency 1,4,16] [--requests 2000] [--batch 1]

Starts `edgeopt agent serve` on a free loopback port with a fresh token, deploys the artifact, then times:
the bare runtime in this process (the same session.run the agent calls, one thread and N threads), and
/predict with N client threads, each on its own keep-alive connection, sending real test-split samples as
JSON, and /health (the HTTP stack alone, no model). Prints throughput and p50/p99 latency side by side, and
checks that /metrics counted every /predict request.
A benchmark, not a test: the loops are bounded by --requests and stop on their own.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(root: Path, token: str) -> tuple[subprocess.Popen, str]:
    (root / "token").write_text(token)
    (root / "token").chmod(0o600)
    port = free_port()
    edgeopt = str(Path(sys.executable).parent / "edgeopt")
    proc = subprocess.Popen([edgeopt, "agent", "serve", "--port", str(port), "--token-file", str(root / "token"),
                             "--store", str(root / "store")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the agent did not start")


def timed_calls(call, count: int, threads: int) -> tuple[list[float], float]:
    """`count` calls spread over `threads` threads; per-call latencies (ms) and the wall time (s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    share = [count // threads + (i < count % threads) for i in range(threads)]

    def worker(n: int) -> None:
        state = call()  # per-thread set-up (a connection), then the timed calls
        mine = []
        for _ in range(n):
            started = time.perf_counter()
            state()
            mine.append((time.perf_counter() - started) * 1e3)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in share]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)

    from edgeopt.agent.client import AgentClient
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.data import dataset_of
    from edgeopt.core.preprocess import load_preprocessor
    from edgeopt.runtimes import load_runtime

    artifact = Artifact.load(args.artifact)
    inputs = load_preprocessor(artifact.path, artifact.preprocess)(dataset_of(artifact).test.inputs[:args.batch])
    body = json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}}).encode()
    token = secrets.token_urlsafe(32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeopt-agent-load-") as tmp:
        proc, url = start_agent(Path(tmp), token)
        try:
            client = AgentClient(url, token)
            deployed = client.deploy(artifact.path)
            session = load_runtime(artifact, deployed["runtime"])
            host, port = url.removeprefix("http://").split(":")

            def bare():
                return lambda: session.run(inputs)

            def over_http(method: str, path: str, payload: bytes | None):
                def connect():
                    connection = http.client.HTTPConnection(host, int(port), timeout=60)
                    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

                    def send():
                        connection.request(method, path, payload, headers)
                        reply = connection.getresponse()
                        reply.read()
                        assert reply.status == 200, reply.status
                    return send
                return connect

            sent = 0
            for threads in [int(c) for c in args.concurrency.split(",")]:
                for name, call in (("bare runtime", bare), ("/predict", over_http("POST", "/predict", body)),
                                   ("/health (HTTP)", over_http("GET", "/health", None))):
                    timed_calls(call, min(50, args.requests), threads)  # warm-up
                    latencies, wall = timed_calls(call, args.requests, threads)
                    if name == "/predict":
                        sent += args.requests + min(50, args.requests)
                    p50, p99 = np.percentile(latencies, [50, 99])
                    rows.append((name, threads, args.requests / wall, p50, p99))
            counted = sum(float(line.rsplit(" ", 1)[1]) for line in client.metrics().splitlines()
                          if line.startswith("edgeopt_predict_requests_total{"))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    print(f"{artifact.name} ({artifact.format}, {artifact.precision}), batch {args.batch}, {args.requests} "
          f"requests per row, agent on loopback ({os.cpu_count()} CPUs shared by client and server)")
    print(f"{'':15} {'threads':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, threads, rate, p50, p99 in rows:
        print(f"{name:15} {threads:>7} {rate:>9.0f} {p50:>8.3f} {p99:>8.3f}")
    print(f"/metrics counted {counted:.0f} /predict requests; sent {sent}: {'match' if counted == sent else 'MISMATCH'}")


if __name__ == "__main__":
    main()
