"""Does edgeopt's harness measure what the vendors' own tools measure? A script that prints figures, not a test.

    python benchmarks/fidelity.py ARTIFACT_DIR... [--batch 1,8] [--rounds 3] [--seconds 3]

On one pinned core and one thread, for the same model and the same input shape:
  * OpenVINO artifacts: edgeopt's median vs `benchmark_app -hint none -nstreams 1 -nthreads 1 -api sync`
    with `-data_shape` (the model stays dynamic, as edgeopt runs it) and `-infer_precision` set to the
    precision edgeopt's run computed in (read back from the compiled model);
  * ONNX artifacts: edgeopt's median vs a bare `InferenceSession.run` loop (fresh process, same inputs);
  * ExecuTorch / LiteRT artifacts: vs a bare `Method.execute` / `Interpreter.invoke` loop (XNNPACK, 1 thread).
Rounds alternate the two sides so drift on a busy machine hits both; the median over rounds is compared.
Each line also shows the achieved GFLOP/s (2 x MACs x batch / median) against an achievable single-core peak
measured here: a large matmul on one pinned core, per precision (fp32; bf16 where the CPU has it), compared
with the precision that actually ran.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BARE_ORT_LOOP = """
import sys, time, numpy as np, onnxruntime as ort
path, inputs, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
with np.load(inputs) as data:
    feed = {k.split("/")[-1]: data[k] for k in data.files if k.startswith("lat/")}
for _ in range(10):
    session.run(None, feed)
samples, start = [], time.perf_counter()
while time.perf_counter() - start < seconds or len(samples) < 30:
    t = time.perf_counter_ns(); session.run(None, feed); samples.append((time.perf_counter_ns() - t) / 1e6)
print(float(np.median(samples)))
"""

# ExecuTorch and LiteRT: the inputs fitted to the program's bounds once (as the runtimes do), then only the
# vendor's call is timed: `Method.execute`, and the signature's subgraph `Invoke` (Interpreter.invoke for it)
BARE_EDGE_LOOP = """
import sys, time, numpy as np
from edgeopt.core.artifacts import Artifact
from edgeopt.runtimes.bounded import fit_inputs
artifact, inputs, seconds = Artifact.load(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with np.load(inputs) as data:
    feed = fit_inputs(artifact, {k.split("/")[-1]: data[k] for k in data.files if k.startswith("lat/")})
if artifact.format == "executorch":
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime
    _unsafe_reset_threadpool(1)
    method = Runtime.get().load_program(artifact.model_path).load_method("forward")
    args = [torch.from_numpy(feed[spec.name]) for spec in artifact.inputs]
    call = lambda: method.execute(args)
else:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(artifact.model_path), num_threads=1)
    runner = interpreter.get_signature_runner(f"batch_{len(next(iter(feed.values())))}")
    runner(**{k: v.astype(runner.get_input_details()[k]["dtype"]) for k, v in feed.items()})
    invoke, subgraph = runner._interpreter_wrapper.Invoke, runner._subgraph_index
    call = lambda: invoke(subgraph)
for _ in range(10):
    call()
samples, start = [], time.perf_counter()
while time.perf_counter() - start < seconds or len(samples) < 30:
    t = time.perf_counter_ns(); call(); samples.append((time.perf_counter_ns() - t) / 1e6)
print(float(np.median(samples)))
"""

MATMUL_PEAK = """
import sys, time, torch
torch.set_num_threads(1)
n, dtype = 2048, getattr(torch, sys.argv[1])
a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
best = float("inf")
for _ in range(8):
    start = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - start)
print(2 * n ** 3 / best / 1e9)
"""


def measured_peaks(core: int) -> dict[str, float]:
    """Achievable single-core GFLOP/s per precision: the best of 8 2048x2048 torch matmuls on the pinned core
    (fp32 always; bf16 where the CPU has avx512_bf16 or AMX, as OpenVINO's bf16 runs there)."""
    from edgeopt.core.environment import cpu_info

    isa = cpu_info()["isa"]
    dtypes = {"fp32": "float32", **({"bf16": "bfloat16"} if isa.get("avx512_bf16") or isa.get("amx_bf16") else {})}
    return {name: float(subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", MATMUL_PEAK, dtype],
                                       capture_output=True, text=True, check=True, timeout=300).stdout)
            for name, dtype in dtypes.items()}


def macs_at(artifact, lineage, inputs: Path) -> int | None:
    """MACs of one sample of the timed batch, counted on the torch ancestor at the exact input shape (the
    project's one counter, `count_macs_params`)."""
    import numpy as np

    from edgeopt.core.models.zoo import count_macs_params, load_module

    source = next((a for a in (artifact, *lineage.ancestors(artifact)) if a.format == "torch"), None)
    if source is None:
        return lineage.model_stats(artifact)[1]
    with np.load(inputs) as data:
        batch = {k.split("/")[-1]: data[k][:1] for k in data.files if k.startswith("lat/")}
    return count_macs_params(load_module(source), batch)[0]


