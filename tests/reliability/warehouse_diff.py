"""Compare what two runs left: DuckDB tables, the published copy and its Parquet version.

Used by the guarantees "reruns are idempotent" and "crashes lose nothing": two correct runs of
the same date must leave the same rows everywhere, except in ``RUN_TIME_COLUMNS``. Rows are
compared as multisets in DuckDB (``EXCEPT ALL``), every type exactly, floating point included:
the dbt sums of doubles are exact (``exact_sum``), so a rerun reproduces every bit.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.publish import PUBLISHED_TABLES, current_parquet_version
from dagster_project.sql import quote_identifier, string_literal

#: Columns whose values are the wall-clock time of the run (or an id drawn at run time), so two
#: correct runs of the same date differ there; every other column must be equal. A test that
#: a run left rows untouched compares these too.
RUN_TIME_COLUMNS: dict[tuple[str, str, str], str] = {
    ("marts", "account_fit_scores", "scored_at"): "when the scoring step ran",
    ("marts", "account_fit_score_history", "scored_at"): (
        "when the scoring step ran (kept per as-of date)"
    ),
    ("marts", "account_fit_score_changes", "scored_at"): (
        "when the scoring step scored the row's as-of date (copied from the history)"
    ),
    ("raw", "quarantined_rows", "quarantined_at"): (
        "when the ingest step quarantined the row (the sample data has no bad rows; listed so "
        "a landing zone with some compares too)"
    ),
    ("raw", "_ingest_states", "generation"): (
        "how many loads of the raw table may have removed rows: counts loads, so one backfill "
        "run and the same dates run one by one differ (ingest/ledger.py)"
    ),
    ("raw", "_ingest_states", "version"): "how many loads changed the raw table (as above)",
    ("raw", "_ingest_states", "parents"): "the parents' generation and version at the load",
    ("meta", "publish_info", "version"): (
        "published copy only: a new id (UTC time + random suffix) per publish"
    ),
    ("meta", "publish_info", "published_at"): "published copy only: when the publish ran",
}
#: The same in a Parquet version's ``_manifest.json``.
RUN_TIME_MANIFEST_KEYS = {"version": "a new id per publish", "published_at": "when it ran"}


def copy_database(source: Path, target: Path) -> Path:
    """Copy a closed DuckDB file (and its write-ahead log, if one was left) to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    wal = Path(f"{source}.wal")
    if wal.exists():
        shutil.copy2(wal, Path(f"{target}.wal"))
    return target


def query(path: Path, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def as_of_dates(path: Path, table: str) -> list[date]:
    """The distinct ``as_of_date`` values of ``table`` (``schema.table``), in order."""
    return [d for (d,) in query(path, f"SELECT DISTINCT as_of_date FROM {table} ORDER BY 1")]


def _columns(
    con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str
) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = $c "
        "AND schema_name = $s AND table_name = $t ORDER BY column_index",
        {"c": catalog, "s": schema, "t": table},
    ).fetchall()


def _select_list(columns: list[tuple[str, str]], schema: str, table: str, keep_run_time: bool):
    return ", ".join(
        quote_identifier(name)
        for name, _ in columns
        if keep_run_time or (schema, table, name) not in RUN_TIME_COLUMNS
    )


def _row_differences(
    con: duckdb.DuckDBPyConnection, left: str, right: str, selected: str, where: str, params: dict
) -> tuple[int, int, int, int]:
    """(rows only in left, rows only in right, left rows, right rows) of two relations."""
    lt = f"(SELECT {selected} FROM {left} WHERE {where})"
    rt = f"(SELECT {selected} FROM {right} WHERE {where})"
    return con.execute(
        f"SELECT (SELECT count(*) FROM ({lt} EXCEPT ALL {rt})), "
        f"(SELECT count(*) FROM ({rt} EXCEPT ALL {lt})), "
        f"(SELECT count(*) FROM {lt}), (SELECT count(*) FROM {rt})",
        params,
    ).fetchone()


