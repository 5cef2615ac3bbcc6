"""The Python API end to end: load a config, run the sweep, query results, recommend, render, gate.

    python examples/api_example.py [OUTPUT_DIR]

It sweeps the shipped CNN in FP32 (torch eager, ONNX Runtime) and static INT8 (ONNX Runtime) on one pinned
core, with small seeded subsets so it finishes in under a minute. For your own sweep, start from
`edgeopt init` and pass the YAML path to `Pipeline(...)` instead of the dict below.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edgeopt import Budget, Pipeline, gate

CONFIG = {
    "devices": ["cpu-1t"],
    "batch_sizes": [1],
    "measure": {"eval_samples": 500,
                "latency": {"warmup_runs": 2, "warmup_seconds": 0.05, "min_runs": 10, "min_seconds": 0.2}},
    "models": {"cnn": {"zoo": "cnn", "recipes": [
        {"name": "fp32", "runtimes": ["torch", "onnxruntime"]},
        {"name": "int8", "quantize": {"mode": "static", "samples": 128, "eval_samples": 500},
         "runtimes": ["onnxruntime"]},
    ]}},
}


def main(output: Path) -> dict:
    pipeline = Pipeline(CONFIG, output=output)

    # 1. the plan: what will be built and measured (nothing runs yet)
    for candidate in pipeline.plan().candidates:
        print("planned:", candidate.id)

    # 2. run it: builds are cached by content hash, results stored; running again resumes
    result = pipeline.run()
    print(f"measured {result.measured}, resumed {result.resumed}, failed {result.failed}")

    # 3. query typed results (edgeopt.results.Row)
    for row in pipeline.results():
        print(f"{row.label:28} {row.precision:5} p95 {row.latency_ms('p95'):.3f} ms  accuracy {row.accuracy:.2%}  "
              f"{row.size_mb:.2f} MB")

    # 4. recommend under a budget (edgeopt.recommend.Recommendation)
    budget = Budget(device="cpu-1t", batch=1, percentile="p95", max_latency_ms=50, min_accuracy=0.85)
    recommendation = pipeline.recommend(budget)
    for pick in recommendation.picks:
        print(f"pick for {pick.family}: {pick.row.label} ({pick.row.precision}): {pick.reason}")

    # 5. render the reports (self-contained HTML, Markdown, JSON)
    reports = pipeline.write_report(budget=budget)
    print("report:", reports["html"])

    # 6. gate: compare against a baseline JSON report (here the run against itself, which must pass)
    verdict = gate(reports["json"], reports["json"], max_accuracy_drop=0.5, max_latency_regression="10%",
                   budget=Budget(device="cpu-1t", batch=1, min_accuracy=0.85))
    print(verdict.summary())
    return {"result": result, "recommendation": recommendation, "reports": reports, "gate": verdict}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("edgeopt-out/api-example"))
