"""Reading an API, plain dlt (no Dagster import): each API's declarative `rest_api` config
(`audience/`, `feedback/`), paging (`rest.py`), HTTP (`transport.py`, `prefetch.py`), pages as Arrow
(`arrow_pages.py`), the keys a read served and the sweep that removes what the API no longer serves
(`sweep.py`), history mode (`history.py`), personal data hashed or kept out (`personal_data.py`, the
settings; `field_rules.py`, the step), and the registry of both APIs (`apis.py`).

Arrows point down only: nothing here imports `loading` or `watching`.
"""
