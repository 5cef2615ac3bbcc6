"""Does edgeopt's harness measure what the vendors' own tools measure? A script that prints figures, not a test.

    python benchmarks/fidelity.py ARTIFACT_DIR... [--batch 1] [--rounds 3] [--seconds 3]

On one pinned core and one thread, for the same model and the same input shape:
  * OpenVINO artifacts: edgeopt's median vs `benchmark_app -hint none -nstreams 1 -nthreads 1 -api sync`
    with `-data_shape` (the model stays dynamic, as edgeopt runs it; `-shape` would recompile it static);
  * ONNX artifacts: edgeopt's median vs a bare `InferenceSession.run` loop (fresh process, same inputs).
Rounds alternate the two sides so drift on a busy machine hits both; the median over rounds is compared.
Each line also shows the achieved GFLOP/s (2 x MACs x batch / median) against this CPU's estimated
single-core FP32 peak (the assumption is printed).
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


def peak_gflops_1core() -> tuple[float, str]:
    """Single-core FP32 peak = FLOPs/cycle (from the widest FMA the ISA flags show) x clock (/proc/cpuinfo)."""
    from edgeopt.core.environment import cpu_info

    info = cpu_info()
    isa = info["isa"]
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
                break
    except OSError:
        pass
    if isa.get("avx512f"):
        per_cycle, why = 64, ("AVX-512: 2 FMA units x 16 fp32 lanes x 2 FLOPs (Intel Xeon, AMD Zen 5; "
                              "Zen 4 splits 512-bit FMAs, so half this)")
    elif isa.get("avx2") and isa.get("fma"):
        per_cycle, why = 32, "AVX2/FMA: 2 FMA units x 8 fp32 lanes x 2 FLOPs"
    elif isa.get("avx"):
        per_cycle, why = 16, "AVX: 8 fp32 lanes x (1 add + 1 mul)"
    else:
        per_cycle, why = 8, "SSE: 4 fp32 lanes x (1 add + 1 mul)"
    ghz = mhz / 1000 or 2.0
    return per_cycle * ghz, (f"{info['model']}: {why} = {per_cycle} FLOP/cycle x {ghz:.2f} GHz "
                             f"({'/proc/cpuinfo cpu MHz' if mhz else 'assumed 2 GHz'}; turbo not counted; "
                             "OpenVINO may run "
                             "bf16 on CPUs with avx512_bf16/AMX, which can exceed the fp32 peak)")


def macs_at(artifact, lineage, inputs: Path) -> int | None:
    """MACs of one sample of the timed batch, counted on the torch ancestor at the exact input shape.

    torch's FlopCounterMode counts matmuls and convolutions but not the fused aten::lstm, so LSTM layers
    add 4 gates x hidden x (input + hidden) per step per layer and direction. (torch-pruning's counter,
    used for manifests, overstates LSTMs by ~100x, so it is not used here.)
    """
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edgeopt.core.models.zoo import load_module

    source = next((a for a in (artifact, *lineage.ancestors(artifact)) if a.format == "torch"), None)
    if source is None:
        return lineage.model_stats(artifact)[1]
    with np.load(inputs) as data:
        batch = {k.split("/")[-1]: torch.from_numpy(data[k][:1]) for k in data.files if k.startswith("lat/")}
    model, lstm_macs = load_module(source).eval(), []

    def count_lstm(module, args, _output):
        steps = args[0].shape[1 if module.batch_first else 0]
        directions = 2 if module.bidirectional else 1
        for layer in range(module.num_layers):
            width = module.input_size if layer == 0 else module.hidden_size * directions
            lstm_macs.append(4 * module.hidden_size * (width + module.hidden_size) * steps * directions)

    hooks = [m.register_forward_hook(count_lstm) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**batch)
    for hook in hooks:
        hook.remove()
    return int(counter.get_total_flops() // 2 + sum(lstm_macs))


def benchmark_app_median(xml: Path, shapes: str, core: int, seconds: float) -> float:
    app = Path(sys.executable).with_name("benchmark_app")
    command = ["taskset", "-c", str(core), str(app), "-m", str(xml), "-d", "CPU", "-hint", "none",
               "-nstreams", "1", "-nthreads", "1", "-api", "sync", "-data_shape", shapes, "-t", str(int(seconds))]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    match = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", output)
    if not match:
        raise RuntimeError(f"could not read benchmark_app's median: {output[-500:]}")
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def bare_ort_median(model: Path, inputs: Path, core: int, seconds: float) -> float:
    command = ["taskset", "-c", str(core), sys.executable, "-c", BARE_ORT_LOOP, str(model), str(inputs), str(seconds)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per side per round")
    args = parser.parse_args(argv)

    from edgeopt.benchmarks import BenchConfig, LatencyConfig, bench, get_profile
    from edgeopt.benchmarks.sweep import Lineage, prepare_inputs
    from edgeopt.core.artifacts import Artifact, Format

    profile = get_profile("cpu-1t")
    core = profile.pinned_cores()[0][0]
    peak, assumption = peak_gflops_1core()
    config = BenchConfig(batch_sizes=[args.batch], accuracy_samples=64,
                         latency=LatencyConfig(min_seconds=args.seconds, warmup_seconds=0.5))
    print(f"peak estimate: {peak:.1f} GFLOP/s per core; {assumption}")
    print("ratio = edgeopt median / reference median (median over rounds); best = fastest round / fastest round")
    print(f"{'artifact':<28}{'format':<10}{'reference':<15}{'edgeopt ms':>11}{'ref ms':>10}{'ratio':>7}{'best':>7}"
          f"{'GFLOP/s':>9}{'% peak':>8}  rounds (edgeopt/ref)")
    scratch = Path(tempfile.mkdtemp(prefix="edgeopt-fidelity-"))
    for path in args.artifacts:
        artifact = Artifact.load(path)
        inputs = prepare_inputs(artifact, config, scratch)
        import numpy as np

        with np.load(inputs) as data:
            shapes = ",".join(f"{k.split('/')[-1]}[{','.join(map(str, data[k].shape))}]"
                              for k in data.files if k.startswith("lat/"))
        ours, theirs = [], []
        for _ in range(args.rounds):
            row = bench([artifact], devices=[profile], config=config)[0]
            if row.status != "ok":
                print(f"{artifact.name}: edgeopt failed: {row.error}")
                break
            ours.append(row.latency.median)
            if artifact.format == Format.OPENVINO:
                reference = "benchmark_app"
                theirs.append(benchmark_app_median(artifact.model_path, shapes, core, args.seconds))
            elif artifact.format == Format.ONNX:
                reference = "bare ORT loop"
                theirs.append(bare_ort_median(artifact.model_path, inputs, core, args.seconds))
            else:
                reference = "-"
        if not ours:
            continue
        mine = statistics.median(ours)
        ref = statistics.median(theirs) if theirs else None
        macs = macs_at(artifact, Lineage.around([artifact]), inputs)
        gflops = 2 * macs * args.batch / (mine / 1e3) / 1e9 if macs else None
        rounds = (" ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(ours, theirs)) if theirs
                  else " ".join(f"{a:.3f}" for a in ours))
        best = min(ours) / min(theirs) if theirs else float("nan")
        print(f"{artifact.name + ' ' + str(artifact.precision):<28}{str(artifact.format):<10}{reference:<15}"
              f"{mine:>11.3f}{ref if ref else float('nan'):>10.3f}{mine / ref if ref else float('nan'):>7.3f}"
              f"{best:>7.3f}"
              f"{gflops if gflops else float('nan'):>9.2f}{100 * gflops / peak if gflops else float('nan'):>7.1f}%"
              f"  {rounds}  [{shapes}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
