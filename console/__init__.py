"""The web console: server-rendered pages over the warehouse and the published datasets.

Mounted by the API under ``/console`` when admin keys are configured (``api.main``). It reads the
DuckDB warehouse read-only, one short connection per page (``console.reader``), the lake for the
texts of one pair (``warehouse.texts``), and the export catalogue for datasets, manifests and
version differences (``export.catalog``). Nothing is loaded from another origin: templates,
CSS and JavaScript are package data, and charts are SVG drawn on the server (``console.charts``).
docs/console.md describes the pages, the sessions and the decisions behind them.
"""
