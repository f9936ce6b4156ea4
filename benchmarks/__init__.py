"""Benchmarks of the loader against the sandbox: `make bench` (`python -m benchmarks`), see `bench.py`.

`postgres_file_format.py` measures PostgreSQL's loader file formats: `make bench-postgres` (`python -m
benchmarks.postgres_file_format`), see benchmarks/README.md.
"""
