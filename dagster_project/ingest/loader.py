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

import csv
import gzip
import io
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.ingest.contracts import ColumnContract, EntityContract, load_contracts
from dagster_project.ingest.landing import (
    FILE_SUFFIXES,
    LandingError,
    LandingFile,
    find_entity_files,
)
from dagster_project.ingest.mapping import EntityMapping, Lookup, column_sql, entity_mapping_for
from dagster_project.ingest.value_maps import (
    VALUE_MAP_TABLE,
    create_value_map_table,
    load_value_maps,
    value_key_sql,
)
from dagster_project.sql import quote_identifier, string_literal

__all__ = [
    "FileCounts",
    "IngestResult",
    "QUARANTINE_TABLE",
    "ensure_raw_schema",
    "ingest_entity",
    "quarantine_share_findings",
    "quote_identifier",
]

QUARANTINE_TABLE = "raw.quarantined_rows"
_LANDING_TABLE = "landing_rows"
#: Longest CSV record (line) read; a longer one fails the file (see docs/contract.md).
MAX_CSV_RECORD_BYTES = 2_000_000
_CSV_OPTIONS = (
    "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
    f"max_line_size = {MAX_CSV_RECORD_BYTES}"
)
_OTHER_DELIMITERS = (
    (";", "semicolons (';')"),
    ("\t", "tabs"),
    ("|", "pipes ('|')"),
)
#: Parquet types that turn into text without loss; the row rules then check the text.
_PARQUET_TEXT_TYPES = re.compile(
    r"^(VARCHAR|BOOLEAN|U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE"
    r"|DECIMAL\(\d+,\s*\d+\)|DATE|TIMESTAMP(_S|_MS|_NS)?|TIMESTAMP WITH TIME ZONE|UUID)$"
)
_PARQUET_EXPECTED = {
    "str": "a text column",
    "Int64": "an integer column or text",
    "Float64": "a number column or text",
    "boolean": "a boolean column or text",
    "datetime64[ns, UTC]": "a date or timestamp column or text",
}


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
    mapping = entity_mapping_for(landing_root, contract, load_contracts())
    files = find_entity_files(
        landing_root, contract, as_of, file_stem=mapping.file if mapping else None
    )
    if not files and not (contract.is_optional_file or contract.is_reference):
        raise LandingError(
            f"{contract.name}: no file ({contract.entity}.csv, .csv.gz or .parquet) in any "
            f"export folder dated <= {as_of or 'any date'} under {landing_root}"
        )
    mappings = load_value_maps(landing_root)
    create_value_map_table(con, mappings)
    mapped_columns = {m.column for m in mappings if m.entity in ("*", contract.name)} & set(
        contract.column_names
    )
    _create_landing_table(con, contract)
    for landing_file in files:
        _read_into_landing_table(con, contract, landing_file, mapped_columns, mapping)
    _check_rows(con, contract)
    con.execute("BEGIN TRANSACTION")
    try:
        _write_raw_table(con, contract)
        _write_quarantine(con, contract)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return _counts(con, contract, files)


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
    con: duckdb.DuckDBPyConnection,
    contract: EntityContract,
    landing_file: LandingFile,
    mapped_columns: set[str] = frozenset(),
    mapping: EntityMapping | None = None,
) -> None:
    """Append the file's rows, as text, to the landing table (with lineage columns); the
    values of ``mapped_columns`` go through the value maps (``value_maps``) first. With a
    ``mapping`` (a system's export, see :mod:`dagster_project.ingest.mapping`), each contract
    column is computed from the file's columns (and its lookup files) as the profile says.

    The file's own column names never reach the SQL: the scan's columns are renamed by
    position to ``c0``, ``c1``, ... and matched to the contract in Python.
    """
    params: dict[str, object] = {"path": str(landing_file.path)}
    header, scan = _scan(con, contract, landing_file, params, "path")
    if mapping is None:
        positions = _match_header(contract, landing_file, header)
        columns = {
            name: f"CAST(source.c{positions[name]} AS VARCHAR)"
            for name in contract.column_names
            if name in positions
        }
        consumed = {_normalized(name) for name in contract.column_names}
        joins = ""
    else:
        columns, consumed, joins = _mapped_columns(
            con, contract, landing_file, header, mapping, params
        )
    selected = []
    for name in contract.column_names:
        text = columns.get(name, "CAST(NULL AS VARCHAR)")
        if name in columns and name in mapped_columns:
            text = _value_mapped(text, contract.name, name)
        selected.append(text)
    extras = [
        (index, original)
        for index, original in enumerate(header)
        if _normalized(original) not in consumed
    ]
    if extras:
        pairs = []
        for index, original in extras:
            params[f"extra_{index}"] = original
            pairs.append(f"$extra_{index}, CAST(source.c{index} AS VARCHAR)")
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
                   CAST($export_date AS DATE), $source_file, source._line, {extra_json}
            FROM {scan}
            {joins}
            """,
            params,
        )
    except duckdb.Error as error:
        raise LandingError(
            f"{landing_file.relative_path}: {_read_error_reason(landing_file, error)}"
        ) from error


def _scan(
    con: duckdb.DuckDBPyConnection,
    contract: EntityContract,
    landing_file: LandingFile,
    params: dict[str, object],
    path_param: str,
    alias: str = "source",
) -> tuple[list[str], str]:
    """(header, a FROM item ``alias`` with columns ``c0``.. as text and ``_line``)."""
    if landing_file.file_format == "parquet":
        header = _parquet_header(con, contract, landing_file)
        names = ", ".join(f"c{index}" for index in range(len(header)))
        # Parquet has no header line: line numbers count rows from 1.
        scan = (
            f"(SELECT *, _row_number + 1 AS _line FROM read_parquet(${path_param}, "
            f"file_row_number = true) AS scanned({names}, _row_number)) AS {alias}"
        )
    else:
        header = _csv_header(landing_file)
        params[f"{path_param}_columns"] = {f"c{index}": "VARCHAR" for index in range(len(header))}
        # The header is line 1 and each record counts as one line (see docs/contract.md);
        # numbered before any join, in file order.
        scan = (
            f"(SELECT *, row_number() OVER () + 1 AS _line FROM read_csv(${path_param}, "
            f"{_CSV_OPTIONS}, columns = ${path_param}_columns)) AS {alias}"
        )
    return header, scan


def _header_positions(landing_file: LandingFile, header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, original in enumerate(header):
        normalized = _normalized(original)
        if normalized in positions:
            raise LandingError(
                f"{landing_file.relative_path}: column {normalized!r} appears twice in the header"
            )
        positions[normalized] = index
    return positions


def _mapped_columns(
    con: duckdb.DuckDBPyConnection,
    contract: EntityContract,
    landing_file: LandingFile,
    header: list[str],
    mapping: EntityMapping,
    params: dict[str, object],
) -> tuple[dict[str, str], set[str], str]:
    """(contract column -> SQL text, the file's columns consumed, the lookup joins)."""
    where = f"(profile {mapping.profile}, {mapping.entity})"
    available = {"": _header_positions(landing_file, header)}
    tables = {"": "source"}
    joins = []
    for number, lookup in enumerate(mapping.lookups):
        lookup_file = _lookup_file(landing_file, lookup, where)
        path_param = f"lookup_{number}"
        params[path_param] = str(lookup_file.path)
        lookup_header, lookup_scan = _scan(
            con, contract, lookup_file, params, path_param, "scanned"
        )
        positions = _header_positions(lookup_file, lookup_header)
        if _normalized(lookup.key) not in positions:
            raise LandingError(
                f"{lookup_file.relative_path}: key column {lookup.key!r} of lookup "
                f"{lookup.alias!r} missing {where}"
            )
        key = f"scanned.c{positions[_normalized(lookup.key)]}"
        alias = f"lookup_{number}"
        on = _source_column(lookup.on, available, tables)
        if on is None:
            raise LandingError(
                f"{landing_file.relative_path}: column {lookup.on!r} to look up "
                f"{lookup.alias!r} missing {where}"
            )
        # One row per key (the first in the file), so a lookup never multiplies rows.
        joins.append(
            f"LEFT JOIN (SELECT scanned.*, trim({key}) AS _key FROM {lookup_scan} "
            f"QUALIFY row_number() OVER (PARTITION BY trim({key}) ORDER BY scanned._line) = 1) "
            f"AS {alias} ON {alias}._key = trim({on})"
        )
        available[lookup.alias] = positions
        tables[lookup.alias] = alias
    columns = {}
    for name, spec in mapping.columns.items():
        missing = [
            ref for ref in spec.referenced() if _source_column(ref, available, tables) is None
        ]
        if missing:
            if contract.column(name).required:
                raise LandingError(
                    f"{landing_file.relative_path}: column(s) {', '.join(missing)} for the "
                    f"required column {name} missing {where} (found: "
                    f"{_shorten(', '.join(header))})"
                )
            continue  # an optional field this export does not have (a custom field)
        columns[name] = column_sql(
            spec, lambda ref: _source_column(ref, available, tables), params, f"map_{name}"
        )
    consumed = {_normalized(ref) for ref in mapping.main_columns()}
    return columns, consumed, "\n".join(joins)


def _source_column(ref: str, available: dict, tables: dict) -> str | None:
    """SQL of a source column ``name`` or ``lookup.name``; None when the file lacks it."""
    alias, _, name = ref.partition(".") if ref.split(".", 1)[0] in tables else ("", "", ref)
    index = available[alias].get(_normalized(name))
    return None if index is None else f"CAST({tables[alias]}.c{index} AS VARCHAR)"


def _lookup_file(landing_file: LandingFile, lookup: Lookup, where: str) -> LandingFile:
    folder = landing_file.path.parent
    root_relative = Path(landing_file.relative_path).parent
    for suffix in FILE_SUFFIXES:
        candidate = folder / f"{lookup.file}{suffix}"
        if candidate.is_file():
            if not candidate.resolve().is_relative_to(folder):
                raise LandingError(
                    f"{(root_relative / candidate.name).as_posix()}: resolves to "
                    f"{candidate.resolve()}, outside its export folder {where}"
                )
            return LandingFile(
                path=candidate.resolve(),
                relative_path=(root_relative / candidate.name).as_posix(),
                export_date=landing_file.export_date,
            )
    raise LandingError(
        f"{landing_file.relative_path}: lookup {lookup.alias!r} needs {lookup.file}.csv "
        f"(.csv.gz or .parquet) in the same export folder {where}"
    )


def _value_mapped(text: str, entity: str, column: str) -> str:
    """``text`` replaced by its value map entry for the column, the entity's own before
    ``*``; unchanged when no map names it."""
    return (
        f"coalesce((SELECT maps_to FROM {VALUE_MAP_TABLE} AS value_map "
        f"WHERE value_map.entity IN ({string_literal(entity)}, '*') "
        f"AND value_map.column_name = {string_literal(column)} "
        f"AND value_map.value_key = {value_key_sql(text)} "
        f"ORDER BY value_map.entity = '*' LIMIT 1), {text})"
    )


def _normalized(column_name: str) -> str:
    return column_name.strip().lstrip("\ufeff").strip().lower()


def _match_header(
    contract: EntityContract, landing_file: LandingFile, header: list[str]
) -> dict[str, int]:
    """Position of each contract column in the file's header; fails on a missing column."""
    positions = _header_positions(landing_file, header)
    missing = [name for name in contract.required_columns if name not in positions]
    if not missing:
        return positions
    if landing_file.file_format == "csv" and len(header) == 1:
        for delimiter, label in _OTHER_DELIMITERS:
            if delimiter in header[0]:
                raise LandingError(
                    f"{landing_file.relative_path}: the header is separated by {label}, not by "
                    f"commas; expected a comma-separated CSV with the columns of "
                    f"{contract.name} (found one column: {_shorten(header[0])!r})"
                )
    raise LandingError(
        f"{landing_file.relative_path}: required column(s) {', '.join(missing)} missing; "
        f"expected the columns of {contract.name}: {', '.join(contract.column_names)} "
        f"(found: {_shorten(', '.join(header)) or 'no header'})"
    )


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _csv_header(landing_file: LandingFile) -> list[str]:
    """The header row of a CSV (or gzip CSV) file, read and checked in Python.

    Fails with a message naming the file when it is empty, compressed wrongly, not UTF-8
    (including UTF-16) or has no header line; the data lines are checked by DuckDB.
    """
    name = landing_file.relative_path
    compressed = landing_file.path.name.endswith(".gz")
    try:
        with (gzip.open if compressed else open)(landing_file.path, "rb") as handle:
            first = handle.readline(MAX_CSV_RECORD_BYTES + 1)
            # A quoted header name may span lines: read on until the quotes balance.
            while first.count(b'"') % 2 and len(first) <= MAX_CSV_RECORD_BYTES:
                more = handle.readline(MAX_CSV_RECORD_BYTES + 1)
                if not more:
                    break
                first += more
    except (OSError, EOFError, zlib.error) as error:
        kind = "gzip-compressed CSV (truncated or corrupt archive)" if compressed else "a file"
        raise LandingError(f"{name}: cannot be read as {kind}: {error}") from error
    if not first:
        size = "no content after decompression" if compressed else "0 bytes"
        raise LandingError(
            f"{name}: the file is empty ({size}); expected a header row with the contract's "
            "columns (a file with no rows still needs its header)"
        )
    if len(first) > MAX_CSV_RECORD_BYTES:
        raise LandingError(
            f"{name}: the header line is longer than {MAX_CSV_RECORD_BYTES} bytes; "
            "expected a header row of column names"
        )
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LandingError(
            f"{name}: the file is UTF-16 encoded (byte-order mark), not UTF-8; the contract "
            "requires UTF-8 CSV: re-export it as UTF-8"
        )
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LandingError(
            f"{name}: not valid UTF-8 (byte 0x{first[error.start]:02x} in line 1, the header); "
            "the contract requires UTF-8: re-export the file as UTF-8 (Latin-1 or "
            "Windows-1252 text is not converted, which would be a guess)"
        ) from error
    if not text.strip():
        raise LandingError(
            f"{name}: the first line is empty; expected a header row with the contract's columns"
        )
    try:
        return next(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise LandingError(f"{name}: the header row is not valid CSV: {error}") from error


def _read_error_reason(landing_file: LandingFile, error: duckdb.Error) -> str:
    """A short, specific reason from DuckDB's read error (which may quote a huge line)."""
    text = str(error)
    line_match = re.search(r"CSV Error on Line: (\d+)", text)
    line = f"line {line_match.group(1)}" if line_match else "a line"
    if "Invalid unicode" in text or "not utf-8" in text.lower():
        return (
            f"not valid UTF-8 ({line}); the contract requires UTF-8: re-export the file as "
            "UTF-8 (Latin-1 or Windows-1252 text is not converted, which would be a guess)"
        )
    size = re.search(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)", text)
    if size:
        return (
            f"{line} is {size.group(2)} bytes, longer than the {size.group(1)}-byte limit for "
            "one CSV record (a field this long is most likely an unclosed quote or a corrupt "
            "export)"
        )
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if fields:
        return (
            f"malformed CSV record: {line} has {fields.group(2)} field(s) but the header has "
            f"{fields.group(1)} (a truncated file, a wrong delimiter or an unquoted comma)"
        )
    if "unterminated quote" in text:
        return (
            f"malformed CSV record: {line} has a quoted value that is never closed "
            "(unterminated quote; the file may be truncated)"
        )
    if landing_file.path.name.endswith(".gz") and ("GZIP" in text or "gzip" in text):
        return (
            "cannot be read as gzip-compressed CSV (truncated or corrupt archive): "
            f"{_first_line(text)}"
        )
    return f"cannot be read as {landing_file.file_format}: {_first_line(text)}"


def _first_line(text: str) -> str:
    return _shorten(text.strip().splitlines()[0] if text.strip() else text, 300)


def _parquet_header(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, landing_file: LandingFile
) -> list[str]:
    """Column names of a Parquet file; a contract column of a type without a faithful text
    form (binary, nested, time of day, interval) fails the file naming the column."""
    try:
        described = con.execute(
            "DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(landing_file.path)}
        ).fetchall()
    except duckdb.Error as error:
        raise LandingError(
            f"{landing_file.relative_path}: cannot be read as parquet: {_first_line(str(error))}"
        ) from error
    header = [str(row[0]) for row in described]
    for name, column_type in ((str(row[0]), str(row[1])) for row in described):
        normalized = _normalized(name)
        if normalized in contract.column_names and not _PARQUET_TEXT_TYPES.match(column_type):
            expected = _PARQUET_EXPECTED[contract.column(normalized).dtype]
            raise LandingError(
                f"{landing_file.relative_path}: column {normalized!r} has Parquet type "
                f"{column_type}; expected {expected} (a type with no faithful text form is "
                "not converted)"
            )
    return header


def _qualified(column: ColumnContract) -> str:
    # Qualified so that a correlated subquery (fx rates, parent keys) cannot capture the name.
    return f"landing.{quote_identifier(column.name)}"


def _trimmed(column: ColumnContract) -> str:
    return f"nullif(trim({_qualified(column)}), '')"


#: The text forms the contract accepts, checked before DuckDB's (more lenient) casts: no
#: ``2026/11/20``, ``26-11-20``, ``epoch``, ``1_000``, ``0x10``, and no ``1.5`` rounded to 2.
_TEXT_FORMS = {
    # ISO 8601 date or date-time (``T`` or a space), optional fraction, ``Z`` or an offset.
    "datetime64[ns, UTC]": (
        r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
    ),
    # An integer; an integral decimal such as ``10.0`` (pandas writes those) is exact.
    "Int64": r"[+-]?\d+(\.0*)?",
    # A plain decimal number, optionally with an exponent.
    "Float64": r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?",
}


def _typed_value(column: ColumnContract) -> str:
    """SQL turning the text of ``column`` into its contract type (NULL when it does not parse)."""
    value = _trimmed(column)
    if column.dtype == "str":
        return _qualified(column)
    if column.dtype == "datetime64[ns, UTC]":
        # Offsets are honoured and the result stored as UTC; the session time zone is UTC,
        # so a value without an offset is read as UTC.
        typed = f"timezone('UTC', try_cast({value} AS TIMESTAMPTZ))"
    elif column.dtype == "Float64":
        number = f"try_cast({value} AS DOUBLE)"
        typed = f"(CASE WHEN isfinite({number}) THEN {number} END)"
    else:
        typed = f"try_cast({value} AS {column.warehouse_type})"
    form = _TEXT_FORMS.get(column.dtype)
    if form is None:
        return typed
    return f"(CASE WHEN regexp_full_match({value}, {string_literal(form)}) THEN {typed} END)"


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
        # Point in time as of the as-of date: the parent raw table holds every export dated
        # <= it, so a parent exported after its child (an account snapshot sent at the end,
        # an export split by updated_at) still counts, and a snapshot and the same rows as
        # monthly exports get the same verdict.
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
            cases.append(f"CASE WHEN {condition} THEN {string_literal(rule)} END")
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
        f"{string_literal(c)}, {quote_identifier(c)}" for c in contract.column_names
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


def _counts(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, files: list[LandingFile]
) -> IngestResult:
    """Per-file counts; every file read is listed, also one with no rows (header only)."""
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
    counts = {row[0]: FileCounts(*row) for row in rows}
    for landing_file in files:
        counts.setdefault(
            landing_file.relative_path, FileCounts(landing_file.relative_path, 0, 0, 0)
        )
    return IngestResult(
        entity=contract.name,
        raw_table=f"raw.{contract.raw_table}",
        files=tuple(counts[name] for name in sorted(counts)),
        quarantined_by_rule=dict(by_rule),
    )


def quarantine_share_findings(
    con: duckdb.DuckDBPyConnection, result: IngestResult, max_share: float
) -> list[str]:
    """Each file and rule that quarantined more than ``max_share`` of the file's rows, with
    the column and example values: one odd enum value can send a quarter of a file away."""
    rows_read = {f.relative_path: f.rows_read for f in result.files if f.rows_read}
    if not rows_read:
        return []
    by_rule = con.execute(
        f"""
        SELECT source_file, rule, column_name, count(*) AS quarantined,
               list_sort(list(DISTINCT json_extract_string(raw_values, column_name))
                   FILTER (WHERE column_name IS NOT NULL AND column_name <> ''))[:3] AS examples
        FROM {QUARANTINE_TABLE}
        WHERE entity = $entity
        GROUP BY ALL
        ORDER BY source_file, quarantined DESC, rule, column_name
        """,
        {"entity": result.entity},
    ).fetchall()
    findings = []
    for source_file, rule, column, quarantined, examples in by_rule:
        total = rows_read.get(source_file)
        if not total or quarantined / total <= max_share:
            continue
        shown = ", ".join("(empty)" if v is None else repr(v) for v in (examples or []))
        findings.append(
            f"{source_file}: {quarantined / total:.0%} of rows ({quarantined:,} of {total:,}) "
            f"quarantined by {rule}"
            + (f" on {column}" if column else "")
            + (f", e.g. {shown}" if shown else "")
            + " (add a value map or fix the export; see raw.quarantined_rows)"
        )
    return findings
