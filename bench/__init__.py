"""Benchmarks: each prints ours against a baseline, measured in one run."""
