"""Data checks on the loaded tables, and the Dagster asset checks that run them.

- `core`: what a check is, and the one check op per load op that runs them on one warehouse connection;
- `table`: checks that query the table (emptiness, primary keys, seed columns, references, shares);
- `history`: checks that compare with earlier materializations (row count drop, schema drift);
- `freshness`: Dagster's freshness checks and the sensor that evaluates them;
- `suite`: every check of this code location, from these builders and the per-API lists in
  `audience.py` and `feedback.py`.
"""