def benchmark_app_median(xml: Path, shapes: str, core: int, seconds: float, precision: str) -> float:
    app = Path(sys.executable).with_name("benchmark_app")
    command = ["taskset", "-c", str(core), str(app), "-m", str(xml), "-d", "CPU", "-hint", "none",
               "-nstreams", "1", "-nthreads", "1", "-api", "sync", "-data_shape", shapes, "-t", str(int(seconds)),
               "-infer_precision", precision]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    match = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", output)
    if not match:
        raise RuntimeError(f"could not read benchmark_app's median: {output[-500:]}")
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def bare_ort_median(model: Path, inputs: Path, core: int, seconds: float) -> float:
    command = ["taskset", "-c", str(core), sys.executable, "-c", BARE_ORT_LOOP, str(model), str(inputs), str(seconds)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout)


def bare_edge_median(artifact_dir: Path, inputs: Path, core: int, seconds: float) -> float:
    command = ["taskset", "-c", str(core), sys.executable, "-c", BARE_EDGE_LOOP, str(artifact_dir), str(inputs),
               str(seconds)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--batch", default="1", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per side per round")
    args = parser.parse_args(argv)

    import numpy as np

    from edgeopt.benchmarks import BenchConfig, LatencyConfig, bench, get_profile
    from edgeopt.benchmarks.sweep import Lineage, prepare_inputs
    from edgeopt.core.artifacts import Artifact, Format

    profile = get_profile("cpu-1t")
    core = profile.pinned_cores()[0][0]
    peaks = measured_peaks(core)
    print("achievable single-core peak (best 2048^3 matmul on core "
          f"{core}): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    print("ratio = edgeopt median / reference median (median over rounds); best = fastest round / fastest round; "
          "ran = the precision edgeopt's run computed in; % peak against that precision's peak (int8: fp32's)")
    print(f"{'artifact':<26}{'ran':<22}{'batch':>5} {'reference':<15}{'edgeopt ms':>11}{'ref ms':>10}{'ratio':>7}"
          f"{'best':>7}{'GFLOP/s':>9}{'% peak':>8}  rounds (edgeopt/ref)")
    scratch = Path(tempfile.mkdtemp(prefix="edgeopt-fidelity-"))
    for path in args.artifacts:
        artifact = Artifact.load(path)
        for batch in [int(b) for b in args.batch.split(",")]:
            config = BenchConfig(batch_sizes=[batch], accuracy_samples=64,
                                 latency=LatencyConfig(min_seconds=args.seconds, warmup_seconds=0.5, rounds=1))
            inputs = prepare_inputs(artifact, config, scratch)
            with np.load(inputs) as data:
                shapes = ",".join(f"{k.split('/')[-1]}[{','.join(map(str, data[k].shape))}]"
                                  for k in data.files if k.startswith("lat/"))
            ours, theirs, ran, reference = [], [], "?", "-"
            for _ in range(args.rounds):
                row = bench([artifact], devices=[profile], config=config)[0]
                if row.status != "ok":
                    print(f"{artifact.name}: edgeopt failed: {row.error}")
                    break
                ours.append(row.latency.median)
                ran = row.executed_precision or str(artifact.precision)
                if artifact.format == Format.OPENVINO:
                    reference = "benchmark_app"
                    hint = "bf16" if ran.endswith("bf16") or ran.endswith("bf16)") else "f32"
                    theirs.append(benchmark_app_median(artifact.model_path, shapes, core, args.seconds, hint))
                elif artifact.format == Format.ONNX:
                    reference = "bare ORT loop"
                    theirs.append(bare_ort_median(artifact.model_path, inputs, core, args.seconds))
                elif artifact.format in (Format.EXECUTORCH, Format.LITERT):
                    reference = "bare execute" if artifact.format == Format.EXECUTORCH else "bare invoke"
                    theirs.append(bare_edge_median(artifact.path, inputs, core, args.seconds))
            if not ours:
                continue
            mine = statistics.median(ours)
            ref = statistics.median(theirs) if theirs else float("nan")
            macs = macs_at(artifact, Lineage.around([artifact]), inputs)
            gflops = 2 * macs * batch / (mine / 1e3) / 1e9 if macs else float("nan")
            peak = peaks.get("bf16" if "bf16" in ran else "fp32", peaks["fp32"])
            rounds = " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(ours, theirs)) if theirs else \
                " ".join(f"{a:.3f}" for a in ours)
            best = min(ours) / min(theirs) if theirs else float("nan")
            print(f"{artifact.name + ' ' + str(artifact.format):<26}{ran:<22}{batch:>5} {reference:<15}{mine:>11.3f}"
                  f"{ref:>10.3f}{mine / ref:>7.3f}{best:>7.3f}{gflops:>9.2f}{100 * gflops / peak:>7.1f}%"
                  f"  {rounds}  [{shapes}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
