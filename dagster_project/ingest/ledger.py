"""Which landing files each raw table holds, so that a run reads only what changed.

A raw table is, by definition, every export of its entity dated <= the as-of date, checked
against the contract and against its parents' raw tables (foreign keys, fx rates). Reading
every historic export again each night made a run's cost grow with the history it had seen,
so each entity keeps a ledger of the files its raw table holds (with each file's size and
modification time, rows read, columns present and header warnings) and a state: a
fingerprint of everything else a row's verdict depends on (contract, system mapping, value
maps, valid dates, the ingest code itself) and the versions of its parents it was checked
against. :func:`plan_ingest` compares them with the landing zone and says what to do:

* **rebuild** from every file, as a first run does, when the fingerprint changed, a parent
  lost rows (its generation moved: it was rebuilt or a file left it) or the fx rates changed
  (they move converted amounts both ways);
* otherwise read only the files that are new or changed, drop the rows of files gone (a
  changed file, a backfill of an earlier date), and, when a parent only gained rows, check the
  quarantined rows of the kept files again: a foreign key that had no parent may have one now,
  while a row that passed keeps passing (parents only grew). Duplicate keys are judged within
  one file and every row of a duplicate group is quarantined, so re-checking the quarantined
  rows of a file gives each the verdict a full read would.

The result equals a rebuild (tests/integration/test_incremental_ingest.py compares them).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from dagster_project.sql import table_exists

__all__ = [
    "EntityState",
    "IngestPlan",
    "LEDGER_TABLE",
    "LoadedFile",
    "STATE_TABLE",
    "code_fingerprint",
    "ensure_ledger_tables",
    "file_stamp",
    "plan_ingest",
    "read_ledger",
    "read_state",
    "write_ledger",
]

LEDGER_TABLE = "raw._ingested_files"
STATE_TABLE = "raw._ingest_states"

#: The modules whose code decides what a raw row holds: a change to any re-reads everything.
_INGEST_MODULES = (
    "contracts.py",
    "headers.py",
    "landing.py",
    "ledger.py",
    "loader.py",
    "mapping.py",
    "row_rules.py",
    "value_maps.py",
)


@dataclass(frozen=True)
class LoadedFile:
    """One landing file a raw table holds, as the ledger records it."""

    relative_path: str
    stamp: str
    rows_read: int
    columns_present: tuple[str, ...]
    header_warnings: tuple[str, ...]


@dataclass(frozen=True)
class EntityState:
    """What an entity's raw table was built from, beyond its files.

    ``generation`` moves when rows may have left the table (a rebuild, a file dropped);
    ``version`` moves on every change. A child checked against generation g, version v of a
    parent knows the parent's keys are a superset of what it saw while the generation is g.
    """

    fingerprint: str
    generation: int
    version: int
    parents: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestPlan:
    rebuild: bool
    #: Files to read (every file when rebuilding).
    read: tuple[str, ...] = ()
    #: Files whose rows leave the raw table and the quarantine (gone or changed).
    drop: tuple[str, ...] = ()
    #: Kept files whose quarantined rows are checked again (a parent gained rows).
    recheck: tuple[str, ...] = ()
    reason: str = ""

    @property
    def changes_anything(self) -> bool:
        return self.rebuild or bool(self.read or self.drop or self.recheck)


@functools.cache
def code_fingerprint() -> str:
    """A hash of the ingest code: rows loaded by another version are not trusted. Computed
    once per process (every entity of every run asks)."""
    digest = hashlib.sha256()
    folder = Path(__file__).parent
    for name in _INGEST_MODULES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def file_stamp(paths: Iterable[Path]) -> str:
    """Size and modification time of a file and the lookup files it is read with: landing
    exports are written once, so a file whose stamp is unchanged holds the same rows."""
    parts = []
    for path in paths:
        status = path.stat()
        parts.append(f"{path.name}:{status.st_size}:{status.st_mtime_ns}")
    return "|".join(parts)


def ensure_ledger_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
            entity VARCHAR NOT NULL,
            source_file VARCHAR NOT NULL,
            stamp VARCHAR NOT NULL,
            rows_read BIGINT NOT NULL,
            columns_present VARCHAR[] NOT NULL,
            header_warnings VARCHAR[] NOT NULL,
            PRIMARY KEY (entity, source_file)
        )
        """
    )
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
            entity VARCHAR PRIMARY KEY,
            fingerprint VARCHAR NOT NULL,
            generation BIGINT NOT NULL,
            version BIGINT NOT NULL,
            parents JSON NOT NULL
        )
        """
    )


def read_state(con: duckdb.DuckDBPyConnection, entity: str) -> EntityState | None:
    if not table_exists(con, "raw", STATE_TABLE.split(".", 1)[1]):
        return None
    row = con.execute(
        f"SELECT fingerprint, generation, version, parents FROM {STATE_TABLE} "
        "WHERE entity = $entity",
        {"entity": entity},
    ).fetchone()
    if row is None:
        return None
    parents = {name: (int(g), int(v)) for name, (g, v) in json.loads(row[3]).items()}
    return EntityState(row[0], int(row[1]), int(row[2]), parents)


def read_ledger(con: duckdb.DuckDBPyConnection, entity: str) -> dict[str, LoadedFile]:
    if not table_exists(con, "raw", LEDGER_TABLE.split(".", 1)[1]):
        return {}
    rows = con.execute(
        f"SELECT source_file, stamp, rows_read, columns_present, header_warnings "
        f"FROM {LEDGER_TABLE} WHERE entity = $entity ORDER BY source_file",
        {"entity": entity},
    ).fetchall()
    return {
        path: LoadedFile(path, stamp, rows_read, tuple(columns), tuple(warnings))
        for path, stamp, rows_read, columns, warnings in rows
    }


def write_ledger(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    files: Iterable[LoadedFile],
    state: EntityState,
) -> None:
    """Replace the entity's ledger and state (inside the caller's transaction; the tables
    exist: ``loader.ensure_raw_schema`` creates them)."""
    con.execute(f"DELETE FROM {LEDGER_TABLE} WHERE entity = $entity", {"entity": entity})
    rows = [
        (
            entity,
            f.relative_path,
            f.stamp,
            f.rows_read,
            list(f.columns_present),
            list(f.header_warnings),
        )
        for f in files
    ]
    if rows:
        con.executemany(f"INSERT INTO {LEDGER_TABLE} VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute(f"DELETE FROM {STATE_TABLE} WHERE entity = $entity", {"entity": entity})
    con.execute(
        f"INSERT INTO {STATE_TABLE} VALUES ($entity, $fingerprint, $generation, $version, "
        "$parents)",
        {
            "entity": entity,
            "fingerprint": state.fingerprint,
            "generation": state.generation,
            "version": state.version,
            "parents": json.dumps({k: list(v) for k, v in sorted(state.parents.items())}),
        },
    )


def plan_ingest(
    state: EntityState | None,
    fingerprint: str,
    parents_now: Mapping[str, tuple[int, int]],
    value_parents: Iterable[str],
    loaded: Mapping[str, LoadedFile],
    stamps: Mapping[str, str],
    raw_table_present: bool,
) -> IngestPlan:
    """What to read, drop and check again so the raw table is what a rebuild would give.

    ``stamps`` are the wanted files (every export dated <= the as-of date) in order;
    ``value_parents`` the parents whose rows change values, not only foreign-key verdicts
    (fx rates), which any change of forces a rebuild.
    """
    everything = tuple(stamps)
    if state is None or not raw_table_present:
        return IngestPlan(rebuild=True, read=everything, reason="no earlier load")
    if state.fingerprint != fingerprint:
        return IngestPlan(
            rebuild=True, read=everything, reason="contract, mapping or ingest code changed"
        )
    value_parents = set(value_parents)
    grew = False
    for parent, (generation, version) in parents_now.items():
        seen = state.parents.get(parent)
        if seen is None or seen[0] != generation:
            return IngestPlan(rebuild=True, read=everything, reason=f"{parent} lost rows")
        if seen[1] != version:
            if parent in value_parents:
                return IngestPlan(rebuild=True, read=everything, reason=f"{parent} changed")
            grew = True
    if set(state.parents) - set(parents_now):
        return IngestPlan(rebuild=True, read=everything, reason="a parent was removed")

    def unchanged(path: str) -> bool:
        return path in loaded and path in stamps and loaded[path].stamp == stamps[path]

    read = tuple(path for path in stamps if not unchanged(path))
    drop = tuple(path for path in loaded if not unchanged(path))
    kept = [path for path in stamps if path not in read]
    recheck = tuple(kept) if grew else ()
    return IngestPlan(rebuild=False, read=read, drop=drop, recheck=recheck)
