"""Small SQL building blocks shared by ingest, scoring and publishing (DuckDB dialect).

Identifiers and literals built here come from the project's own contracts and config, or are
paths the project chose; data values are always bound as parameters, never passed here.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

__all__ = [
    "add_missing_columns",
    "quote_identifier",
    "string_literal",
    "table_exists",
    "wilson_bound_sql",
]


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier, doubling embedded quotes."""
    return '"' + name.replace('"', '""') + '"'


def string_literal(text: str | Path) -> str:
    """Quote an SQL string literal, doubling embedded quotes (for statements that take no
    parameters, such as ATTACH and COPY ... TO)."""
    return "'" + str(text).replace("'", "''") + "'"


def json_member_path(key: str) -> str:
    """The JSONPath of the object member ``key``, quoted (a name may hold spaces or dots)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the connection's default catalog."""
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = $schema AND table_name = $table",
            {"schema": schema, "table": table},
        ).fetchone()[0]
    )


def add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, like: str) -> None:
    """Add to the published ``table`` every column of ``like`` it lacks (NULL in its old rows),
    so a table published by an older version takes the rows of a newer one."""
    existing = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    for name, column_type, *_ in con.execute(f"DESCRIBE {like}").fetchall():
        if name not in existing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(name)} {column_type}")


def wilson_bound_sql(rate: str, count: str, z: str, side: str) -> str:
    """SQL for the lower (``side='lower'``) or upper end of the Wilson score interval of a
    proportion ``rate`` over ``count`` trials; ``z`` is a number or a ``$parameter``.

    The interval always holds ``rate`` and lies in [0, 1], but its floating-point formula
    does not: at ``rate = 0`` the lower end comes out as about 1e-19, above the rate it bounds,
    which the published table's expectation (low end <= share) rightly refuses. The ends
    are clamped to [0, rate] and [rate, 1] so the arithmetic noise never crosses them."""
    sign = {"lower": "-", "upper": "+"}[side]
    bound = (
        f"(({rate}) + {z} * {z} / (2 * ({count})) {sign} {z} * sqrt(({rate}) * (1 - ({rate}))"
        f" / ({count}) + {z} * {z} / (4 * ({count}) * ({count}))))"
        f" / (1 + {z} * {z} / ({count}))"
    )
    if side == "lower":
        return f"greatest(0.0, least(({rate}), {bound}))"
    return f"least(1.0, greatest(({rate}), {bound}))"
