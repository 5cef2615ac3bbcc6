"""Parity: run an exported artifact and its parent on the same real test inputs and compare the logits.

Like Optimum's `validate_model_outputs`, but per batch size and (for text) per sequence length, with
per-precision tolerances from the family's ExportSpec. OpenVINO runs with INFERENCE_PRECISION_HINT=f32 so
that what is measured is the export, not the CPU's bf16 default.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.core.artifacts import Artifact
from edgeopt.core.errors import ParityError
from edgeopt.core.progress import ProgressFactory
from edgeopt.runtimes import DEFAULT_RUNTIME, RuntimeConfig, load_runtime

from .specs import Tolerance, dataset_of, spec_for


def parity_config(artifact: Artifact, runtime: str | None) -> RuntimeConfig:
    """fp32 compute on OpenVINO (its CPU default may be bf16); every other runtime's defaults."""
    name = runtime or DEFAULT_RUNTIME[artifact.format]
    return RuntimeConfig(precision_hint="f32") if name == "openvino" else RuntimeConfig()


def verify_parity(child: Artifact, parent: Artifact, *, runtime: str | None = None,
                  reference_runtime: str | None = None, tolerance: Tolerance | None = None,
                  batch_sizes: tuple[int, ...] | None = None, seq_lengths: tuple[int | None, ...] | None = None,
                  raise_on_failure: bool = True, progress: ProgressFactory | None = None) -> dict[str, Any]:
    """Compare `child` (through `runtime`, default: its format's) with `parent` (torch for torch artifacts).

    Returns the report stored in `child.metrics["parity"]`; raises ParityError naming the output and cases that
    differ unless `raise_on_failure` is False.
    """
    spec = spec_for(child.family)
    tolerance = tolerance or spec.tolerance(child.precision)
    batch_sizes = batch_sizes or spec.parity_batch_sizes
    seq_lengths = seq_lengths or spec.parity_seq_lengths
    test = dataset_of(child).test
    cases = []
    advance = progress(f"parity {child.name} vs {parent.name}", len(batch_sizes) * len(seq_lengths)) \
        if progress else None
    with load_runtime(child, runtime, parity_config(child, runtime)) as exported, \
            load_runtime(parent, reference_runtime, parity_config(parent, reference_runtime)) as reference:
        for seq_length in seq_lengths:
            for batch in batch_sizes:
                inputs = spec.sample_inputs(child, test, batch, seq_length)
                expected, actual = reference.run(inputs), exported.run(inputs)
                cases.append(_compare(expected, actual, tolerance, batch, seq_length))
                if advance:
                    advance()
        names = exported.name, reference.name
    report = {
        "output": spec.output_name, "runtime": names[0], "reference_runtime": names[1],
        "reference": f"{parent.name} ({parent.format}, {parent.precision})", "precision": str(child.precision),
        "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol, "min_top1": tolerance.min_top1},
        "max_abs": max(c["max_abs"] for c in cases), "max_rel": max(c["max_rel"] for c in cases),
        "top1_agreement": min(c["top1_agreement"] for c in cases), "cases": cases,
        "ok": all(c["ok"] for c in cases),
    }
    if raise_on_failure and not report["ok"]:
        raise ParityError(failure_message(child, report))
    return report


def _compare(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance, batch: int,
             seq_length: int | None) -> dict[str, Any]:
    if actual.shape != expected.shape:
        return {"batch": batch, "sequence": seq_length, "max_abs": float("inf"), "max_rel": float("inf"),
                "top1_agreement": 0.0, "limit": 0.0, "nan": False, "ok": False,
                "shape": f"{list(actual.shape)} != {list(expected.shape)}"}
    nan = bool(np.isnan(actual).any())
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    max_abs = float(difference.max()) if not nan else float("inf")
    max_rel = max_abs / max(float(np.abs(expected).max()), 1e-12)
    top1 = float((actual.argmax(1) == expected.argmax(1)).mean())
    limit = tolerance.limit(expected)
    return {"batch": batch, "sequence": seq_length, "max_abs": max_abs, "max_rel": max_rel, "top1_agreement": top1,
            "limit": limit, "nan": nan, "ok": (not nan) and max_abs <= limit and top1 >= tolerance.min_top1}


def failure_message(child: Artifact, report: dict[str, Any]) -> str:
    bad = []
    for c in report["cases"]:
        if c["ok"]:
            continue
        where = f"batch {c['batch']}" + (f" x seq {c['sequence']}" if c["sequence"] else "")
        why = c.get("shape") or ("NaN" if c["nan"] else
                                 f"max abs err {c['max_abs']:.3g} (limit {c['limit']:.3g}), top-1 agreement "
                                 f"{c['top1_agreement']:.0%}")
        bad.append(f"{where}: {why}")
    return (f"{child.path}: output {report['output']!r} through {report['runtime']} differs from "
            f"{report['reference']} through {report['reference_runtime']}: {'; '.join(bad)}")
