"""Loading landing files into the ``raw`` schema, row checks and quarantine, all in DuckDB.

Every landing file is read as text (so a bad value is a row-level finding, not a read error),
checked against its :class:`EntityContract` in one SQL pass, and split: rows that pass are cast
to their contract types into ``raw.<source>__<entity>``; rows that fail go to
``raw.quarantined_rows`` with the file, line, first rule broken, every rule broken and the raw
values. Nothing is dropped: per file, rows read = rows loaded + rows quarantined.

SQL is built only from the contract (our own column names, quoted as identifiers); data values
and file paths are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.ingest.contracts import ColumnContract, EntityContract
from dagster_project.ingest.landing import LandingError, LandingFile, find_entity_files

__all__ = [
    "FileCounts",
    "IngestResult",
    "QUARANTINE_TABLE",
    "ensure_raw_schema",
    "ingest_entity",
    "quote_identifier",
]

QUARANTINE_TABLE = "raw.quarantined_rows"
_LANDING_TABLE = "landing_rows"
_CSV_OPTIONS = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"'"


@dataclass(frozen=True)
class FileCounts:
    """Row counts of one landing file after ingest."""

    relative_path: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


@dataclass(frozen=True)
class IngestResult:
    """What one entity's ingest did: per-file counts and quarantined rows per rule."""

    entity: str
    raw_table: str
    files: tuple[FileCounts, ...]
    quarantined_by_rule: Mapping[str, int]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier (doubling embedded quotes), for names that come from files."""
    return '"' + name.replace('"', '""') + '"'


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``raw`` schema and the quarantine table if they are missing."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
            entity VARCHAR NOT NULL,
            export_date DATE,
            source_file VARCHAR NOT NULL,
            line_number BIGINT NOT NULL,
            rule VARCHAR NOT NULL,
            column_name VARCHAR,
            rules_broken VARCHAR[] NOT NULL,
            raw_values JSON NOT NULL,
            quarantined_at TIMESTAMP NOT NULL
        )
        """
    )


def ingest_entity(
    con: duckdb.DuckDBPyConnection,
    contract: EntityContract,
    landing_root: Path,
    as_of: date | None,
) -> IngestResult:
    """Rebuild ``raw.<entity>`` from every export dated <= ``as_of`` and quarantine bad rows.

    Foreign keys are checked against the raw tables of the parent entities, so parents must be
    ingested first (the Dagster asset graph orders them).

    Raises:
        LandingError: a file cannot be read, misses a required column, or the entity has no
            file at all; the message names the file and the column.
    """
    con.execute("SET TimeZone = 'UTC'")
    ensure_raw_schema(con)
    files = find_entity_files(landing_root, contract, as_of)
    if not files and not (contract.is_optional_file or contract.is_reference):
        raise LandingError(
            f"{contract.name}: no file ({contract.entity}.csv, .csv.gz or .parquet) in any "
            f"export folder dated <= {as_of or 'any date'} under {landing_root}"
        )
    _create_landing_table(con, contract)
    for landing_file in files:
        _read_into_landing_table(con, contract, landing_file)
    _check_rows(con, contract)
    con.execute("BEGIN TRANSACTION")
    try:
        _write_raw_table(con, contract)
        _write_quarantine(con, contract)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return _counts(con, contract)


