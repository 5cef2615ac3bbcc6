"""Parity: run an exported artifact and its parent on the same real test inputs and compare the logits.

Like Optimum's `validate_model_outputs`, with two parts: the dynamic batch (and sequence) axes case by case
(shape, NaN, largest logit error), and top-1 agreement over `ExportSpec.parity_samples` test samples at the
longest parity sequence length (texts whole, as deployed: a snippet cut to 5 tokens checks the dynamic axis, not
what a classifier will be asked), where flips of near-tied parent logits are reported apart from clear
disagreements (one sample whose two logits almost tie says nothing about a quantized model). Thresholds come from
the family's ExportSpec per precision and are stated in the report. OpenVINO runs with INFERENCE_PRECISION_HINT=f32
so that what is measured is the export, not the CPU's bf16 default; TensorRT runs on the first CUDA GPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.core.artifacts import Artifact
from edgeopt.core.data import dataset_of
from edgeopt.core.errors import ParityError
from edgeopt.core.progress import ProgressFactory
from edgeopt.runtimes import DEFAULT_RUNTIME, RuntimeConfig, load_runtime

from .specs import Tolerance, spec_for

CHUNK = 32  # agreement samples per batch
PARITY_CONFIGS = {"openvino": {"precision_hint": "f32"}, "tensorrt": {"device": "cuda"}}


def parity_config(artifact: Artifact, runtime: str | None) -> RuntimeConfig:
    """fp32 compute on OpenVINO (its CPU default may be bf16), TensorRT on a GPU; other runtimes' defaults."""
    return RuntimeConfig(**PARITY_CONFIGS.get(runtime or DEFAULT_RUNTIME[artifact.format], {}))


