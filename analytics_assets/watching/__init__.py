"""Watching the loads: asset checks (`checks/`), webhook alerts (`alerts.py`, `alert_sensors.py`), the
jobs and schedules (`schedules.py`), the sensors that load between nightly runs (`sensors.py`), and the
connection test (`connection.py`, through `probe.py`).

Imports `reading` and `loading`; only `definitions.py` imports this.
"""
