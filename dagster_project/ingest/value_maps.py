"""Messy values normalised before the row rules: country names, enum synonyms.

Exports say ``United Kingdom``, ``UK`` or ``Deutschland`` where the contract wants ISO
3166 codes, and ``medium`` or ``Closed Won`` where it wants ``normal`` and ``won``. Value
maps are data, CSV files with the columns ``entity,column,value,maps_to``:

* the project's own, ``schemas/value_maps/*.csv`` (``entity`` ``*`` means every entity);
* the company's, ``<landing>/value_maps/*.csv``, read after them, so a row there replaces
  a built-in one for the same entity, column and value.

A value matches case-insensitively, with spaces, ``_`` and ``-`` runs folded to one space
(``Closed-Won`` is ``closed won``). A value no map names is left as it is: the row rules then
quarantine it if the contract does not allow it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.ingest.contracts import default_schemas_dir
from dagster_project.ingest.landing import LandingError

__all__ = [
    "VALUE_MAP_TABLE",
    "ValueMapping",
    "create_value_map_table",
    "load_value_maps",
    "value_key",
    "value_key_sql",
]

VALUE_MAP_TABLE = "value_maps"
_HEADER = ["entity", "column", "value", "maps_to"]
_FOLD = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class ValueMapping:
    """``value`` of ``column`` in ``entity`` (``*``: any) is ``maps_to``."""

    entity: str
    column: str
    value: str
    maps_to: str
    file: str


def value_key(value: str) -> str:
    """The matching key of a value: lower case, trimmed, space/``_``/``-`` runs as one space."""
    return _FOLD.sub(" ", value.strip().lower()).strip()


def value_key_sql(expression: str) -> str:
    """The same key in SQL (DuckDB), for ``expression``."""
    return f"trim(regexp_replace(lower(trim({expression})), '[\\s_\\-]+', ' ', 'g'))"


def load_value_maps(landing_root: Path | None = None) -> list[ValueMapping]:
    """The built-in maps, then the landing zone's own (later ones win).

    Raises:
        LandingError: a map file has the wrong header, or resolves outside its folder.
    """
    folders = [default_schemas_dir() / "value_maps"]
    if landing_root is not None:
        folders.append(Path(landing_root) / "value_maps")
    mappings: dict[tuple[str, str, str], ValueMapping] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        root = folder.resolve()
        for path in sorted(folder.glob("*.csv")):
            if not path.resolve().is_relative_to(root):
                raise LandingError(f"{path}: resolves outside {root}")
            for mapping in _read_map_file(path):
                mappings[(mapping.entity, mapping.column, value_key(mapping.value))] = mapping
    return list(mappings.values())


def _read_map_file(path: Path) -> list[ValueMapping]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        if header != _HEADER:
            raise LandingError(
                f"{path}: a value map needs the header {','.join(_HEADER)} (found "
                f"{','.join(header) or 'nothing'})"
            )
        return [
            ValueMapping(*(field.strip() for field in row), file=path.name)
            for row in reader
            if len(row) == len(_HEADER) and row[2].strip()
        ]


def create_value_map_table(con: duckdb.DuckDBPyConnection, mappings: list[ValueMapping]) -> None:
    """``value_maps`` (entity, column_name, value_key, maps_to), a temporary table."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {VALUE_MAP_TABLE} "
        "(entity VARCHAR, column_name VARCHAR, value_key VARCHAR, maps_to VARCHAR)"
    )
    if mappings:
        con.executemany(
            f"INSERT INTO {VALUE_MAP_TABLE} VALUES (?, ?, ?, ?)",
            [(m.entity, m.column, value_key(m.value), m.maps_to) for m in mappings],
        )
