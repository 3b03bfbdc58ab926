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
import dataclasses
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.ingest.contracts import TIMESTAMP_DTYPE, EntityContract, load_contracts
from dagster_project.ingest.headers import header_key, near_miss_warnings, probable_column
from dagster_project.ingest.landing import (
    FILE_SUFFIXES,
    LandingError,
    LandingFile,
    find_entity_files,
)
from dagster_project.ingest.ledger import (
    EntityState,
    IngestPlan,
    LoadedFile,
    code_fingerprint,
    ensure_ledger_tables,
    file_stamp,
    plan_ingest,
    read_ledger,
    read_state,
    write_ledger,
)
from dagster_project.ingest.mapping import EntityMapping, Lookup, column_sql, entity_mapping_for
from dagster_project.ingest.row_rules import (
    column_rules,
    key_value,
    timestamp_parts_column,
    timestamp_parts_expression,
    trim_expression,
    trimmed_column,
    typed_value,
)
from dagster_project.ingest.value_maps import (
    VALUE_MAP_TABLE,
    create_value_map_table,
    load_value_maps,
    value_key_sql,
)
from dagster_project.sql import json_member_path, quote_identifier, string_literal, table_exists

__all__ = [
    "FileCounts",
    "IngestResult",
    "DEFAULT_VALID_DATES",
    "QUARANTINE_TABLE",
    "ensure_raw_schema",
    "ingest_entity",
    "parent_entities",
    "quarantine_share_findings",
    "quote_identifier",
]

QUARANTINE_TABLE = "raw.quarantined_rows"
#: Timestamps dated outside these days are sentinels (``0001-01-01``, ``9999-12-31``).
DEFAULT_VALID_DATES = (date(1900, 1, 1), date(2100, 12, 31))
_LANDING_TABLE = "landing_rows"
_QUARANTINE_COLUMNS = (
    "entity",
    "export_date",
    "source_file",
    "line_number",
    "rule",
    "column_name",
    "rules_broken",
    "raw_values",
    "quarantined_at",
    "extra_columns",
)
#: The raw table whose rates convert amounts: a change to it changes values, not only
#: verdicts, so its dependants are read again in full (see ``ledger``).
FX_RATES_ENTITY = "reference/fx_rates"
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
    TIMESTAMP_DTYPE: "a date or timestamp column or text",
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
    #: What loaded but deserves a look: a header that is probably a contract column, an
    #: optional column the previous export had, keys differing only by case.
    warnings: tuple[str, ...] = ()
    #: What this load read, dropped and checked again (None: not planned, e.g. in a test).
    plan: IngestPlan | None = None

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
            quarantined_at TIMESTAMP NOT NULL,
            extra_columns VARCHAR
        )
        """
    )
    # A warehouse from before the ledger: the columns the file had beyond the contract, kept
    # apart so a quarantined row can be checked again exactly as read.
    con.execute(f"ALTER TABLE {QUARANTINE_TABLE} ADD COLUMN IF NOT EXISTS extra_columns VARCHAR")
    ensure_ledger_tables(con)


def ingest_entity(
    con: duckdb.DuckDBPyConnection,
    contract: EntityContract,
    landing_root: Path,
    as_of: date | None,
    valid_dates: tuple[date, date] = DEFAULT_VALID_DATES,
) -> IngestResult:
    """Make ``raw.<entity>`` hold every export dated <= ``as_of``, bad rows quarantined.

    Only what changed is read: the files new since the last load (and changed ones), while
    the rows of files no longer wanted leave (see :mod:`dagster_project.ingest.ledger`, which
    also says when everything is read again). Foreign keys are checked against the raw tables
    of the parent entities, so parents must be ingested first (the Dagster asset graph orders
    them). A timestamp dated outside ``valid_dates`` (first, last day; default 1900-01-01 to
    2100-12-31) is a sentinel such as ``0001-01-01`` or ``9999-12-31`` and is quarantined.

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
    by_path = {f.relative_path: f for f in files}
    stamps = {f.relative_path: file_stamp(_files_read_with(f, mapping)) for f in files}
    parents_now = {name: _parent_version(con, name) for name in parent_entities(contract)}
    fingerprint = _ingest_fingerprint(contract, mapping, mappings, valid_dates)
    state = read_state(con, contract.name)
    loaded = read_ledger(con, contract.name)
    plan = plan_ingest(
        state,
        fingerprint,
        parents_now,
        value_parents=[FX_RATES_ENTITY],
        loaded=loaded,
        stamps=stamps,
        raw_table_present=table_exists(con, "raw", contract.raw_table),
    )
    _create_landing_table(con, contract)
    read_now: dict[str, tuple[set[str], list[str]]] = {}
    for path in plan.read:
        read_now[path] = _read_into_landing_table(
            con, contract, by_path[path], mapped_columns, mapping
        )
    counted = dict(
        con.execute(f"SELECT _source_file, count(*) FROM {_LANDING_TABLE} GROUP BY ALL").fetchall()
    )
    # A file with no rows (header only) was read but has no count.
    rows_read = {
        path: counted.get(path, 0) if path in read_now else loaded[path].rows_read
        for path in stamps
    }
    ledger = [
        LoadedFile(
            path,
            stamps[path],
            rows_read[path],
            tuple(sorted(read_now[path][0])),
            tuple(read_now[path][1]),
        )
        if path in read_now
        else loaded[path]
        for path in stamps
    ]
    # A run that changes no row still records the parents' versions it was checked against.
    if plan.changes_anything or dict(state.parents) != parents_now:
        if plan.recheck:
            _restore_quarantined_rows(con, contract, plan.recheck)
        _check_rows(con, contract, valid_dates)
        rows_leave = plan.rebuild or bool(plan.drop)
        new_state = EntityState(
            fingerprint=fingerprint,
            generation=(state.generation if state else 0) + (1 if rows_leave else 0),
            version=(state.version if state else 0) + (1 if plan.changes_anything else 0),
            parents=parents_now,
        )
        con.execute("BEGIN TRANSACTION")
        try:
            if plan.rebuild:
                _write_raw_table(con, contract)
                _write_quarantine(con, contract, replaced_files=None)
            else:
                _apply_changes(con, contract, plan, kept=[p for p in stamps if p not in read_now])
            write_ledger(con, contract.name, ledger, new_state)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    result = _counts(con, contract, rows_read)
    warnings = _header_warnings(contract, by_path, ledger) + _case_only_key_warnings(con, contract)
    return dataclasses.replace(result, warnings=tuple(warnings), plan=plan)


