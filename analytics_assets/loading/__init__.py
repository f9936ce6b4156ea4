"""Loading the APIs as Dagster assets. Imports `reading`, never `watching`.

The engine, in one place (each module says the rest):

- **Who owns a run's state.** The `warehouse` resource, which Dagster copies for each run and tears
  down at its end (`warehouse.py`): the locks the run holds (`locks.RunHolds`) and the reads it started
  for its later steps (`read_ahead.RunReads`). Its teardown lets go of both. Nothing of a run lives in
  a module global; the one process-wide object is `endpoints_load.WAREHOUSE_TURN` (below).
- **Which threads exist.** The steps of a run run one after another in the run's process
  (`definitions.py`, in-process executor). A load step (`assets.py`) reads each of its endpoints in a
  thread of its own (`endpoints_load.EndpointReads`, `endpoint-*`), and the first load step of a run
  starts the same for the run's later load steps (`read_ahead.py`); an offset-paged list has its next
  pages requested by a small pool (`reading/prefetch.py`, `page-*`). Writes (normalize, load, sweep)
  happen in the step's own thread, one endpoint at a time.
- **Who opens the warehouse, when.** A reading thread opens it once, to restore its pipeline before it
  reads; then only the step's thread opens it, to write; check steps open it to query. On DuckDB all of
  these hold the warehouse's one-writer lock, and within a process one thread at a time opens the file
  (`WAREHOUSE_TURN`).
- **In what order locks are taken** (`locks.py` says why): an API's lock, then the warehouse's, then
  `WAREHOUSE_TURN`. Only a step waits for a lock, and never while it holds a later one; reads started
  ahead only try an API's lock and hold the warehouse's only while they restore. Every wait is bounded
  (`ANALYTICS_LOCK_TIMEOUT_SECONDS`) and a timeout names the holder.
"""
