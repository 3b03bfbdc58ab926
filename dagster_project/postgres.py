"""The PostgreSQL target: its connection settings and moving tables to and from it with COPY.

Ingest reads and checks the landing zone with an embedded DuckDB (the row rules, the
quarantine and the point-in-time raw tables are the same on every target); for the PostgreSQL
target the raw tables it wrote are then loaded into the server's ``raw`` schema with
``COPY ... FROM STDIN``, and dbt (dbt-postgres, the profile's ``postgres`` target) builds the
models there. Until the scoring's SQL is in dbt, the scoring reads the facts it needs from the
server into the DuckDB working file (:func:`mirror_tables`) and writes its tables back
(:func:`copy_tables`); :func:`publish_schema` then gives readers the ``published`` schema, all
its tables replaced in one transaction. The server comes from the libpq variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``), which
``deploy/postgres_server.sh`` writes for its server, or from ``ICP_PG_DSN``, a libpq
connection string or URI.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.sql import quote_identifier, string_literal

__all__ = [
    "PUBLISHED_SCHEMA",
    "connect",
    "copy_raw_tables",
    "copy_table_if_changed",
    "copy_tables",
    "duckdb_column_type",
    "libpq_environment",
    "mirror_tables",
    "postgres_column_type",
    "publish_schema",
    "server_has_table",
]

#: The schema readers of the PostgreSQL target read (docs/consumers.md).
PUBLISHED_SCHEMA = "published"
#: On the server: the content fingerprint of each table :func:`copy_table_if_changed` copied.
COPIES_TABLE = "_icp_copies"

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


def server_has_table(server, schema: str, table: str) -> bool:
    with server.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",))
        present = cursor.fetchone()[0]
    server.rollback()
    return present


def _server_rows(server, schema: str, table: str) -> int | None:
    """Rows of the server's table, None when it has no such table."""
    if not server_has_table(server, schema, table):
        return None
    with server, server.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {quote_identifier(schema)}.{quote_identifier(table)}")
        return cursor.fetchone()[0]


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
    source: duckdb.DuckDBPyConnection,
    target,
    schema: str,
    tables: Iterable[str],
    dates: Sequence[date] | None = None,
) -> dict[str, int]:
    """Replace ``schema.<table>`` on the server with DuckDB's ``schema.<table>`` for each table,
    in one transaction (readers see the old tables or all the new ones); returns rows copied.
    With ``dates``, only the rows of those as-of dates are replaced (a table the server lacks
    is created). The caller owns ``target`` (it is committed, or rolled back on an error, not
    closed).

    Each table goes through a CSV file (DuckDB writes it, ``COPY ... FROM STDIN`` reads it), so
    memory stays bounded whatever the table's size. In that CSV an unquoted empty field is
    NULL and a quoted one the empty string, for both engines.
    """
    copied = {}
    with tempfile.TemporaryDirectory(prefix="icp-pg-copy-") as scratch, target:
        with target.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            for table in tables:
                copied[table] = _copy_table(source, cursor, schema, table, Path(scratch), dates)
    return copied


def table_fingerprint(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """Row count and the sum of the rows' hashes: equal for equal contents, in any order."""
    rows, hashes = con.execute(
        f"SELECT count(*), coalesce(sum(hash(t)), 0) "
        f"FROM {quote_identifier(schema)}.{quote_identifier(table)} AS t"
    ).fetchone()
    return f"{rows}:{hashes}"


def copy_table_if_changed(
    source: duckdb.DuckDBPyConnection, target, schema: str, table: str
) -> bool:
    """Copy ``schema.table`` to the server unless the server holds the very rows already (the
    fingerprint recorded with the last copy is this table's, and the server's table has as many
    rows); returns whether it copied.

    Compared by content, not by the ingest's own versions: the server may have been restored,
    replaced, or written from another working file since."""
    fingerprint = table_fingerprint(source, schema, table)
    copies = f"{quote_identifier(schema)}.{COPIES_TABLE}"
    with target, target.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {copies} "
            "(table_name text PRIMARY KEY, fingerprint text NOT NULL, copied_at timestamptz)"
        )
        cursor.execute(f"SELECT fingerprint FROM {copies} WHERE table_name = %s", (table,))
        recorded = cursor.fetchone()
    if recorded == (fingerprint,) and _server_rows(target, schema, table) == int(
        fingerprint.split(":")[0]
    ):
        return False
    copy_tables(source, target, schema, [table])
    with target, target.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {copies} VALUES (%s, %s, now()) ON CONFLICT (table_name) "
            "DO UPDATE SET fingerprint = excluded.fingerprint, copied_at = excluded.copied_at",
            (table, fingerprint),
        )
    return True


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


