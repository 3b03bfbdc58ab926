"""The ICP report: a static, offline ``index.html`` built from the published marts.

Pure Python (DuckDB, jinja2, plotly; no Dagster): :func:`build_report` reads
``<published>/icp_marts.duckdb`` (and the warehouse's quarantine when it can be opened),
aggregates in DuckDB, and writes ``<out>/index.html`` with ``assets/plotly-<version>.min.js``
atomically. The Dagster asset ``published/report`` and ``icp report`` call it.
"""

from dagster_project.report.build import (
    ASSETS_DIR,
    INDEX_FILE,
    QUALITY_INDEX,
    REPORT_DIR,
    CheckOutcome,
    ReportResult,
    build_report,
    render_report,
    report_dir_for,
)
from dagster_project.report.sources import ReportError, ReportSources, open_sources

__all__ = [
    "ASSETS_DIR",
    "INDEX_FILE",
    "QUALITY_INDEX",
    "REPORT_DIR",
    "CheckOutcome",
    "ReportError",
    "ReportResult",
    "ReportSources",
    "build_report",
    "open_sources",
    "render_report",
    "report_dir_for",
]
