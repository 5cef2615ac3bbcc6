"""The deployed model behind /predict and what /metrics says about it.

The model runs in the agent's own process (one runtime session, loaded once), unlike measurements, which run
in a fresh worker each. Metrics live in the agent's own registry: requests, errors, latency, samples and a
count per predicted class, so a shift in what the model predicts shows on a dashboard.
"""
from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import InvalidInput

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NPZ_TYPES = ("application/x-npz", "application/octet-stream")


class Metrics:
    """The agent's Prometheus metrics (its own registry, so two agents in one process never mix)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("edgeopt_predict_requests", "/predict requests", ["model", "version"],
                                registry=self.registry)
        self.errors = Counter("edgeopt_predict_errors", "/predict requests that failed", ["model", "version", "reason"],
                              registry=self.registry)
        self.samples = Counter("edgeopt_predict_samples", "samples predicted", ["model", "version"],
                               registry=self.registry)
        self.latency = Histogram("edgeopt_predict_latency_seconds", "time in the runtime per /predict request",
                                 ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.classes = Counter("edgeopt_predicted_class", "samples predicted as each class",
                               ["model", "version", "label"], registry=self.registry)
        self.model = Gauge("edgeopt_model_info", "the deployed model (value 1)",
                           ["model", "version", "runtime", "format", "precision"], registry=self.registry)
        self.measurements = Counter("edgeopt_measurements", "measurements run", ["status"], registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Deployed:
    """One artifact loaded into one runtime; `predict` is safe to call from many threads."""

    def __init__(self, artifact: Artifact, runtime: str, threads: int | None, metrics: Metrics):
        from edgeopt.runtimes import RuntimeConfig, load_runtime

        self.artifact, self.metrics = artifact, metrics
        self.session = load_runtime(artifact, runtime, RuntimeConfig(threads=threads))
        self.version = artifact.sha256[:12]
        self.labels = {"model": artifact.name, "version": self.version}
        self.lock = threading.Lock() if runtime != "onnxruntime" else None  # ORT sessions are thread-safe
        metrics.model.clear()
        metrics.model.labels(**self.labels, runtime=self.session.name, format=str(artifact.format),
                             precision=str(artifact.precision)).set(1)

    def describe(self) -> dict[str, Any]:
        return {"artifact": self.artifact.sha256, "name": self.artifact.name, "version": self.version,
                "runtime": self.session.name, "inputs": [s.model_dump() for s in self.artifact.inputs],
                "labels": self.artifact.labels}

    def predict(self, body: bytes, content_type: str) -> dict[str, Any]:
        """Named input arrays (JSON `{"inputs": {...}}` or an npz) -> logits and the predicted classes."""
        from edgeopt.benchmarks.worker import conform

        self.metrics.requests.labels(**self.labels).inc()
        try:
            inputs = conform(parse_inputs(body, content_type), self.artifact.inputs)
            self.session.check_inputs(inputs)
            started = time.perf_counter()
            if self.lock is None:
                logits = self.session.run(inputs)
            else:
                with self.lock:
                    logits = self.session.run(inputs)
            self.metrics.latency.labels(**self.labels).observe(time.perf_counter() - started)
        except InvalidInput:
            self.metrics.errors.labels(**self.labels, reason="bad input").inc()
            raise
        except Exception:
            self.metrics.errors.labels(**self.labels, reason="runtime").inc()
            raise
        predicted = logits.argmax(axis=-1).astype(int).tolist()
        self.metrics.samples.labels(**self.labels).inc(len(predicted))
        names = self.artifact.labels or []
        for index in predicted:
            self.metrics.classes.labels(**self.labels, label=names[index] if index < len(names) else str(index)).inc()
        return {"model": self.artifact.name, "version": self.version, "logits": logits.tolist(),
                "predicted": predicted, "labels": [names[i] if i < len(names) else str(i) for i in predicted]}

    def close(self) -> None:
        self.session.close()


def parse_inputs(body: bytes, content_type: str) -> dict[str, np.ndarray]:
    """JSON `{"inputs": {"name": nested lists}}` or an npz of named arrays (never pickled objects)."""
    try:
        if content_type.split(";")[0].strip() in NPZ_TYPES:
            with np.load(io.BytesIO(body), allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        payload = json.loads(body)
        return {name: np.asarray(value) for name, value in payload["inputs"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise InvalidInput(f"/predict takes JSON {{\"inputs\": {{name: array}}}} or an npz of named arrays: "
                           f"{type(error).__name__}: {error}") from None