def _files_read_with(landing_file: LandingFile, mapping: EntityMapping | None) -> list[Path]:
    """The file and the lookup files a system mapping joins it with: its rows depend on all."""
    if mapping is None:
        return [landing_file.path]
    where = f"(profile {mapping.profile}, {mapping.entity})"
    return [landing_file.path] + [
        _lookup_file(landing_file, lookup, where).path for lookup in mapping.lookups
    ]


def parent_entities(contract: EntityContract) -> list[str]:
    """Entities whose raw tables the row rules read: foreign-key parents and, for an entity
    with a currency, the fx rates (the ingest asset depends on exactly these)."""
    parents = set(contract.foreign_keys.values())
    if "currency" in contract.column_names and not contract.is_reference:
        parents.add(FX_RATES_ENTITY)
    return sorted(parents)


def _parent_version(con: duckdb.DuckDBPyConnection, entity: str) -> tuple[int, int]:
    """(generation, version) of a parent's raw table; (0, 0) before its first load."""
    state = read_state(con, entity)
    return (state.generation, state.version) if state else (0, 0)


def _ingest_fingerprint(
    contract: EntityContract,
    mapping: EntityMapping | None,
    mappings: list,
    valid_dates: tuple[date, date],
) -> str:
    """Everything besides the files and the parents that decides a row's verdict and value."""
    relevant_maps = sorted(
        (m.entity, m.column, m.value, m.maps_to)
        for m in mappings
        if m.entity in ("*", contract.name)
    )
    text = repr((code_fingerprint(), contract, mapping, relevant_maps, valid_dates))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _header_warnings(
    contract: EntityContract, by_path: Mapping[str, LandingFile], ledger: list[LoadedFile]
) -> list[str]:
    """Each file's header warnings and the optional columns its predecessor had and it lacks,
    from the ledger: a file read on an earlier run warns as it did then."""
    warnings: list[str] = []
    previous: LoadedFile | None = None
    for loaded_file in ledger:
        warnings += loaded_file.header_warnings
        if previous is not None:
            warnings += _dropped_column_warnings(
                contract,
                by_path[loaded_file.relative_path],
                set(loaded_file.columns_present),
                by_path[previous.relative_path],
                set(previous.columns_present),
            )
        previous = loaded_file
    return warnings


