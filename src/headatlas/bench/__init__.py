"""Benchmarks: ``python -m headatlas.bench NAME``. Each prints ratios against a baseline measured in the same
run and ends with one JSON line."""
