"""The ground floor: artifacts, data, models, training. Imports no wing (optimize/export/runtimes/benchmarks)."""