def _dropped_column_warnings(
    contract: EntityContract,
    landing_file: LandingFile,
    present: set[str],
    previous_file: LandingFile,
    previous_present: set[str],
) -> list[str]:
    """An optional column the previous export of the entity had and this one lacks."""
    dropped = [name for name in contract.column_names if name in previous_present - present]
    if not dropped:
        return []
    return [
        f"{landing_file.relative_path}: optional column(s) {', '.join(dropped)} missing, which "
        f"the previous export {previous_file.relative_path} had; they are NULL in every row of "
        "this file (did the export change?)"
    ]


def _case_only_key_warnings(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> list[str]:
    """Files whose primary keys differ from another of the file only by case: keys are
    case-sensitive (docs/contract.md), so they are separate rows, which may not be meant."""
    if len(contract.primary_key) != 1:
        return []
    key = quote_identifier(contract.primary_key[0])
    rows = con.execute(
        f"""
        SELECT _source_file, count(*) AS keys, min(examples) AS example
        FROM (
            SELECT _source_file, lower({key}) AS folded, list_sort(list({key}))[:2] AS examples
            FROM raw.{quote_identifier(contract.raw_table)}
            GROUP BY ALL
            HAVING count(DISTINCT {key}) > 1
        )
        GROUP BY ALL
        ORDER BY _source_file
        """
    ).fetchall()
    return [
        f"{source_file}: {keys:,} {contract.primary_key[0]} value(s) differ from another only by "
        f"case (e.g. {' / '.join(repr(k) for k in example)}); keys are case-sensitive, so "
        "they are separate rows"
        for source_file, keys, example in rows
    ]


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
) -> tuple[set[str], list[str]]:
    """Append the file's rows, as text, to the landing table (with lineage columns); the
    values of ``mapped_columns`` go through the value maps (``value_maps``) first. With a
    ``mapping`` (a system's export, see :mod:`dagster_project.ingest.mapping`), each contract
    column is computed from the file's columns (and its lookup files) as the profile says.

    The file's own column names never reach the SQL: the scan's columns are renamed by
    position to ``c0``, ``c1``, ... and matched to the contract in Python.

    Returns the contract columns the file has and warnings about its header (a name that is
    probably a column the file lacks).
    """
    params: dict[str, object] = {"path": str(landing_file.path)}
    header, scan = _scan(con, contract, landing_file, params, "path")
    warnings: list[str] = []
    if mapping is None:
        positions = _match_header(contract, landing_file, header)
        columns = {
            name: f"CAST(source.c{positions[name]} AS VARCHAR)"
            for name in contract.column_names
            if name in positions
        }
        consumed = {header_key(name) for name in contract.column_names}
        joins = ""
        warnings = near_miss_warnings(
            contract,
            landing_file.relative_path,
            [name for name in header if header_key(name) not in consumed],
            [name for name in contract.column_names if name not in positions],
        )
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
        if header_key(original) not in consumed
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
    return set(columns), warnings


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


def _header_positions(
    landing_file: LandingFile, header: list[str], contract: EntityContract | None = None
) -> dict[str, int]:
    """Position of each header name by its :func:`header_key`; a name twice fails."""
    positions: dict[str, int] = {}
    names = {header_key(name): name for name in contract.column_names} if contract else {}
    for index, original in enumerate(header):
        key = header_key(original)
        if key in positions:
            shown = names.get(key, original)
            raise LandingError(
                f"{landing_file.relative_path}: column {shown!r} appears twice in the header "
                f"(as {header[positions[key]]!r} and {original!r})"
            )
        positions[key] = index
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
        if header_key(lookup.key) not in positions:
            raise LandingError(
                f"{lookup_file.relative_path}: key column {lookup.key!r} of lookup "
                f"{lookup.alias!r} missing {where}"
            )
        key = f"scanned.c{positions[header_key(lookup.key)]}"
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
    consumed = {header_key(ref) for ref in mapping.main_columns()}
    return columns, consumed, "\n".join(joins)


