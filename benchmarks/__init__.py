"""edgeopt.benchmarks"""
