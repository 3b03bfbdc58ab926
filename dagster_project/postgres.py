"""The PostgreSQL target: its connection settings and loading tables into it with COPY.

Ingest reads and checks the landing zone with an embedded DuckDB (the row rules, the
quarantine and the point-in-time raw tables are the same on every target); for the PostgreSQL
target the raw tables it wrote are then loaded into the server's ``raw`` schema with
``COPY ... FROM STDIN``, and dbt (dbt-postgres, the profile's ``postgres`` target) builds the
models there. The server comes from the libpq variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGPASSWORD``, ``PGDATABASE``), which ``deploy/postgres_server.sh`` writes for its server, or
from ``ICP_PG_DSN``, a libpq connection string or URI.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path

import duckdb

from dagster_project.sql import quote_identifier, string_literal

__all__ = [
    "connect",
    "copy_raw_tables",
    "copy_tables",
    "libpq_environment",
    "postgres_column_type",
]

#: The libpq variables dbt's ``postgres`` target reads (dbt/profiles.yml), with the libpq
#: connection keyword each one stands for.
LIBPQ_KEYWORDS = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGDATABASE": "dbname",
}

_SCALAR_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSON": "jsonb",
}


def libpq_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The PG* variables for the server: from ``ICP_PG_DSN`` when it is set (parsed by libpq
    itself), else those already in ``environ``."""
    import psycopg2.extensions

    environ = os.environ if environ is None else environ
    dsn = environ.get("ICP_PG_DSN")
    if not dsn:
        return {name: environ[name] for name in LIBPQ_KEYWORDS if name in environ}
    parts = psycopg2.extensions.parse_dsn(dsn)
    return {
        variable: str(parts[keyword])
        for variable, keyword in LIBPQ_KEYWORDS.items()
        if keyword in parts
    }


def connect(environ: Mapping[str, str] | None = None):
    """A psycopg2 connection to the configured server (libpq reads the PG* variables)."""
    import psycopg2

    settings = libpq_environment(environ)
    return psycopg2.connect(
        **{LIBPQ_KEYWORDS[variable]: value for variable, value in settings.items()}
    )


def postgres_column_type(duckdb_type: str) -> str:
    """PostgreSQL's type for a DuckDB column type: a list of scalars becomes an array, a
    struct or a list of structs (the score's factor points) a ``jsonb`` document."""
    if _is_document(duckdb_type):
        return "jsonb"
    if duckdb_type.endswith("[]"):
        return postgres_column_type(duckdb_type[:-2]) + "[]"
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.replace("DECIMAL", "numeric")
    if duckdb_type not in _SCALAR_TYPES:
        raise ValueError(f"no PostgreSQL type for the DuckDB type {duckdb_type}")
    return _SCALAR_TYPES[duckdb_type]


def copy_tables(
    source: duckdb.DuckDBPyConnection, target, schema: str, tables: Iterable[str]
) -> dict[str, int]:
    """Replace ``schema.<table>`` on the server with DuckDB's ``schema.<table>`` for each table,
    in one transaction (readers see the old tables or all the new ones); returns rows copied.
    The caller owns ``target`` (it is committed, or rolled back on an error, not closed).

    Each table goes through a CSV file (DuckDB writes it, ``COPY ... FROM STDIN`` reads it), so
    memory stays bounded whatever the table's size. In that CSV an unquoted empty field is
    NULL and a quoted one the empty string, for both engines.
    """
    copied = {}
    with tempfile.TemporaryDirectory(prefix="icp-pg-copy-") as scratch, target:
        with target.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            for table in tables:
                copied[table] = _copy_table(source, cursor, schema, table, Path(scratch))
    return copied


def copy_raw_tables(
    warehouse: duckdb.DuckDBPyConnection, environ: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Load the warehouse's raw entity tables (not the ingest's own bookkeeping, ``raw._*``)
    into the server's ``raw`` schema, the tables dbt's ``raw`` sources read."""
    tables = [
        name
        for (name,) in warehouse.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
            "AND NOT starts_with(table_name, '_') ORDER BY table_name"
        ).fetchall()
    ]
    with closing(connect(environ)) as target:
        return copy_tables(warehouse, target, "raw", tables)


def _copy_table(source, cursor, schema: str, table: str, scratch: Path) -> int:
    columns = source.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
        {"schema": schema, "table": table},
    ).fetchall()
    if not columns:
        raise ValueError(f"{schema}.{table} is not in the DuckDB warehouse")
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    definition = ", ".join(
        f"{quote_identifier(name)} {postgres_column_type(column_type)}"
        for name, column_type in columns
    )
    cursor.execute(f"DROP TABLE IF EXISTS {qualified}")
    cursor.execute(f"CREATE TABLE {qualified} ({definition})")
    path = scratch / f"{schema}.{table}.csv"
    select = ", ".join(_csv_value(name, column_type) for name, column_type in columns)
    source.execute(
        f"COPY (SELECT {select} FROM {qualified}) TO {string_literal(path)} "
        "(FORMAT csv, HEADER false)"
    )
    with path.open("rb") as rows:
        cursor.copy_expert(f"COPY {qualified} FROM STDIN WITH (FORMAT csv)", rows)
    path.unlink()
    return cursor.rowcount


def _is_document(duckdb_type: str) -> bool:
    return duckdb_type.startswith("STRUCT")


def _csv_value(name: str, column_type: str) -> str:
    """The column as PostgreSQL's COPY reads it: a list as an array literal (``{a,"b c"}``), a
    struct or list of structs as JSON text."""
    column = quote_identifier(name)
    if _is_document(column_type):
        return f"CAST(to_json({column}) AS VARCHAR) AS {column}"
    if not column_type.endswith("[]"):
        return column
    # Every element quoted, backslashes and quotes escaped, NULL elements as NULL.
    element = (
        "CASE WHEN x IS NULL THEN 'NULL' ELSE "
        "'\"' || replace(replace(CAST(x AS VARCHAR), '\\', '\\\\'), '\"', '\\\"') || '\"' END"
    )
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE "
        f"'{{' || array_to_string(list_transform({column}, lambda x: {element}), ',') || '}}' END "
        f"AS {column}"
    )


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m dagster_project.postgres WAREHOUSE.duckdb")
    with duckdb.connect(sys.argv[1], read_only=True) as warehouse_connection:
        for table_name, rows in copy_raw_tables(warehouse_connection).items():
            print(f"raw.{table_name}: {rows:,} rows")
