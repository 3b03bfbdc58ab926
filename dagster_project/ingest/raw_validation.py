"""The independent guard on a loaded raw table: its pandera contract, validated in DuckDB.

pandera's ibis backend (0.35) has two faults this module works around (see
shared/STACK_NOTES.md): it reports ``not_nullable`` failures on a 0-row table, and its
``not_nullable`` failure case is an ibis expression dump instead of values. A 0-row table
(an absent or header-only optional file) is valid by definition; a ``not_nullable``
finding is recounted in SQL and reported as the number of NULL rows with example keys.
"""

from __future__ import annotations

import duckdb

from dagster_project.ingest.contracts import EntityContract, to_pandera_ibis_schema
from dagster_project.sql import quote_identifier

__all__ = ["raw_contract_failures"]

_MAX_FAILURES = 100
_EXAMPLES = 3


def raw_contract_failures(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> list[str]:
    """Failures of the pandera contract on ``raw.<table>``, as ``column: check (values)``.

    Empty when the table is valid, also when it has no rows.
    """
    import ibis
    import pandera.errors

    table_sql = f"raw.{quote_identifier(contract.raw_table)}"
    if con.execute(f"SELECT count(*) FROM {table_sql}").fetchone()[0] == 0:
        return []
    table = ibis.duckdb.from_connection(con).table(contract.raw_table, database="raw")
    try:
        to_pandera_ibis_schema(contract).validate(table, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases.head(_MAX_FAILURES)
        failures = []
        for _, row in cases.iterrows():
            failure = _describe(con, contract, table_sql, row)
            if failure is not None and failure not in failures:
                failures.append(failure)
        return failures
    return []


def _describe(con, contract: EntityContract, table_sql: str, row) -> str | None:
    check = str(row["check"])
    case = row["failure_case"]
    column = str(row["column"])
    if check == "not_nullable":
        nulls, examples = _null_rows(con, contract, table_sql, column)
        if nulls == 0:
            return None
        return f"{column}: not_nullable ({nulls} NULL row(s), e.g. {examples})"
    if isinstance(case, dict) and len(case) == 1:
        # The ibis backend names value failures "failure_case" and gives {column: value}.
        ((column, value),) = case.items()
        return f"{column}: {check} (value {value!r})"
    return f"{column}: {check} ({case!r})"


def _null_rows(con, contract: EntityContract, table_sql: str, column: str) -> tuple[int, str]:
    if column not in contract.column_names:
        return 0, ""
    key = contract.primary_key[0]
    rows = con.execute(
        f"SELECT count(*) OVER (), {quote_identifier(key)} FROM {table_sql} "
        f"WHERE {quote_identifier(column)} IS NULL LIMIT {_EXAMPLES}"
    ).fetchall()
    if not rows:
        return 0, ""
    return rows[0][0], ", ".join(f"{key}={row[1]!r}" for row in rows)
