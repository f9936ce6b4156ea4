"""Loading the APIs as Dagster assets: the `@dlt_assets` ops (`assets.py`), the engine that reads an op's
endpoints side by side and writes each on its own (`endpoints_load.py`, `read_ahead.py`), the run's locks
(`locks.py`: their order is written there), the `warehouse` resource (`warehouse.py`), and what a failed
load tells the user (`errors.py`).

Imports `reading`, never `watching`.
"""
