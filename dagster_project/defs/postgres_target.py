"""The steps' traffic with the PostgreSQL target (``ICP_TARGET=postgres``).

dbt builds the models on the server. The scoring still runs its SQL in DuckDB (until that SQL
is in dbt), so around it the facts it reads come from the server into the working file and
the tables it writes go back; after the score changes are built on the server they come to
the working file too, for the DuckDB and Parquet copy that the checks and the report read.
The server's readers read the ``published`` schema (:func:`publish_on_server`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from functools import cache

import duckdb

from dagster_project.defs.project import DBT_PROJECT
from dagster_project.defs.resources import WarehouseResource
from dagster_project.postgres import copy_tables, mirror_tables, publish_schema
from dagster_project.publish import PUBLISHED_TABLES

__all__ = [
    "SCORING_FACTS",
    "SCORING_OUTPUTS",
    "copy_scores_to_server",
    "mirror_changes_from_server",
    "mirror_from_server",
    "publish_on_server",
    "scoring_fact_dates",
]

#: What the scoring, the published copy and the report read of dbt's models, by schema.
SCORING_FACTS: dict[str, tuple[str, ...]] = {
    "marts": ("dim_accounts", "dim_accounts_history", "fct_account_metrics", "fct_segment_cohorts"),
    "intermediate": ("int_sources_present",),
}
#: The tables the scoring writes (marts), and whether they keep one set of rows per date.
SCORING_OUTPUTS: dict[str, bool] = {
    "account_fit_score_history": True,
    "icp_profile": True,
    "icp_validation": True,
    "account_fit_scores": False,
}
CHANGES_FACTS = {"marts": ("account_fit_score_changes",)}


@cache
def _contract_types() -> dict[str, dict[str, str]]:
    """Each dbt model's contract column types as DuckDB spells them (the manifest is parsed
    with the DuckDB target), by model name."""
    manifest = json.loads(DBT_PROJECT.manifest_path.read_text())
    return {
        node["name"]: {
            column: spec["data_type"]
            for column, spec in node.get("columns", {}).items()
            if spec.get("data_type")
        }
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def scoring_fact_dates(dates: Iterable[date], backtest_days: int | None) -> list[date]:
    """The run's as-of dates and, when the scoring backtests, each one's backtest date."""
    wanted = set(dates)
    if backtest_days is not None:
        wanted |= {as_of - timedelta(days=backtest_days) for as_of in wanted}
    return sorted(wanted)


def mirror_from_server(
    warehouse: WarehouseResource,
    con: duckdb.DuckDBPyConnection,
    dates: Sequence[date],
    tables: Mapping[str, Sequence[str]] = SCORING_FACTS,
) -> dict[str, int]:
    """Copy ``tables`` (by schema) from the server into the working file: the rows of ``dates``
    of a table that keeps a set per date, any other table whole; returns rows by table."""
    copied = {}
    types = _contract_types()
    with warehouse.postgres() as server:
        for schema, names in tables.items():
            rows = mirror_tables(
                server, con, schema, {name: types.get(name, {}) for name in names}, dates
            )
            copied.update({f"{schema}.{name}": count for name, count in rows.items()})
    return copied


def copy_scores_to_server(
    warehouse: WarehouseResource, con: duckdb.DuckDBPyConnection, dates: Sequence[date]
) -> dict[str, int]:
    """Write the scoring's tables to the server's ``marts``: the rows of ``dates`` of those kept
    per date, then the current scores whole (each a transaction; the server's readers read
    ``published``, which only :func:`publish_on_server` changes)."""
    dated = [table for table, per_date in SCORING_OUTPUTS.items() if per_date]
    whole = [table for table, per_date in SCORING_OUTPUTS.items() if not per_date]
    with warehouse.postgres() as server:
        copied = copy_tables(con, server, "marts", dated, dates=dates)
        copied |= copy_tables(con, server, "marts", whole)
    return copied


def mirror_changes_from_server(
    warehouse: WarehouseResource, con: duckdb.DuckDBPyConnection, dates: Sequence[date]
) -> dict[str, int]:
    return mirror_from_server(warehouse, con, dates, CHANGES_FACTS)


def publish_on_server(warehouse: WarehouseResource, info: Mapping[str, object]) -> None:
    """Swap in the server's ``published`` schema: the published tables of ``marts``, one
    transaction."""
    with warehouse.postgres() as server:
        publish_schema(server, PUBLISHED_TABLES, info)