def verify_parity(child: Artifact, parent: Artifact, *, runtime: str | None = None,
                  reference_runtime: str | None = None, tolerance: Tolerance | None = None,
                  samples: int | None = None, raise_on_failure: bool = True,
                  progress: ProgressFactory | None = None) -> dict[str, Any]:
    """Compare `child` (through `runtime`, default: its format's) with `parent` (torch for torch artifacts).

    Returns the report stored in `child.metrics["parity"]`; raises ParityError naming the artifact, the output
    and what differs unless `raise_on_failure` is False.
    """
    spec = spec_for(child)
    tolerance = tolerance or spec.tolerance(child.precision)
    test = dataset_of(child).test
    samples = min(samples or spec.parity_samples, len(test))
    cases = []
    steps = len(spec.parity_seq_lengths) * len(spec.parity_batch_sizes) + 1
    advance = progress(f"parity {child.name} vs {parent.name}", steps) if progress else lambda: None
    with load_runtime(child, runtime, parity_config(child, runtime)) as exported, \
            load_runtime(parent, reference_runtime, parity_config(parent, reference_runtime)) as reference:
        def run(batch: int, seq_length: int | None, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
            inputs = spec.sample_inputs(child, test, batch, seq_length, start)
            return reference.run(inputs), exported.run(inputs)

        whole = spec.parity_seq_lengths[-1]
        pairs = [run(min(CHUNK, samples - start), whole, start) for start in range(0, samples, CHUNK)]
        agreement = {"sequence": whole, **_agreement(pairs, tolerance)}
        # the logit range is the model's, not a small batch's: one logit error is judged alike in a batch of 7
        # and among all the samples
        scale = max((float(np.abs(e).max()) for e, _ in pairs if e.size), default=0.0)
        advance()
        for seq_length in spec.parity_seq_lengths:
            for batch in spec.parity_batch_sizes:
                expected, actual = run(batch, seq_length)
                errors = _errors(expected, actual, tolerance, scale)
                top1 = _top1(expected, actual, tolerance)["top1_agreement"] if "shape" not in errors else 0.0
                cases.append({"batch": batch, "sequence": seq_length, **errors, "top1_agreement": top1})
                advance()
        names = exported.name, reference.name
    judged = cases + [agreement]
    report = {
        "output": spec.output_name, "runtime": names[0], "reference_runtime": names[1],
        "reference": f"{parent.name} ({parent.format}, {parent.precision})", "precision": str(child.precision),
        "thresholds": tolerance.as_dict(), "samples": samples,
        "max_abs": max(c["max_abs"] for c in judged), "max_rel": max(c["max_rel"] for c in judged),
        **{key: agreement[key] for key in ("top1_agreement", "near_ties", "near_tie_flips", "clear_disagreements")},
        "cases": cases, "agreement": agreement, "ok": all(c["ok"] for c in judged),
    }
    if raise_on_failure and not report["ok"]:
        raise ParityError(failure_message(child, report))
    return report


def _errors(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance, scale: float = 0.0) -> dict[str, Any]:
    """Shape, NaN and the largest logit error against the tolerance's limit (relative to the larger of
    `scale` and the largest reference logit here)."""
    if actual.shape != expected.shape:
        return {"max_abs": float("inf"), "max_rel": float("inf"), "limit": 0.0, "nan": False, "ok": False,
                "shape": f"{list(actual.shape)} != {list(expected.shape)}"}
    finite = bool(np.isfinite(actual).all())
    max_abs = float(np.abs(actual.astype(np.float64) - expected).max()) if finite else float("inf")
    limit = tolerance.limit(max(scale, float(np.abs(expected).max())))
    return {"max_abs": max_abs, "max_rel": max_abs / max(float(np.abs(expected).max()), 1e-12), "limit": limit,
            "nan": not finite, "ok": finite and max_abs <= limit}


def _top1(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> dict[str, Any]:
    """Top-1 agreement, with flips of near-tied parent logits counted apart from clear disagreements."""
    top2 = np.sort(expected, axis=1)[:, -2:]
    scale = float(expected.std())
    near = (top2[:, 1] - top2[:, 0]) < tolerance.near_tie * scale
    flips = actual.argmax(1) != expected.argmax(1)
    clear = int((flips & ~near).sum())
    allowed = tolerance.allowed_clear(int((~near).sum()))
    return {"samples": len(expected), "top1_agreement": float(1 - flips.mean()), "logit_scale": scale,
            "near_tie_margin": tolerance.near_tie * scale, "near_ties": int(near.sum()),
            "near_tie_flips": int((flips & near).sum()), "clear_disagreements": clear, "allowed_clear": allowed,
            "ok": clear <= allowed}


def _agreement(pairs: list[tuple[np.ndarray, np.ndarray]], tolerance: Tolerance) -> dict[str, Any]:
    """Errors and top-1 agreement over all samples of one sequence length (batches of CHUNK)."""
    wrong = next(((e, a) for e, a in pairs if e.shape != a.shape), None)
    if wrong is not None:
        return {**_top1(wrong[0], wrong[0], tolerance), **_errors(*wrong, tolerance), "top1_agreement": 0.0}
    expected, actual = np.concatenate([e for e, _ in pairs]), np.concatenate([a for _, a in pairs])
    errors, top1 = _errors(expected, actual, tolerance), _top1(expected, actual, tolerance)
    return {**errors, **top1, "ok": errors["ok"] and top1["ok"]}


def failure_message(child: Artifact, report: dict[str, Any]) -> str:
    """What differs, naming the artifact by name (its directory may still be a staging one)."""
    bad = []
    for c in report["cases"] + [report["agreement"]]:
        if c["ok"]:
            continue
        where = " x ".join(part for part in (f"batch {c['batch']}" if "batch" in c else f"{c['samples']} samples",
                                             f"seq {c['sequence']}" if c["sequence"] else "") if part)
        if c.get("shape") or c["nan"]:
            bad.append(f"{where}: {c.get('shape') or 'NaN'}")
            continue
        if c["max_abs"] > c["limit"]:
            bad.append(f"{where}: max abs err {c['max_abs']:.3g} (limit {c['limit']:.3g})")
        if "clear_disagreements" in c and c["clear_disagreements"] > c["allowed_clear"]:
            bad.append(f"{where}: top-1 differs clearly on {c['clear_disagreements']} (allowed "
                       f"{c['allowed_clear']}, {report['thresholds']['max_clear']:.0%} of the "
                       f"{c['samples'] - c['near_ties']} that are not near-ties), plus {c['near_tie_flips']} "
                       f"near-tie flips (parent top-2 margin < {c['near_tie_margin']:.3g})")
    return (f"{child.name} ({child.format}, {child.precision}): output {report['output']!r} through "
            f"{report['runtime']} differs from {report['reference']} through {report['reference_runtime']}: "
            f"{'; '.join(bad)}")


def summary(report: dict[str, Any]) -> str:
    """One line for people: agreement, near-ties, clear disagreements and the thresholds they were judged by."""
    limits = report["thresholds"]
    sequence = report["agreement"]["sequence"]
    return (f"top-1 over {report['samples']} test samples{f' at {sequence} tokens' if sequence else ''}: "
            f"{report['top1_agreement']:.1%} agree; {report['near_ties']} near-ties (parent top-2 margin < "
            f"{limits['near_tie']:g} x logit std), {report['near_tie_flips']} of them flipped; "
            f"{report['clear_disagreements']} clear disagreements (allowed: {limits['max_clear']:.0%} of the rest); "
            f"max abs err {report['max_abs']:.3g} (limit {limits['atol']:g} + {limits['rtol']:g} x max|logit|)")