def _copy_table(
    source, cursor, schema: str, table: str, scratch: Path, dates: Sequence[date] | None
) -> int:
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
    where, parameters = "", {}
    if dates is None:
        cursor.execute(f"DROP TABLE IF EXISTS {qualified}")
        cursor.execute(f"CREATE TABLE {qualified} ({definition})")
    else:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({definition})")
        cursor.execute(f"DELETE FROM {qualified} WHERE as_of_date = ANY(%s)", (list(dates),))
        where, parameters = " WHERE list_contains($dates, as_of_date)", {"dates": list(dates)}
    path = scratch / f"{schema}.{table}.csv"
    select = ", ".join(_csv_value(name, column_type) for name, column_type in columns)
    source.execute(
        f"COPY (SELECT {select} FROM {qualified}{where}) TO {string_literal(path)} "
        "(FORMAT csv, HEADER false)",
        parameters,
    )
    column_list = ", ".join(quote_identifier(name) for name, _ in columns)
    with path.open("rb") as rows:
        cursor.copy_expert(f"COPY {qualified} ({column_list}) FROM STDIN WITH (FORMAT csv)", rows)
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


_DUCKDB_SCALAR_TYPES = {
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "double precision": "DOUBLE",
    "real": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
}


def duckdb_column_type(data_type: str, udt_name: str, precision, scale) -> str:
    """DuckDB's type for a PostgreSQL column as ``information_schema.columns`` describes it
    (an array's element type is its ``udt_name`` after the leading underscore). A ``jsonb``
    column has no type of its own: the caller names it (:func:`mirror_tables`)."""
    if data_type == "numeric":
        return f"DECIMAL({precision or 38}, {scale or 0})"
    if data_type == "ARRAY":
        element = {"_text": "text", "_varchar": "text", "_int4": "integer", "_int8": "bigint"}
        if udt_name not in element:
            raise ValueError(f"no DuckDB type for the PostgreSQL array {udt_name}")
        return _DUCKDB_SCALAR_TYPES[element[udt_name]] + "[]"
    if data_type not in _DUCKDB_SCALAR_TYPES:
        raise ValueError(f"no DuckDB type for the PostgreSQL type {data_type}")
    return _DUCKDB_SCALAR_TYPES[data_type]


def mirror_tables(
    server,
    warehouse: duckdb.DuckDBPyConnection,
    schema: str,
    tables: Mapping[str, Mapping[str, str]],
    dates: Sequence[date] | None = None,
) -> dict[str, int]:
    """Copy ``schema.<table>`` from the server into the DuckDB warehouse for each table, in one
    DuckDB transaction; returns rows copied. ``tables`` maps each table to the DuckDB types of
    those of its columns the server's types do not settle (a ``jsonb`` column's struct, the
    contract's types). A table holding ``as_of_date`` gets only the rows of ``dates``
    replaced (when given); any other table is replaced whole.

    The rows go through a CSV file (``COPY ... TO STDOUT``), arrays and ``jsonb`` as JSON
    text, which DuckDB casts to its lists and structs.
    """
    copied = {}
    with tempfile.TemporaryDirectory(prefix="icp-pg-mirror-") as scratch, server.cursor() as cursor:
        warehouse.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        warehouse.execute("BEGIN TRANSACTION")
        try:
            for table, declared in tables.items():
                copied[table] = _mirror_table(
                    cursor, warehouse, schema, table, declared, dates, Path(scratch)
                )
            warehouse.execute("COMMIT")
        except BaseException:
            warehouse.execute("ROLLBACK")
            raise
    server.rollback()  # it only read
    return copied