def _create_landing_table(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> None:
    text_columns = ", ".join(f"{quote_identifier(c)} VARCHAR" for c in contract.column_names)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_LANDING_TABLE} (
            {text_columns},
            _export_date DATE,
            _source_file VARCHAR,
            _line_number BIGINT,
            _extra_columns VARCHAR
        )
        """
    )


def _read_into_landing_table(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, landing_file: LandingFile
) -> None:
    if landing_file.file_format == "parquet":
        scan = "read_parquet($path, file_row_number = true)"
        # Parquet has no header line: line numbers count rows from 1.
        line_number = "file_row_number + 1"
    else:
        scan = f"read_csv($path, {_CSV_OPTIONS})"
        # The header is line 1; a record with embedded newlines shifts later physical lines.
        line_number = "row_number() OVER () + 1"
    params: dict[str, object] = {"path": str(landing_file.path)}
    try:
        header = [
            row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}", params).fetchall()
        ]
    except duckdb.Error as error:
        raise LandingError(
            f"{landing_file.relative_path}: cannot be read as {landing_file.file_format} "
            f"(expected UTF-8 CSV with a header row, comma separated, or Parquet): {error}"
        ) from error
    if landing_file.file_format == "parquet":
        header = [name for name in header if name != "file_row_number"]
    by_name: dict[str, str] = {}
    for original in header:
        normalized = original.strip().lstrip("\ufeff").strip().lower()
        if normalized in by_name:
            raise LandingError(
                f"{landing_file.relative_path}: column {normalized!r} appears twice in the header"
            )
        by_name[normalized] = original
    missing = [name for name in contract.required_columns if name not in by_name]
    if missing:
        raise LandingError(
            f"{landing_file.relative_path}: required column(s) {', '.join(missing)} missing; "
            f"expected the columns of {contract.name}: {', '.join(contract.column_names)} "
            f"(found: {', '.join(header) or 'no header'})"
        )
    selected = []
    for name in contract.column_names:
        if name in by_name:
            selected.append(f"CAST({quote_identifier(by_name[name])} AS VARCHAR)")
        else:
            selected.append("CAST(NULL AS VARCHAR)")
    extras = [
        original
        for normalized, original in by_name.items()
        if normalized not in contract.column_names
    ]
    if extras:
        pairs = []
        for index, original in enumerate(extras):
            params[f"extra_{index}"] = original
            pairs.append(f"$extra_{index}, CAST({quote_identifier(original)} AS VARCHAR)")
        extra_json = f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)"
    else:
        extra_json = "CAST(NULL AS VARCHAR)"
    params["export_date"] = landing_file.export_date
    params["source_file"] = landing_file.relative_path
    try:
        con.execute(
            f"""
            INSERT INTO {_LANDING_TABLE}
            SELECT {", ".join(selected)},
                   CAST($export_date AS DATE), $source_file, {line_number}, {extra_json}
            FROM {scan}
            """,
            params,
        )
    except duckdb.Error as error:
        raise LandingError(
            f"{landing_file.relative_path}: cannot be read as {landing_file.file_format}: {error}"
        ) from error


def _qualified(column: ColumnContract) -> str:
    # Qualified so that a correlated subquery (fx rates, parent keys) cannot capture the name.
    return f"landing.{quote_identifier(column.name)}"


def _trimmed(column: ColumnContract) -> str:
    return f"nullif(trim({_qualified(column)}), '')"


def _typed_value(column: ColumnContract) -> str:
    """SQL turning the text of ``column`` into its contract type (NULL when it does not parse)."""
    value = _trimmed(column)
    if column.dtype == "str":
        return _qualified(column)
    if column.dtype == "datetime64[ns, UTC]":
        # Offsets are honoured and the result stored as UTC; the session time zone is UTC,
        # so a value without an offset is read as UTC.
        return f"timezone('UTC', try_cast({value} AS TIMESTAMPTZ))"
    if column.dtype == "Float64":
        number = f"try_cast({value} AS DOUBLE)"
        return f"(CASE WHEN isfinite({number}) THEN {number} END)"
    return f"try_cast({value} AS {column.warehouse_type})"


_TYPE_RULES = {
    "Int64": "invalid_integer",
    "Float64": "invalid_number",
    "boolean": "invalid_boolean",
    "datetime64[ns, UTC]": "invalid_timestamp",
}


def _column_rules(
    contract: EntityContract, column: ColumnContract, params: dict[str, object]
) -> list[tuple[str, str]]:
    """(rule, SQL condition that is true when the row breaks it) for one column."""
    value = _trimmed(column)
    typed = _typed_value(column)
    rules: list[tuple[str, str]] = []
    if not column.nullable:
        rules.append(("missing_required_value", f"{value} IS NULL"))
    if column.dtype in _TYPE_RULES:
        rules.append((_TYPE_RULES[column.dtype], f"{value} IS NOT NULL AND {typed} IS NULL"))
    if column.allowed_values is not None:
        key = f"allowed_{column.name}"
        params[key] = list(column.allowed_values)
        rules.append(
            (
                "value_not_allowed",
                f"{value} IS NOT NULL AND NOT list_contains(${key}, lower({value}))",
            )
        )
    if column.min_value is not None:
        operator = "<=" if column.min_exclusive else "<"
        rules.append(("below_minimum", f"{typed} {operator} {float(column.min_value)!r}"))
    if column.max_value is not None:
        rules.append(("above_maximum", f"{typed} > {float(column.max_value)!r}"))
    if column.pattern is not None:
        key = f"pattern_{column.name}"
        params[key] = column.pattern
        rules.append(
            ("pattern_mismatch", f"{value} IS NOT NULL AND NOT regexp_full_match({value}, ${key})")
        )
    if column.name == "currency" and not contract.is_reference:
        rules.append(
            (
                "unknown_currency",
                f"{value} IS NOT NULL AND upper({value}) <> 'USD' AND NOT EXISTS "
                f"(SELECT 1 FROM raw.fx_rates AS fx WHERE fx.currency = upper({value}))",
            )
        )
    if column.name in contract.foreign_keys:
        parent_source, parent_entity = contract.foreign_keys[column.name].split("/")
        parent_table = f"raw.{parent_source}__{parent_entity}"
        rules.append(
            (
                "orphan_foreign_key",
                f"{value} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent_table} AS parent "
                f"WHERE parent.{quote_identifier(column.name)} = {_qualified(column)})",
            )
        )
    return [(f"{rule}:{column.name}", condition) for rule, condition in rules]


def _check_rows(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> None:
    """Add ``failed_rules`` (every rule a row breaks, in contract order) to the landing rows."""
    params: dict[str, object] = {}
    cases = []
    for column in contract.columns:
        for rule, condition in _column_rules(contract, column, params):
            cases.append(f"CASE WHEN {condition} THEN {_string_literal(rule)} END")
    key_columns = ", ".join(quote_identifier(k) for k in contract.primary_key)
    cases.append(
        "CASE WHEN count(*) OVER (PARTITION BY _source_file, "
        f"{key_columns}) > 1 THEN 'duplicate_key_in_file:{'+'.join(contract.primary_key)}' END"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE checked_rows AS
        SELECT *, list_filter([{", ".join(cases)}], lambda rule: rule IS NOT NULL) AS failed_rules
        FROM {_LANDING_TABLE} AS landing
        """,
        params,
    )