def table_differences(
    left: Path,
    right: Path,
    *,
    schemas: tuple[str, ...] | None = None,
    tables: tuple[str, ...] | None = None,
    where: str = "true",
    params: dict | None = None,
    keep_run_time: bool = False,
) -> list[str]:
    """The tables of two DuckDB files (those of ``schemas``, or only ``tables`` given as
    ``schema.table``, or all): same tables, same columns, the same rows matching ``where`` as
    multisets, ``RUN_TIME_COLUMNS`` left out unless ``keep_run_time``. One line per
    difference; an empty list when they hold the same."""
    problems = []
    with duckdb.connect() as con:
        con.execute(f"ATTACH {string_literal(left)} AS l (READ_ONLY)")
        con.execute(f"ATTACH {string_literal(right)} AS r (READ_ONLY)")

        def listed(catalog: str) -> set[tuple[str, str]]:
            found = set(
                con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = $c",
                    {"c": catalog},
                ).fetchall()
            )
            if schemas is not None:
                found = {(s, t) for s, t in found if s in schemas}
            if tables is not None:
                found = {(s, t) for s, t in found if f"{s}.{t}" in tables}
            return found

        left_tables, right_tables = listed("l"), listed("r")
        if left_tables != right_tables:
            problems.append(f"tables in one file only: {sorted(left_tables ^ right_tables)}")
        if tables is not None and len(left_tables) != len(tables):
            problems.append(
                f"tables not found: {set(tables) - {f'{s}.{t}' for s, t in left_tables}}"
            )
        for schema, table in sorted(left_tables & right_tables):
            columns = _columns(con, "l", schema, table)
            if columns != _columns(con, "r", schema, table):
                problems.append(f"{schema}.{table}: columns differ")
                continue
            selected = _select_list(columns, schema, table, keep_run_time)
            only_left, only_right, left_rows, right_rows = _row_differences(
                con, f"l.{schema}.{table}", f"r.{schema}.{table}", selected, where, params or {}
            )
            if only_left or only_right or left_rows != right_rows:
                problems.append(
                    f"{schema}.{table}: {left_rows} vs {right_rows} rows where {where} "
                    f"{params or ''}, {only_left} only in {left}, {only_right} only in {right}"
                )
    return problems


def parquet_differences(left_published: Path, right_published: Path) -> list[str]:
    """The current Parquet versions of two published folders: same tables, same rows (but for
    RUN_TIME_COLUMNS), same manifest (but for RUN_TIME_MANIFEST_KEYS)."""
    problems = []
    versions = [current_parquet_version(p) for p in (left_published, right_published)]
    if None in versions:
        return [f"no current Parquet version: {versions}"]
    manifests = [
        {
            key: value
            for key, value in json.loads((version / "_manifest.json").read_text()).items()
            if key not in RUN_TIME_MANIFEST_KEYS
        }
        for version in versions
    ]
    if manifests[0] != manifests[1]:
        problems.append(f"manifests differ: {manifests}")
    with duckdb.connect() as con:
        for table in PUBLISHED_TABLES:
            files = [sorted((version / table).rglob("*.parquet")) for version in versions]
            if not files[0] or not files[1]:
                if bool(files[0]) != bool(files[1]):
                    problems.append(f"parquet {table}: files in one version only")
                continue
            left, right = (
                f"read_parquet({string_literal(version / table / '**' / '*.parquet')}, "
                "hive_partitioning = true)"
                for version in versions
            )
            columns = con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE FROM {left})"
            ).fetchall()
            selected = _select_list(columns, "marts", table, keep_run_time=False)
            only_left, only_right, left_rows, right_rows = _row_differences(
                con, left, right, selected, "true", {}
            )
            if only_left or only_right or left_rows != right_rows:
                problems.append(
                    f"parquet {table}: {left_rows} vs {right_rows} rows, "
                    f"{only_left} / {only_right} differ"
                )
    return problems