def _mirror_table(cursor, warehouse, schema, table, declared, dates, scratch: Path) -> int:
    cursor.execute(
        "SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    )
    columns = cursor.fetchall()
    if not columns:
        raise ValueError(f"{schema}.{table} is not on the PostgreSQL server")
    types = {
        name: declared.get(name) or duckdb_column_type(data_type, udt, precision, scale)
        for name, data_type, udt, precision, scale in columns
    }
    as_json = {name for name, data_type, *_ in columns if data_type in ("ARRAY", "jsonb")}
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    dated = dates is not None and "as_of_date" in types
    select = ", ".join(
        f"to_json({quote_identifier(name)})::text" if name in as_json else quote_identifier(name)
        for name in types
    )
    path = scratch / f"{schema}.{table}.csv"
    with path.open("wb") as rows:
        if dated:
            query = cursor.mogrify(
                f"SELECT {select} FROM {qualified} WHERE as_of_date = ANY(%s)", (list(dates),)
            ).decode()
        else:
            query = f"SELECT {select} FROM {qualified}"
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", rows)
    # PostgreSQL's CSV: a quoted empty field is the empty string, an unquoted one NULL; a quote
    # inside a field is doubled. Nothing is left to DuckDB's sniffer, which guesses from a
    # sample (it took the escape for none when the first rows held no quote).
    read = (
        f"read_csv({string_literal(path)}, header = false, delim = ',', quote = '\"', "
        "escape = '\"', allow_quoted_nulls = false, auto_detect = false, "
        "columns = $columns)"
    )
    values = ", ".join(
        f"CAST(CAST({quote_identifier(name)} AS JSON) AS {types[name]}) AS {quote_identifier(name)}"
        if name in as_json
        else quote_identifier(name)
        for name in types
    )
    csv_types = {name: "VARCHAR" if name in as_json else types[name] for name in types}
    definition = ", ".join(f"{quote_identifier(name)} {kind}" for name, kind in types.items())
    if dated:
        warehouse.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({definition})")
        warehouse.execute(
            f"DELETE FROM {qualified} WHERE list_contains($dates, as_of_date)",
            {"dates": list(dates)},
        )
    else:
        warehouse.execute(f"CREATE OR REPLACE TABLE {qualified} ({definition})")
    warehouse.execute(
        f"INSERT INTO {qualified} BY NAME SELECT {values} FROM {read}", {"columns": csv_types}
    )
    path.unlink()
    return warehouse.execute(
        f"SELECT count(*) FROM {qualified}"
        + (" WHERE list_contains($dates, as_of_date)" if dated else ""),
        {"dates": list(dates)} if dated else {},
    ).fetchone()[0]


def publish_schema(server, tables: Sequence[str], info: Mapping[str, object]) -> None:
    """Give readers ``published``: a copy of each ``marts.<table>`` of the server and
    ``published.publish_info`` (one row: ``info`` as JSON, when it was published), all swapped in
    in one transaction. A reader sees the old version or the new one, never a mix: its query
    holds the old tables until it ends, and the swap waits for it."""
    staging = quote_identifier(f"{PUBLISHED_SCHEMA}_next")
    published = quote_identifier(PUBLISHED_SCHEMA)
    with server, server.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {staging} CASCADE")
        cursor.execute(f"CREATE SCHEMA {staging}")
        for table in tables:
            cursor.execute(
                f"CREATE TABLE {staging}.{quote_identifier(table)} AS "
                f"SELECT * FROM marts.{quote_identifier(table)}"
            )
        cursor.execute(
            f"CREATE TABLE {staging}.publish_info AS "
            "SELECT %s::jsonb AS info, now() AS published_at",
            (json.dumps(info, default=str),),
        )
        # CASCADE: a view a reader made on the old tables goes with them (docs/postgres.md).
        cursor.execute(f"DROP SCHEMA IF EXISTS {published} CASCADE")
        cursor.execute(f"ALTER SCHEMA {staging} RENAME TO {published}")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m dagster_project.postgres WAREHOUSE.duckdb")
    with duckdb.connect(sys.argv[1], read_only=True) as warehouse_connection:
        for table_name, rows in copy_raw_tables(warehouse_connection).items():
            print(f"raw.{table_name}: {rows:,} rows")