def _source_column(ref: str, available: dict, tables: dict) -> str | None:
    """SQL of a source column ``name`` or ``lookup.name``; None when the file lacks it."""
    alias, _, name = ref.partition(".") if ref.split(".", 1)[0] in tables else ("", "", ref)
    index = available[alias].get(header_key(name))
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


def _match_header(
    contract: EntityContract, landing_file: LandingFile, header: list[str]
) -> dict[str, int]:
    """Position of each contract column in the file's header (matched by :func:`header_key`);
    fails on a missing required column, naming a header name that is probably it."""
    by_key = _header_positions(landing_file, header, contract)
    positions = {
        name: by_key[header_key(name)]
        for name in contract.column_names
        if header_key(name) in by_key
    }
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
    matched = {header_key(name) for name in contract.column_names}
    hints = []
    for name in header:
        guess = None if header_key(name) in matched else probable_column(contract, name, missing)
        if guess is not None:
            hints.append(f"{name!r} is probably {guess[0]} ({guess[1]})")
    raise LandingError(
        f"{landing_file.relative_path}: required column(s) {', '.join(missing)} missing; "
        f"expected the columns of {contract.name}: {', '.join(contract.column_names)} "
        f"(found: {_shorten(', '.join(header)) or 'no header'})"
        + (f"; {_shorten('; '.join(hints))}: rename it or map it" if hints else "")
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
    names = {header_key(name): name for name in contract.column_names}
    for name, column_type in ((str(row[0]), str(row[1])) for row in described):
        column = names.get(header_key(name))
        if column is not None and not _PARQUET_TEXT_TYPES.match(column_type):
            expected = _PARQUET_EXPECTED[contract.column(column).dtype]
            raise LandingError(
                f"{landing_file.relative_path}: column {column!r} has Parquet type "
                f"{column_type}; expected {expected} (a type with no faithful text form is "
                "not converted)"
            )
    return header


def _check_rows(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, valid_dates: tuple[date, date]
) -> None:
    """Add ``failed_rules`` (every rule a row breaks, in contract order) to the landing rows."""
    params: dict[str, object] = {}
    cases = []
    for column in contract.columns:
        for rule, condition in column_rules(contract, column, params, valid_dates):
            cases.append(f"CASE WHEN {condition} THEN {string_literal(rule)} END")
    keys = [key_value(contract.column(k)) for k in contract.primary_key]
    # Keys compare trimmed (ACC-5 and 'ACC-5 ' collide); a missing key is its own rule.
    cases.append(
        f"CASE WHEN {' AND '.join(f'{k} IS NOT NULL' for k in keys)} AND count(*) OVER "
        f"(PARTITION BY _source_file, {', '.join(keys)}) > 1 "
        f"THEN 'duplicate_key_in_file:{'+'.join(contract.primary_key)}' END"
    )
    trims = ", ".join(
        f"{trim_expression(c)} AS {quote_identifier(trimmed_column(c))}" for c in contract.columns
    )
    parts = "".join(
        f", {timestamp_parts_expression(c)} AS {quote_identifier(timestamp_parts_column(c))}"
        for c in contract.columns
        if c.dtype == TIMESTAMP_DTYPE
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE trimmed_rows AS SELECT *{parts} "
        f"FROM (SELECT *, {trims} FROM {_LANDING_TABLE} AS landing) AS landing"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE checked_rows AS
        SELECT *, list_filter([{", ".join(cases)}], lambda rule: rule IS NOT NULL) AS failed_rules
        FROM trimmed_rows AS landing
        """,
        params,
    )
    con.execute("DROP TABLE trimmed_rows")


def _passing_rows_select(contract: EntityContract) -> str:
    """The checked rows that broke no rule, cast to their contract types, in file order."""
    typed_columns = ", ".join(
        f"CAST({typed_value(contract, c)} AS {c.warehouse_type}) AS {quote_identifier(c.name)}"
        for c in contract.columns
    )
    return f"""
        SELECT {typed_columns}, _export_date, _source_file, _line_number, _extra_columns
        FROM checked_rows AS landing
        WHERE len(failed_rules) = 0
        ORDER BY _source_file, _line_number
    """


def _write_raw_table(con: duckdb.DuckDBPyConnection, contract: EntityContract) -> None:
    con.execute(
        f"CREATE OR REPLACE TABLE raw.{quote_identifier(contract.raw_table)} AS "
        f"{_passing_rows_select(contract)}"
    )


def _apply_changes(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, plan: IngestPlan, kept: list[str]
) -> None:
    """The raw table and quarantine of a load that read only some files: the rows of the
    files dropped or read again leave, the checked rows come in, in the order a rebuild
    writes them (file, line), so that nothing downstream can tell the two apart."""
    raw_table = f"raw.{quote_identifier(contract.raw_table)}"
    replaced = sorted(set(plan.drop) | set(plan.read))
    con.execute(
        f"DELETE FROM {raw_table} WHERE _source_file IN (SELECT unnest($files))",
        {"files": replaced},
    )
    _write_quarantine(con, contract, replaced_files=sorted(set(replaced) | set(plan.recheck)))
    in_order = not plan.recheck and (not kept or not plan.read or max(kept) < min(plan.read))
    con.execute(f"INSERT INTO {raw_table} {_passing_rows_select(contract)}")
    if not in_order:
        con.execute(
            f"CREATE OR REPLACE TABLE {raw_table} AS "
            f"SELECT * FROM {raw_table} ORDER BY _source_file, _line_number"
        )


def _restore_quarantined_rows(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, files: tuple[str, ...]
) -> None:
    """Put the quarantined rows of ``files`` back into the landing table, as read, to be
    checked again: a parent's new rows may give an orphan its parent."""
    columns = ", ".join(quote_identifier(c) for c in contract.column_names)
    values = ", ".join(
        f"raw_values ->> {string_literal(json_member_path(c))}" for c in contract.column_names
    )
    con.execute(
        f"""
        INSERT INTO {_LANDING_TABLE}
            ({columns}, _export_date, _source_file, _line_number, _extra_columns)
        SELECT {values}, export_date, source_file, line_number, extra_columns
        FROM {QUARANTINE_TABLE}
        WHERE entity = $entity AND source_file IN (SELECT unnest($files))
        ORDER BY source_file, line_number
        """,
        {"entity": contract.name, "files": list(files)},
    )


def _write_quarantine(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, replaced_files: list[str] | None
) -> None:
    """The checked rows that broke a rule, in place of the entity's quarantined rows (all of
    them, or those of ``replaced_files``)."""
    raw_values = ", ".join(
        f"{string_literal(c)}, {quote_identifier(c)}" for c in contract.column_names
    )
    if replaced_files is None:
        con.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE entity = $entity", {"entity": contract.name}
        )
    else:
        con.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE entity = $entity "
            "AND source_file IN (SELECT unnest($files))",
            {"entity": contract.name, "files": replaced_files},
        )
    con.execute(
        f"""
        INSERT INTO {QUARANTINE_TABLE} ({", ".join(_QUARANTINE_COLUMNS)})
        SELECT $entity,
               _export_date,
               _source_file,
               _line_number,
               split_part(failed_rules[1], ':', 1),
               split_part(failed_rules[1], ':', 2),
               failed_rules,
               json_merge_patch(json_object({raw_values}), coalesce(_extra_columns, '{{}}')),
               now()::TIMESTAMP,
               _extra_columns
        FROM checked_rows
        WHERE len(failed_rules) > 0
        ORDER BY _source_file, _line_number
        """,
        {"entity": contract.name},
    )


def _counts(
    con: duckdb.DuckDBPyConnection, contract: EntityContract, rows_read: Mapping[str, int]
) -> IngestResult:
    """Per-file counts of every wanted file (also one with no rows, header only): rows read
    as the ledger or this run's read says, loaded and quarantined as the tables hold them."""
    rows = con.execute(
        f"""
        WITH read_counts AS (
            SELECT unnest(CAST($files AS VARCHAR[])) AS source_file,
                   unnest(CAST($rows_read AS BIGINT[])) AS rows_read
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
        {
            "entity": contract.name,
            "files": list(rows_read),
            "rows_read": list(rows_read.values()),
        },
    ).fetchall()
    by_rule = con.execute(
        f"SELECT rule, count(*) FROM {QUARANTINE_TABLE} WHERE entity = $entity "
        "GROUP BY rule ORDER BY rule",
        {"entity": contract.name},
    ).fetchall()
    counts = {row[0]: FileCounts(*row) for row in rows}
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
