"""`bench(...)`: measure artifacts x runtimes x device profiles, each candidate in its own process.

Flow per candidate: prepare real inputs from the test split (once per preprocessing), run the worker under
the profile, turn its result into one Measurement per batch size, add fidelity against the nearest FP32
ancestor, store the rows in one transaction. Candidates already in the store are skipped (resume).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.core.artifacts import MANIFEST, Artifact, Family, Precision
from edgeopt.core.errors import EdgeoptError, InvalidInput
from edgeopt.core.hashing import sha256_json, sha256_tree

from .isolation import WorkerOutcome, run_isolated
from .latency import LatencyConfig, summarize, throughput
from .profiles import DeviceProfile, get_profile
from .results import ArtifactInfo, LatencyStats, Measurement
from .worker import ACCURACY_KEY, LATENCY_KEY, WorkerRequest

ACCURACY_BATCH = 64


class BenchConfig(BaseModel):
    """What to measure and how long to try."""

    model_config = ConfigDict(extra="forbid")
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    accuracy_samples: int | None = Field(2000, ge=1, description="seeded subset of the test split for accuracy "
                                                                 "and fidelity; None = the whole split")
    seed: int = 0
    timeout_s: float = Field(900, gt=0, description="per candidate: a hang is killed and recorded")
    resume: bool = Field(True, description="skip candidates the store already has (status ok)")


def measurement_key(runtime: str, profile: DeviceProfile, config: BenchConfig, host: dict | None = None) -> dict:
    """Everything besides the artifact that shapes a measurement: the measuring host (this one unless `host`,
    a Ray node's, is given), the runtime's version, the profile's content and every measurement setting (batch
    sizes are per row, the timeout shapes nothing; where a Ray task runs is in `host`). Its hash is part of
    every candidate id, `bench` and `run` alike, so a change re-measures. A remote profile measures on its
    board (named in the profile) with the board's runtime, not this host's."""
    from edgeopt.core import environment

    here = profile.remote is None
    return {"host": (host or environment.host_description()) if here else None, "runtime": runtime,
            "runtime_version": environment.runtime_version(runtime) if here else None,
            "profile": profile.model_dump(mode="json", exclude={"source", "description", "ray_resource"}),
            "settings": config.model_dump(mode="json", exclude={"batch_sizes", "timeout_s", "resume"})}


@dataclass(frozen=True)
class Candidate:
    """One artifact on one runtime under one profile. `key` is the hash of its measurement_key."""

    artifact: Artifact
    runtime: str
    profile: DeviceProfile
    key: str = ""

    @property
    def id(self) -> str:
        """`stable-part#hash`: the part before # names what is measured, the hash how and where."""
        return f"{self.artifact.name}-{self.artifact.sha256[:10]}/{self.runtime}/{self.profile.name}#{self.key[:12]}"


def plan(artifacts: Iterable[Artifact], runtimes: list[str] | None, profiles: list[DeviceProfile],
         config: BenchConfig, host: Callable[[DeviceProfile], dict | None] | None = None) -> list[Candidate]:
    """Every artifact on every requested runtime that can run its format (its default runtime if none given),
    on every profile; ancestors before descendants, so an FP32 parent's predictions are ready for fidelity.
    `host` gives the measuring host of a profile (an executor's), this one by default."""
    from edgeopt.runtimes import DEFAULT_RUNTIME, get_runtime_class

    candidates = []
    for artifact in sorted(artifacts, key=lambda a: len(a.recipe)):
        names = [DEFAULT_RUNTIME[artifact.format]] if not runtimes else [
            r for r in runtimes if artifact.format in get_runtime_class(r).formats]
        if not names:
            raise InvalidInput(f"{artifact.path}: none of the runtimes {', '.join(runtimes or [])} runs "
                               f"{artifact.format} artifacts")
        candidates += [Candidate(artifact, r, p, sha256_json(measurement_key(r, p, config,
                                                                             host(p) if host else None)))
                       for r in names for p in profiles]
    return candidates


# ---------------------------------------------------------------- inputs


