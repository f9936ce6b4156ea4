"""Data checks on the loaded tables, and the Dagster asset checks that run them.

- `core`: what a check is, and the one check op per load op that runs them on one warehouse connection;
- `table`: checks that query the table (emptiness, primary keys, seed columns, references, shares);
- `history`: checks that compare with earlier materializations (row count drop, schema drift);
- `suite`: every check of this code location (freshness is a policy on the assets, not a check:
  `watching/freshness.py`), from these builders and the per-API lists in
  `audience.py` and `feedback.py`.
"""
