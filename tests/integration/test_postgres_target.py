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
import shutil
import subprocess
from contextlib import closing
from decimal import Decimal

import duckdb
import pytest

from dagster_project.defs.project import dbt_executable
from dagster_project.defs.transform.dbt import CHANGES_MODEL, pipeline_dbt_vars
from dagster_project.postgres import (
    connect,
    copy_raw_tables,
    copy_tables,
    libpq_environment,
    postgres_column_type,
)
from dagster_project.scoring.config import load_scoring_config
from tests.dbt_invocation import project_arguments


@pytest.fixture(scope="module")
def postgres_build(pipeline_run, postgres_environment, tmp_path_factory):
    """The run's raw tables copied to PostgreSQL and the dbt project built there."""
    settings, summary = pipeline_run
    target_path = tmp_path_factory.mktemp("dbt-postgres")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as warehouse:
        copied = copy_raw_tables(warehouse, postgres_environment)
    build = _dbt_build(
        target_path,
        ["--target", "postgres", "--exclude", CHANGES_MODEL],
        {**postgres_environment, "ICP_DBT_AS_OF_DATE": summary.as_of_date},
    )
    return settings, summary, copied, build, target_path


def _dbt_build(target_path, arguments: list[str], environment: dict[str, str]):
    return subprocess.run(
        [dbt_executable(), "build", *project_arguments(target_path, target_path), *arguments],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
    )


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
        closing(connect(postgres_environment)) as server,
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
            duckdb_rows, postgres_rows = _rows_on_both(warehouse, cursor, query, date)
            if duckdb_rows != postgres_rows:
                differences.append(f"{schema}.{name}: {_difference(duckdb_rows, postgres_rows)}")
    assert not differences, "\n".join(differences)
    assert ("marts", "fct_account_metrics") in models


#: A previous scored date made from the run's scores, so that every kind of change happens:
#: score moves with every factor moved (n % 7), tier (11), anti-ICP flag and reasons (13),
#: route (17), accounts new on the run's date (19) and accounts removed since (23).
PREVIOUS_SCORED_DATE = """
INSERT INTO marts.account_fit_score_history BY NAME
WITH numbered AS (
    SELECT *, row_number() OVER (ORDER BY account_id) AS n
    FROM marts.account_fit_score_history WHERE as_of_date = $as_of
)
SELECT * EXCLUDE (n) REPLACE (
    CAST($as_of AS DATE) - 1 AS as_of_date,
    CASE WHEN n % 23 = 0 THEN account_id || '-gone' ELSE account_id END AS account_id,
    CASE WHEN n % 7 = 0 THEN fit_score - 15 ELSE fit_score END AS fit_score,
    CASE WHEN n % 11 = 0 THEN CASE fit_tier WHEN 'high' THEN 'low' ELSE 'high' END
        ELSE fit_tier END AS fit_tier,
    CASE WHEN n % 17 = 0 THEN 'nurture' ELSE route END AS route,
    CASE WHEN n % 13 = 0 THEN NOT is_anti_icp ELSE is_anti_icp END AS is_anti_icp,
    CASE WHEN n % 13 = 0 THEN
        CASE WHEN len(anti_icp_reasons) > 0 THEN [] ELSE ['too_small', 'no_budget'] END
        ELSE anti_icp_reasons END AS anti_icp_reasons,
    CASE WHEN n % 7 = 0
        THEN list_transform(factor_points, lambda f: {'factor': f.factor, 'points': f.points - 5})
        ELSE factor_points END AS factor_points
)
FROM numbered
WHERE n % 19 <> 0
"""


def test_the_score_changes_on_postgres_are_duckdbs(postgres_build, postgres_environment, tmp_path):
    """The changes model on both engines, from the same two scored dates of the history."""
    settings, summary, _, build, _ = postgres_build
    assert build.returncode == 0, build.stdout[-6000:]
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(settings.warehouse_path, warehouse)
    as_of = dt.date.fromisoformat(summary.as_of_date)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(PREVIOUS_SCORED_DATE, {"as_of": as_of})
        with closing(connect(postgres_environment)) as server:
            copy_tables(con, server, "marts", ["account_fit_score_history"])
    config = load_scoring_config(settings.scoring_config_path)
    arguments = ["--select", CHANGES_MODEL, "--vars", json.dumps(pipeline_dbt_vars(config))]
    on_date = {"ICP_DBT_AS_OF_DATE": summary.as_of_date}
    built = {
        "duckdb": _dbt_build(
            tmp_path / "dbt-duckdb", arguments, {**on_date, "ICP_WAREHOUSE": str(warehouse)}
        ),
        "postgres": _dbt_build(
            tmp_path / "dbt-postgres",
            [*arguments, "--target", "postgres"],
            {**on_date, **postgres_environment},
        ),
    }
    for engine, result in built.items():
        assert result.returncode == 0, f"{engine}: {result.stdout[-6000:]}"
    query = f"SELECT * FROM marts.{CHANGES_MODEL} WHERE as_of_date = %s"
    with (
        duckdb.connect(str(warehouse), read_only=True) as con,
        closing(connect(postgres_environment)) as server,
        server.cursor() as cursor,
    ):
        duckdb_rows, postgres_rows = _rows_on_both(con, cursor, query, [as_of])
        kinds = {
            kind
            for (kind,) in con.execute(
                f"SELECT DISTINCT change_kind FROM marts.{CHANGES_MODEL} WHERE as_of_date = ?",
                [as_of],
            ).fetchall()
        }
    assert kinds >= {
        "new",
        "removed",
        "anti_icp_flagged",
        "anti_icp_cleared",
        "tier_upgraded",
        "tier_downgraded",
        "route_changed",
        "score_increased",
    }, kinds
    assert duckdb_rows == postgres_rows, _difference(duckdb_rows, postgres_rows)


def _rows_on_both(warehouse, cursor, query: str, parameters: list) -> tuple[list, list]:
    """The rows of ``query`` (``%s`` placeholders) on DuckDB and on PostgreSQL, comparable."""
    duckdb_rows = warehouse.execute(query.replace("%s", "?"), parameters).fetchall()
    cursor.execute(query, parameters)
    return _comparable(duckdb_rows), _comparable(cursor.fetchall())


def _difference(duckdb_rows: list, postgres_rows: list) -> str:
    only_duckdb = [row for row in duckdb_rows if row not in postgres_rows][:3]
    only_postgres = [row for row in postgres_rows if row not in duckdb_rows][:3]
    return (
        f"{len(duckdb_rows)} rows on DuckDB, {len(postgres_rows)} on PostgreSQL; "
        f"only on DuckDB {only_duckdb}, only on PostgreSQL {only_postgres}"
    )


def _comparable(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(_value(value) for value in row) for row in rows), key=repr)


def _value(value):
    if isinstance(value, float | Decimal):
        return float(f"{float(value):.10g}")
    if isinstance(value, list):
        return tuple(_value(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _value(item)) for key, item in value.items()))
    return value


def test_duckdb_types_map_to_postgres_types():
    assert postgres_column_type("VARCHAR[]") == "text[]"
    assert postgres_column_type("DECIMAL(7,2)") == "numeric(7,2)"
    assert postgres_column_type("TIMESTAMP") == "timestamp"
    assert postgres_column_type("STRUCT(factor VARCHAR, points DECIMAL(7,2))[]") == "jsonb"
    with pytest.raises(ValueError, match="no PostgreSQL type"):
        postgres_column_type("UUID")


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