def pad_to(batch: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    """Right-pad token tensors (pad id 0, mask 0) so every timed run has the deployment's fixed shape."""
    return {k: np.pad(v[:, :length], ((0, 0), (0, max(0, length - v.shape[1])))) for k, v in batch.items()}


def prepare_inputs(artifact: Artifact, config: BenchConfig, out: Path) -> Path:
    """Real test-split inputs in one .npz: one timed batch per batch size (text padded to the encoder's
    max_len) and the seeded accuracy subset in batches of 64, with labels."""
    from edgeopt.core.data import dataset_of
    from edgeopt.core.preprocess import load_preprocessor

    test = dataset_of(artifact).test
    preprocess = load_preprocessor(artifact.path, artifact.preprocess)
    arrays: dict[str, np.ndarray] = {}
    order = np.random.default_rng(config.seed).permutation(len(test))
    max_len = artifact.preprocess.get("max_len")
    for batch_size in config.batch_sizes:
        index = order[np.arange(batch_size) % len(order)]
        raw = test.inputs[index] if isinstance(test.inputs, np.ndarray) else [test.inputs[i] for i in index]
        batch = preprocess(raw)
        if artifact.family != Family.CNN and max_len:
            batch = pad_to(batch, int(max_len))
        arrays.update({f"{LATENCY_KEY}/{batch_size}/{k}": v for k, v in batch.items()})
    subset = test.subset(config.accuracy_samples, config.seed)
    order = np.arange(len(subset))
    if artifact.family != Family.CNN:  # texts by length: each batch is padded only to its own longest text
        order = np.argsort([len(text) for text in subset.inputs], kind="stable")
    inputs = subset.inputs[order] if isinstance(subset.inputs, np.ndarray) else [subset.inputs[i] for i in order]
    for i, start in enumerate(range(0, len(subset), ACCURACY_BATCH)):
        chunk = inputs[start:start + ACCURACY_BATCH]
        arrays.update({f"{ACCURACY_KEY}/{i}/{k}": v for k, v in preprocess(chunk).items()})
    arrays["labels"] = np.asarray(subset.labels, dtype=np.int64)[order]
    path = out / f"inputs-{inputs_key(artifact, config)[:16]}.npz"
    np.savez(path, **arrays)
    return path


def eval_key(artifact: Artifact, config: BenchConfig) -> str:
    """Artifacts with the same data set, preprocessing and accuracy subset see the same samples, so their
    predictions can be compared (fidelity)."""
    files = {name: sha256_tree(artifact.path / name) for name in artifact.preprocess.get("files", [])
             if (artifact.path / name).exists()}
    return sha256_json({"dataset": artifact.dataset.get("name"), "preprocess": artifact.preprocess, "files": files,
                        "samples": config.accuracy_samples, "seed": config.seed, "order": "texts by length"})


def inputs_key(artifact: Artifact, config: BenchConfig) -> str:
    """Identity of a prepared inputs file: the evaluation samples plus the timed batch sizes."""
    return sha256_json({"eval": eval_key(artifact, config), "batches": sorted(config.batch_sizes)})


# ---------------------------------------------------------------- lineage


@dataclass
class Lineage:
    """Known artifacts by sha256 (manifests only, not hashed): the benched ones, their siblings, the zoo."""

    known: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def around(cls, artifacts: Iterable[Artifact], references: Iterable[Path] = ()) -> "Lineage":
        from edgeopt.core.paths import BUNDLED_WEIGHTS_DIR, cache_dir

        lineage = cls()
        dirs: list[Path] = [Path(r) for r in references]
        for artifact in artifacts:
            dirs += [artifact.path, *sorted(p.parent for p in artifact.path.parent.glob(f"*/{MANIFEST}"))]
        dirs += [p.parent for root in (cache_dir() / "zoo", BUNDLED_WEIGHTS_DIR) for p in root.glob(f"*/{MANIFEST}")]
        for directory in dirs:
            manifest = Path(directory) / MANIFEST
            if manifest.exists():
                try:
                    sha = json.loads(manifest.read_text()).get("sha256")
                except ValueError:
                    continue
                if sha:
                    lineage.known.setdefault(sha, Path(directory))
        return lineage

    def load(self, sha: str | None) -> Artifact | None:
        if sha and sha in self.known:
            return Artifact.load(self.known[sha], verify=False)
        return None

    def ancestors(self, artifact: Artifact) -> Iterable[Artifact]:
        seen, current = set(), artifact
        while current.parent and current.parent not in seen:
            seen.add(current.parent)
            current = self.load(current.parent)
            if current is None:
                return
            yield current

    def fp32_reference(self, artifact: Artifact) -> tuple[Artifact | None, str | None]:
        """The nearest FP32 ancestor, or why there is none."""
        if not artifact.parent:
            return None, None
        for ancestor in self.ancestors(artifact):
            if ancestor.precision == Precision.FP32:
                return Artifact.load(ancestor.path), None
        return None, (f"fidelity not measured: the FP32 ancestor of {artifact.name} (parent "
                      f"{artifact.parent[:12]}) was not found; pass its directory as a reference")

    def model_stats(self, artifact: Artifact) -> tuple[int | None, int | None]:
        """(params, macs): from the manifest, else an ancestor's (export and quantization keep the graph),
        else counted on the torch module."""
        for source in (artifact, *self.ancestors(artifact)):
            if source.metrics.get("macs") is not None:
                return source.metrics.get("params"), source.metrics["macs"]
        if artifact.format == "torch":
            from edgeopt.core.models.zoo import count_macs_params, load_module, preprocessor_of
            from edgeopt.core.data import dataset_of

            sample = preprocessor_of(artifact)(dataset_of(artifact).test.inputs[:2])
            macs, params = count_macs_params(load_module(artifact), sample)
            return params, macs
        return None, None


# ---------------------------------------------------------------- the sweep


def bench(artifacts: Iterable[Artifact | str | Path], runtimes: list[str] | None = None,
          devices: Iterable[str | DeviceProfile] = ("cpu",), config: BenchConfig | None = None,
          store=None, progress: Callable | None = None, references: Iterable[Path] = (),
          profile_dirs: list[Path] | None = None, on_result: Callable[[list[Measurement]], None] | None = None,
          executor=None) -> list[Measurement]:
    """Measure every artifact on each runtime and device profile; returns (and stores) the Measurements.

    `store` is an edgeopt.store.ResultStore (or None); `progress` a factory from edgeopt.core.progress;
    `executor` where the measurements run (edgeopt.executors; this machine by default). Already-stored
    candidates are skipped when config.resume (their rows are not returned).
    """
    from edgeopt.executors import MeasureJob, get_executor

    config = config or BenchConfig()
    executor = executor or get_executor()
    loaded = [a if isinstance(a, Artifact) else Artifact.load(a) for a in artifacts]
    profiles = [d if isinstance(d, DeviceProfile) else get_profile(d, profile_dirs) for d in devices]
    candidates = plan(loaded, runtimes, profiles, config, executor.host)
    results: list[Measurement] = []
    advance = progress("benchmarking", len(candidates)) if progress else None
    jobs = []
    for candidate in candidates:
        todo = [b for b in config.batch_sizes
                if not (config.resume and store is not None and store.has(candidate.id, b))]
        if todo:
            jobs.append(MeasureJob(candidate.id, candidate, config.model_copy(update={"batch_sizes": todo})))
        elif advance:
            advance()

    def done(job: MeasureJob, rows: list[Measurement]) -> None:
        if store is not None:
            store.add_many(rows)  # one transaction per candidate
        if on_result:
            on_result(rows)
        results.extend(rows)
        if advance:
            advance()

    executor.measure(jobs, done, tuple(references))
    return results


def measure_candidate(candidate: Candidate, config: BenchConfig, inputs_for, lineage: Lineage,
                      predictions: dict, host: dict, timeout_s: float) -> list[Measurement]:
    """Measure one candidate in `config.latency.rounds` fresh worker processes (the first also runs the
    accuracy subset) and turn them into one Measurement per batch size."""
    artifact, profile = candidate.artifact, candidate.profile
    cores, warnings = profile.pinned_cores()
    outcomes: list[WorkerOutcome] = []
    try:
        _, input_file = inputs_for(artifact)
        key = eval_key(artifact, config)
    except EdgeoptError as error:  # no real inputs for this artifact: its failure, not the sweep's
        key, outcomes = "", [WorkerOutcome(None, f"inputs: {error}", 0.0, 0.0)]
    else:
        for index in range(config.latency.rounds):
            budget = max(1.0, timeout_s - sum(o.seconds for o in outcomes))  # later rounds share what is left
            outcome, board = run_worker(artifact, candidate.runtime, profile, input_file, config.batch_sizes,
                                        config.latency, accuracy=index == 0, timeout_s=budget)
            outcomes.append(outcome)
            host = {**host, **board}  # a board's provenance, when a board measured
            if outcome.error:
                break
    error = next((o.error for o in outcomes if o.error), None)
    result = outcomes[0].result or {}
    params, macs = lineage.model_stats(artifact)
    fidelity, reference = None, None
    if error is None:
        from edgeopt.runtimes import DEFAULT_RUNTIME

        mine = np.asarray(result["predictions"])
        if candidate.runtime == DEFAULT_RUNTIME[artifact.format] or (artifact.sha256, key) not in predictions:
            predictions[(artifact.sha256, key)] = mine  # a descendant is compared with its parent's own runtime
        ref, why = lineage.fp32_reference(artifact)
        if why:
            warnings.append(why)
        if ref is not None:
            reference = ref.sha256
            expected = reference_predictions(ref, key, config, inputs_for, predictions, timeout_s)
            if isinstance(expected, str):
                warnings.append(expected)
            else:
                fidelity = float((expected == mine).mean())
        if result.get("executed_precision") not in (None, str(artifact.precision)):
            warnings.append(f"{candidate.runtime} computed in {result['executed_precision']} (the artifact is "
                            f"{artifact.precision})")
        if profile.is_cuda and candidate.runtime != "torch":
            warnings.append(f"GPU memory not measured: {candidate.runtime} does not report it (torch only)")
        if not result.get("peak_per_batch"):
            warnings.append("peak memory per batch size not separable on this OS: each row has the peak of the "
                            "process up to that batch size")
    record = {**host, "threads": profile.threads, "cores": cores, "profile": profile.model_dump(),
              "runtime_version": result.get("runtime_version"), "load_seconds": result.get("load_seconds"),
              "baseline_rss_mb": result.get("baseline_rss_mb"), "load_peak_rss_mb": result.get("load_peak_rss_mb"),
              "accuracy_peak_rss_mb": result.get("accuracy_peak_rss_mb"),
              "observed_peak_rss_mb": max((o.observed_peak_mb for o in outcomes), default=0.0),
              "worker_seconds": sum(o.seconds for o in outcomes), "latency_config": config.latency.model_dump(),
              "accuracy_subset": {"split": "test", "samples": result.get("accuracy_samples"), "seed": config.seed},
              "inputs": "real test-split samples; text padded to the encoder's max_len for timing"}
    rows = []
    for batch_size in config.batch_sizes:
        per_round = [o.result["latency"][str(batch_size)] for o in outcomes if error is None]
        stats = (summarize(*(r["samples"] for r in per_round), noisy_spread=config.latency.noisy_spread)
                 if per_round else None)
        notes = list(warnings) + ([f"noisy timing: the median's interval reaches "
                                   f"±{(stats.median_ci_high - stats.median) / stats.median:.0%} of it "
                                   f"(above {config.latency.noisy_spread:.0%})"] if stats and stats.noisy else [])
        gpu = [r["gpu_peak_mb"] for r in per_round if r.get("gpu_peak_mb") is not None]
        peak = (max(r["peak_rss_mb"] for r in per_round) if per_round  # a failure: whatever peak was seen
                else result.get("peak_rss_mb") or max((o.observed_peak_mb for o in outcomes), default=0.0) or None)
        rows.append(Measurement(
            candidate_id=candidate.id, artifact=ArtifactInfo.of(artifact), runtime=candidate.runtime,
            device=profile.name, emulated=profile.emulated, batch_size=batch_size, latency=stats,
            throughput=throughput(batch_size, stats) if stats else None,
            peak_rss_mb=peak,
            gpu_peak_mb=max(gpu) if gpu else None, executed_precision=result.get("executed_precision"),
            size_mb=artifact.size_bytes / 1e6, params=params, macs=macs,
            accuracy=result.get("accuracy") if error is None else None,
            accuracy_samples=result.get("accuracy_samples"), fidelity=fidelity, fidelity_reference=reference,
            status="failed" if error else "ok", error=error, warnings=notes, provenance=record))
    return rows


def run_worker(artifact: Artifact, runtime: str, profile: DeviceProfile, inputs: Path, batch_sizes: list[int],
               latency: LatencyConfig, accuracy: bool, timeout_s: float) -> tuple[WorkerOutcome, dict]:
    """One round in a fresh worker process under the profile: here, or on the profile's board through its device
    agent (then also the board's provenance)."""
    cores, _ = profile.pinned_cores()
    request = WorkerRequest(artifact=str(artifact.path), runtime=runtime, device=profile.device,
                            threads=profile.threads, cores=cores, memory_mb=profile.memory_mb, inputs=str(inputs),
                            batch_sizes=batch_sizes, accuracy=accuracy, latency=latency,
                            trust_code=artifact.trust_code, result="")
    if profile.remote is None:
        return run_isolated(request, timeout_s), {}
    from edgeopt.agent.client import run_remote

    return run_remote(profile.remote, request, timeout_s)


def time_side_by_side(candidates: list[tuple[Artifact, str]], profile: DeviceProfile, batch_size: int,
                      latency: LatencyConfig, rounds: int, timeout_s: float = 600,
                      progress: Callable[[str], None] | None = None) -> list[LatencyStats | str]:
    """Time (artifact, runtime) pairs in turns: `rounds` rounds, each timing every pair once in a fresh worker.

    A change in the machine's load then falls on all of them alike, so their ratios hold where figures measured
    at different times do not. Returns per pair the latency statistics of its rounds, or why it failed."""
    import tempfile

    config = BenchConfig(batch_sizes=[batch_size], latency=latency, accuracy_samples=1)
    samples: list[list[list[float]] | str] = [[] for _ in candidates]
    one_round = latency.model_copy(update={"rounds": 1})
    with tempfile.TemporaryDirectory(prefix="edgeopt-side-by-side-") as tmp:
        inputs = [prepare_inputs(artifact, config, Path(tmp)) for artifact, _ in candidates]
        for index in range(rounds):
            for i, (artifact, runtime) in enumerate(candidates):
                if isinstance(samples[i], str):
                    continue
                if progress:
                    progress(f"side by side, round {index + 1}/{rounds}: {artifact.name} on {runtime}")
                outcome, _ = run_worker(artifact, runtime, profile, inputs[i], [batch_size], one_round,
                                        accuracy=False, timeout_s=timeout_s)
                if outcome.error:
                    samples[i] = outcome.error
                else:
                    samples[i].append(outcome.result["latency"][str(batch_size)]["samples"])
    return [s if isinstance(s, str) else summarize(*s, noisy_spread=latency.noisy_spread) for s in samples]


def reference_predictions(reference: Artifact, key: str, config: BenchConfig, inputs_for, predictions: dict,
                          timeout_s: float) -> np.ndarray | str:
    """The reference's predictions on the same inputs: from this sweep if it was measured, else one run of
    its default runtime on all cores (no profile: fidelity does not depend on the device)."""
    from edgeopt.runtimes import DEFAULT_RUNTIME

    if (reference.sha256, key) not in predictions:
        if eval_key(reference, config) != key:
            return f"fidelity not measured: {reference.name} uses different preprocessing than its descendant"
        _, path = inputs_for(reference)
        request = WorkerRequest(artifact=str(reference.path), runtime=DEFAULT_RUNTIME[reference.format],
                                inputs=str(path), trust_code=reference.trust_code, result="")
        outcome = run_isolated(request, timeout_s)
        if outcome.error:
            return f"fidelity not measured: the FP32 reference {reference.name} failed: {outcome.error}"
        predictions[(reference.sha256, key)] = np.asarray(outcome.result["predictions"])
    return predictions[(reference.sha256, key)]
