"""The whole GPU sweep in one command, for a borrowed CUDA machine:

    python benchmarks/gpu_sweep.py [--models cnn,resnet,lstm,bert] [--batch 1,64] [--db gpu-results.db]

Torch fp32 / fp16 / bf16 of each zoo model at batch 1 and 64 on every cuda:N, timed with CUDA events by the
same harness as the CPU sweeps, one process per candidate, stored in the results database, printed as a table.
fp16/bf16 variants are torch artifacts derived from the fp32 one (precision set in the manifest); the torch
runtime must run them in that dtype, which is checked before measuring. Where ONNX Runtime has its CUDA
provider, the ONNX fp32 / fp16 exports are measured too: `session.run` returns host arrays, so each timed call
includes the device-to-host copy that waits for the GPU (synchronous, no events needed); a session that fell
back to the CPU is skipped, not measured under a GPU's name. Without a GPU it exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def no_gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return (f"no CUDA GPU visible to torch {torch.__version__} (torch.cuda.is_available() is False); "
                "run this on a machine with an NVIDIA GPU and a CUDA build of torch")
    return None


def precision_variant(artifact, precision: str, out: Path):
    """A torch artifact marked fp16/bf16 (same weights file); the runtime casts at load time."""
    if precision == "fp32":
        return artifact
    child = artifact.derive(out / f"{artifact.name}-{precision}", precision=precision,
                            step={"step": "cast", "dtype": precision})
    target = child.path / artifact.model_file
    (shutil.copytree if artifact.model_path.is_dir() else shutil.copy2)(artifact.model_path, target)
    return child.save()


def runtime_honours(artifact, device: str) -> str | None:
    """None when the torch runtime runs `artifact` in its precision on `device`, else why not."""
    import torch

    from edgeopt.runtimes import RuntimeConfig, load_runtime

    want = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[str(artifact.precision)]
    runtime = load_runtime(artifact, "torch", RuntimeConfig(device=device))
    model = getattr(runtime, "model", None)
    got = next(model.parameters()).dtype if model is not None else None
    runtime.close()
    return None if got == want else f"the torch runtime loaded {artifact.name} as {got}, not {want}"


def ort_cuda_reason() -> str | None:
    """None when ONNX Runtime here has the CUDA execution provider, else why the ORT rows are left out."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (f"ONNX Runtime {ort.__version__} has no CUDAExecutionProvider (it has "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu")
    return None


def onnx_variant(artifact, precision: str, out: Path, samples: int):
    """The ONNX export (fp32) or its ONNX Runtime fp16 conversion, each parity-checked against its parent."""
    from edgeopt.export import export_artifact
    from edgeopt.optimize import QuantizeConfig, quantize

    onnx = export_artifact(artifact, "onnx", out / f"{artifact.name}-onnx", force=True)  # the script's own scratch
    if precision == "fp32":
        return onnx
    return quantize(onnx, QuantizeConfig(mode="fp16", eval_samples=samples), out / f"{artifact.name}-onnx-fp16")


def ort_runs_on(artifact, device: str) -> str | None:
    """None when ONNX Runtime's session for `artifact` runs on the CUDA provider, else what it runs on."""
    from edgeopt.runtimes import RuntimeConfig, load_runtime

    with load_runtime(artifact, "onnxruntime", RuntimeConfig(device=device)) as runtime:
        providers = runtime.session.get_providers()
    return None if providers[0] == "CUDAExecutionProvider" else f"ONNX Runtime's session runs on {providers[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cnn,resnet,lstm,bert", help="zoo models or artifact directories")
    parser.add_argument("--precisions", default="fp32,fp16,bf16")
    parser.add_argument("--batch", default="1,64")
    parser.add_argument("--db", default="gpu-results.db")
    parser.add_argument("--samples", type=int, default=2000, help="accuracy subset of the test split")
    parser.add_argument("--dry-run", action="store_true", help="check the machine and plan, measure nothing")
    args = parser.parse_args(argv)

    reason = no_gpu_reason()
    if reason:
        print(f"gpu_sweep: {reason}", file=sys.stderr)
        return 2

    from edgeopt.benchmarks import BenchConfig, bench, list_profiles
    from edgeopt.core.artifacts import Artifact
    from edgeopt.core.models.zoo import ZOO, load_zoo_model
    from edgeopt.store import ResultStore

    gpus = [p for p in list_profiles().values() if p.is_cuda]
    batches = [int(b) for b in args.batch.split(",")]
    print(f"GPUs: {', '.join(f'{p.name} ({p.description})' for p in gpus)}")
    ort_reason = ort_cuda_reason()
    if ort_reason:
        print(f"skip onnxruntime: {ort_reason}")
    scratch = Path(tempfile.mkdtemp(prefix="edgeopt-gpu-"))
    candidates: dict[str, list] = {"torch": [], "onnxruntime": []}
    for spec in args.models.split(","):
        try:
            base = load_zoo_model(spec, train_if_missing=False) if spec in ZOO else Artifact.load(spec)
        except Exception as error:  # noqa: BLE001 - a missing model is reported, the rest still run
            print(f"skip {spec}: {error}")
            continue
        for precision in args.precisions.split(","):
            variant = precision_variant(base, precision, scratch)
            why = runtime_honours(variant, gpus[0].device)
            if why:
                print(f"skip {spec} {precision}: {why}")
            else:
                candidates["torch"].append(variant)
            if ort_reason or precision not in ("fp32", "fp16"):
                continue
            try:
                onnx = onnx_variant(base, precision, scratch, args.samples)
                why = ort_runs_on(onnx, gpus[0].device)
            except Exception as error:  # noqa: BLE001 - an export that fails is reported, the rest still run
                why = str(error)
            if why:
                print(f"skip {spec} onnx {precision}: {why}")
            else:
                candidates["onnxruntime"].append(onnx)
    print(f"plan: {' + '.join(f'{len(a)} {r}' for r, a in candidates.items())} artifacts x {len(gpus)} GPUs "
          f"x batch {batches}")
    if args.dry_run:
        return 0
    config = BenchConfig(batch_sizes=batches, accuracy_samples=args.samples)
    rows = []
    with ResultStore(args.db) as store:
        for runtime, artifacts in candidates.items():
            if artifacts:
                rows += bench(artifacts, runtimes=[runtime], devices=gpus, config=config, store=store,
                              references=[scratch])
    print(f"{'model':<24}{'runtime':<12}{'prec':<6}{'device':<9}{'batch':>6}{'median ms':>11}{'p95 ms':>9}"
          f"{'samples/s':>12}{'GPU MB':>9}{'acc':>8}{'fid':>8}  status")
    for m in rows:
        lat = m.latency
        print(f"{m.artifact.name:<24}{m.runtime:<12}{m.artifact.precision:<6}{m.device:<9}{m.batch_size:>6}"
              f"{lat.median if lat else float('nan'):>11.3f}{lat.p95 if lat else float('nan'):>9.3f}"
              f"{m.throughput or float('nan'):>12,.0f}{m.gpu_peak_mb or float('nan'):>9.0f}"
              f"{m.accuracy or float('nan'):>8.2%}{m.fidelity if m.fidelity is not None else float('nan'):>8.2%}"
              f"  {m.status}{': ' + m.error if m.error else ''}")
    print(f"stored in {args.db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
