"""Loading the APIs as Dagster assets. Imports `reading`, never `watching`.

The engine, in one place (each module says the rest):

- **Who owns a run's state.** The load op (`assets.py`, `analytics_load`), for everything it reads and
  writes; the `warehouse` resource, which Dagster copies for each run and tears down at its end
  (`warehouse.py`), for the locks the run holds (`locks.RunHolds`). Nothing of a run lives in a module
  global; the one process-wide object is `endpoints_load.WAREHOUSE_TURN` (below).
- **Which threads exist.** The steps of a run run one after another in the run's process
  (`definitions.py`, in-process executor). The one load step (`assets.py`) reads every selected endpoint
  of both APIs in a thread of its own (`endpoints_load.EndpointReads`, `endpoint-*`), a child
  (`segment_people`) too; an offset-paged list has its next pages requested by a small pool
  (`reading/prefetch.py`, `page-*`). Writes (normalize, load, sweep) and a parent's blocking checks
  happen in the step's own thread, one endpoint at a time, each as soon as it is read; a child only once
  its parent is written and passed its blocking checks (`endpoints_load.write_in_turn`), else its read is
  dropped.
- **Who opens the warehouse, when.** A reading thread opens it once, to restore its pipeline before it
  reads; then only the step's thread opens it, to write and to check; check steps open it to query. On
  DuckDB all of these hold the warehouse's one-writer lock, and within a process one thread at a time
  opens the file (`WAREHOUSE_TURN`).
- **In what order locks are taken** (`locks.py` says why): the APIs' locks in a fixed order (audience,
  then feedback), then the warehouse's, then `WAREHOUSE_TURN`. A step waits for a lock only while it
  holds earlier ones in this order: a total order, so no two runs wait on each other. Every wait is
  bounded (`ANALYTICS_LOCK_TIMEOUT_SECONDS`) and a timeout names the holder.
"""