def _write_raw_table(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> None:
    typed_columns = ", ".join(
        f"CAST({_typed_value(c)} AS {c.warehouse_type}) AS {quote_identifier(c.name)}"
        for c in contract.columns
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE raw.{quote_identifier(contract.raw_table)} AS
        SELECT {typed_columns}, _export_date, _source_file, _line_number, _extra_columns
        FROM checked_rows AS landing
        WHERE len(failed_rules) = 0
        ORDER BY _source_file, _line_number
        """
    )


def _write_quarantine(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> None:
    raw_values = ", ".join(
        f"{_string_literal(c)}, {quote_identifier(c)}" for c in contract.column_names
    )
    con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE entity = $entity", {"entity": contract.name})
    con.execute(
        f"""
        INSERT INTO {QUARANTINE_TABLE}
        SELECT $entity,
               _export_date,
               _source_file,
               _line_number,
               split_part(failed_rules[1], ':', 1),
               split_part(failed_rules[1], ':', 2),
               failed_rules,
               json_merge_patch(json_object({raw_values}), coalesce(_extra_columns, '{{}}')),
               now()::TIMESTAMP
        FROM checked_rows
        WHERE len(failed_rules) > 0
        ORDER BY _source_file, _line_number
        """,
        {"entity": contract.name},
    )


def _counts(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> IngestResult:
    rows = con.execute(
        f"""
        WITH read_counts AS (
            SELECT _source_file AS source_file, count(*) AS rows_read
            FROM {_LANDING_TABLE} GROUP BY ALL
        ),
        loaded_counts AS (
            SELECT _source_file AS source_file, count(*) AS rows_loaded
            FROM raw.{quote_identifier(contract.raw_table)} GROUP BY ALL
        ),
        quarantined_counts AS (
            SELECT source_file, count(*) AS rows_quarantined
            FROM {QUARANTINE_TABLE} WHERE entity = $entity GROUP BY ALL
        )
        SELECT source_file,
               coalesce(rows_read, 0),
               coalesce(rows_loaded, 0),
               coalesce(rows_quarantined, 0)
        FROM read_counts
        FULL OUTER JOIN loaded_counts USING (source_file)
        FULL OUTER JOIN quarantined_counts USING (source_file)
        ORDER BY source_file
        """,
        {"entity": contract.name},
    ).fetchall()
    by_rule = con.execute(
        f"SELECT rule, count(*) FROM {QUARANTINE_TABLE} WHERE entity = $entity "
        "GROUP BY rule ORDER BY rule",
        {"entity": contract.name},
    ).fetchall()
    return IngestResult(
        entity=contract.name,
        raw_table=f"raw.{contract.raw_table}",
        files=tuple(FileCounts(*row) for row in rows),
        quarantined_by_rule=dict(by_rule),
    )
