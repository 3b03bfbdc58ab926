"""The transform on PostgreSQL: the dbt project builds and tests there, to the rows DuckDB builds.

The raw tables of the session's pipeline run (DuckDB) are loaded into a real PostgreSQL server
with COPY (:func:`dagster_project.postgres.copy_tables`), and ``dbt build --target postgres``
(dbt-postgres) runs every model, unit test and data test there, as of the run's date. Every
table dbt built must then hold the same rows on both engines (doubles to ten significant
digits: sums and averages may add in another order).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from decimal import Decimal

import duckdb
import pytest

from dagster_project.defs.project import dbt_executable
from dagster_project.postgres import (
    connect,
    copy_raw_tables,
    libpq_environment,
    postgres_column_type,
)
from tests.dbt_invocation import project_arguments

#: Built after scoring, from the score history the scoring step writes (not on PostgreSQL yet).
CHANGES_MODEL = "account_fit_score_changes"


@pytest.fixture(scope="module")
def postgres_build(pipeline_run, postgres_environment, tmp_path_factory):
    """The run's raw tables copied to PostgreSQL and the dbt project built there."""
    settings, summary = pipeline_run
    target_path = tmp_path_factory.mktemp("dbt-postgres")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as warehouse:
        copied = copy_raw_tables(warehouse, postgres_environment)
    build = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--target",
            "postgres",
            *project_arguments(target_path, target_path),
            "--exclude",
            CHANGES_MODEL,
        ],
        env={**os.environ, **postgres_environment, "ICP_DBT_AS_OF_DATE": summary.as_of_date},
        capture_output=True,
        text=True,
    )
    return settings, summary, copied, build, target_path


def test_raw_tables_reach_postgres_whole(postgres_build, postgres_environment):
    settings, _, copied, _, _ = postgres_build
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as warehouse:
        for table, rows in copied.items():
            assert rows == warehouse.execute(f'SELECT count(*) FROM raw."{table}"').fetchone()[0]
    assert copied["crm__accounts"] > 0


def test_dbt_builds_and_tests_every_node_on_postgres(postgres_build):
    _, _, _, build, _ = postgres_build
    assert build.returncode == 0, build.stdout[-6000:]
    done = [line for line in build.stdout.splitlines() if "Done." in line][-1]
    assert "ERROR=0" in done and "SKIP=0" in done, done


def test_every_model_holds_the_rows_duckdb_built(postgres_build, postgres_environment):
    settings, summary, _, build, target_path = postgres_build
    assert build.returncode == 0, build.stdout[-6000:]
    manifest = json.loads((target_path / "manifest.json").read_text())
    models = sorted(
        (node["schema"], node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] != CHANGES_MODEL
    )
    assert len(models) > 20
    differences = []
    with (
        duckdb.connect(str(settings.warehouse_path), read_only=True) as warehouse,
        connect(postgres_environment) as server,
        server.cursor() as cursor,
    ):
        for schema, name in models:
            columns = [
                column
                for (column,) in warehouse.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "$schema AND table_name = $name ORDER BY ordinal_position",
                    {"schema": schema, "name": name},
                ).fetchall()
            ]
            # The incremental marts of the DuckDB run also hold the backtest's date.
            where = " WHERE as_of_date = %s" if "as_of_date" in columns else ""
            select = ", ".join(f'"{column}"' for column in columns)
            query = f'SELECT {select} FROM "{schema}"."{name}"{where}'
            date = [dt.date.fromisoformat(summary.as_of_date)] if where else []
            duckdb_rows = _comparable(warehouse.execute(query.replace("%s", "?"), date).fetchall())
            cursor.execute(query, date)
            postgres_rows = _comparable(cursor.fetchall())
            if duckdb_rows != postgres_rows:
                only_duckdb = [row for row in duckdb_rows if row not in postgres_rows][:3]
                only_postgres = [row for row in postgres_rows if row not in duckdb_rows][:3]
                differences.append(
                    f"{schema}.{name}: {len(duckdb_rows)} rows on DuckDB, "
                    f"{len(postgres_rows)} on PostgreSQL; only on DuckDB {only_duckdb}, "
                    f"only on PostgreSQL {only_postgres}"
                )
    assert not differences, "\n".join(differences)
    assert ("marts", "fct_account_metrics") in models


def _comparable(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(_value(value) for value in row) for row in rows), key=repr)


def _value(value):
    if isinstance(value, float | Decimal):
        return float(f"{float(value):.10g}")
    if isinstance(value, list):
        return tuple(_value(item) for item in value)
    return value


def test_duckdb_types_map_to_postgres_types():
    assert postgres_column_type("VARCHAR[]") == "text[]"
    assert postgres_column_type("DECIMAL(7,2)") == "numeric(7,2)"
    assert postgres_column_type("TIMESTAMP") == "timestamp"
    with pytest.raises(ValueError, match="no PostgreSQL type"):
        postgres_column_type("STRUCT(a INTEGER)")


def test_a_connection_string_stands_in_for_the_libpq_variables():
    environ = {
        "ICP_PG_DSN": "postgresql://reader:s%40cret@db.internal:6543/warehouse",
        "PGHOST": "ignored",
    }
    assert libpq_environment(environ) == {
        "PGHOST": "db.internal",
        "PGPORT": "6543",
        "PGUSER": "reader",
        "PGPASSWORD": "s@cret",
        "PGDATABASE": "warehouse",
    }
    assert libpq_environment({"PGHOST": "127.0.0.1", "HOME": "/root"}) == {"PGHOST": "127.0.0.1"}
