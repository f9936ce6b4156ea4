"""Benchmarks of the loader against the sandbox: `make bench` (`python -m benchmarks`), see `bench.py`.

`postgres_file_format.py` is a one-off measurement script of its own (run it directly).
"""
