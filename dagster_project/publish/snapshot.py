"""Publish the marts as a read-only DuckDB file and Parquet folders that readers never see
half-written.

DuckDB allows one read-write process per database file, and while it holds the file no other
process can open it, not even read-only. The pipeline's warehouse file is therefore its
working file, opened by the pipeline alone. After a successful run the marts are copied out:

* ``<published>/icp_marts.duckdb``: built as ``icp_marts.duckdb.tmp-<uuid>`` (ATTACH, CREATE
  TABLE ... AS SELECT per mart, checks, CHECKPOINT, DETACH, fsync), then ``os.replace``-d onto
  the final name. The rename is atomic on POSIX: a reader that opened the old file keeps
  reading the old inode, a new open gets the new file, never a partial one.
* ``<published>/parquet/v-<utc timestamp>-<id>/<table>/as_of_date=YYYY-MM-DD/part_<uuid>.parquet``:
  one folder per publish, written as ``.tmp-v-...`` and renamed when complete; the symlink
  ``<published>/parquet/current`` is then replaced atomically (a temporary symlink renamed over
  it). The last ``keep_versions`` versions stay so that a reader that resolved ``current`` a
  moment ago can finish.

Nothing becomes visible unless every check passed on the new copy: every mart present, no
column that looks like contact PII, ``account_fit_scores`` one complete version equal to the
warehouse's current table, and each Parquet table holding the rows of its DuckDB table. A
failed publish (or a crash) leaves the previous version in place; its leftovers are removed by
the next publish.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from dagster_project.sql import quote_identifier, string_literal

__all__ = [
    "CURRENT_LINK",
    "DB_FILE",
    "DEFAULT_KEEP_VERSIONS",
    "PARQUET_DIR",
    "PUBLISHED_TABLES",
    "PublishError",
    "PublishResult",
    "VersionValidator",
    "contact_pii_columns",
    "current_parquet_version",
    "missing_tables",
    "parquet_problems",
    "pii_problems",
    "prune_published_versions",
    "publish_marts",
    "published_dir_for",
    "score_problems",
]

PUBLISHED_TABLES: tuple[str, ...] = (
    "dim_accounts",
    "fct_account_metrics",
    "fct_segment_cohorts",
    "icp_profile",
    "icp_validation",
    "account_fit_scores",
    "account_fit_score_history",
    "account_fit_score_changes",
)
SCORES = "account_fit_scores"
HISTORY = "account_fit_score_history"
# Not "marts.duckdb": its catalog would be named "marts", like the schema, and DuckDB rejects
# "marts.account_fit_scores" as ambiguous.
DB_FILE = "icp_marts.duckdb"
PARQUET_DIR = "parquet"
CURRENT_LINK = "current"
MANIFEST = "_manifest.json"
DEFAULT_KEEP_VERSIONS = 3
PUBLISHED_DIR_ENV = "ICP_PUBLISHED_DIR"
_TMP_DB_PREFIX = f"{DB_FILE}.tmp-"
_TMP_VERSION_PREFIX = ".tmp-v-"
_TMP_LINK_PREFIX = ".current-"
_LOCK_FILE = ".publish.lock"

# Column names that look like contact PII: e-mail, phone, a person's name.
_PII_SUBSTRINGS = ("email", "e_mail", "phone", "mobile", "telephone", "whatsapp")
_PII_TOKENS = {"fax", "tel", "surname", "firstname", "lastname", "fullname", "forename"}
_PERSON_QUALIFIERS = {
    "first", "last", "given", "family", "middle", "full", "contact", "person", "people",
    "owner", "user", "employee", "champion", "buyer", "rep", "lead", "sender", "recipient",
}  # fmt: skip


class PublishError(RuntimeError):
    """The new version failed a check (or could not be built); nothing was published."""


VersionValidator = Callable[[Path, str, date], None]
"""Called with the new Parquet version folder (not yet visible), its version id and its
as-of date, after the built-in checks passed and before anything is swapped in; raising
:class:`PublishError` publishes nothing (e.g. the Great Expectations suites)."""


@dataclass
class PublishResult:
    """What one publish wrote."""

    version: str
    db_path: Path
    parquet_dir: Path
    as_of_date: date
    score_version: str
    row_counts: dict[str, int]
    seconds: float
    removed: list[str] = field(default_factory=list)


def published_dir_for(warehouse_path: Path | str) -> Path:
    """``$ICP_PUBLISHED_DIR``, else ``published/`` next to the warehouse file."""
    configured = os.environ.get(PUBLISHED_DIR_ENV, "").strip()
    if configured:
        return Path(configured).resolve()
    return Path(warehouse_path).resolve().parent / "published"


def current_parquet_version(published_dir: Path | str) -> Path | None:
    """The version folder ``parquet/current`` points at (resolved once), or None."""
    link = Path(published_dir) / PARQUET_DIR / CURRENT_LINK
    if not link.is_symlink():
        return None
    return link.resolve()


def contact_pii_columns(columns: Sequence[str]) -> list[str]:
    """The column names that look like contact PII (e-mail, phone, a person's name)."""
    flagged = []
    for column in columns:
        name = column.lower()
        tokens = [t for t in re.split(r"[^a-z0-9]+", name) if t]
        if any(s in name for s in _PII_SUBSTRINGS) or _PII_TOKENS.intersection(tokens):
            flagged.append(column)
            continue
        for before, after in zip(tokens, tokens[1:], strict=False):
            if after == "name" and before in _PERSON_QUALIFIERS:
                flagged.append(column)
                break
    return flagged


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = $catalog "
            "AND schema_name = 'marts' AND table_name = $table ORDER BY column_index",
            {"catalog": catalog, "table": table},
        ).fetchall()
    ]


def _tables(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = $catalog "
            "AND schema_name = 'marts'",
            {"catalog": catalog},
        ).fetchall()
    }


def missing_tables(
    con: duckdb.DuckDBPyConnection, catalog: str, tables: Sequence[str] = PUBLISHED_TABLES
) -> list[str]:
    """The tables of ``tables`` that ``<catalog>.marts`` lacks."""
    present = _tables(con, catalog)
    return [t for t in tables if t not in present]


def pii_problems(
    con: duckdb.DuckDBPyConnection, catalog: str, tables: Sequence[str] = PUBLISHED_TABLES
) -> list[str]:
    """One message per published table with columns that look like contact PII."""
    problems = []
    for table in sorted(_tables(con, catalog).intersection(tables)):
        flagged = contact_pii_columns(_columns(con, catalog, table))
        if flagged:
            problems.append(f"marts.{table} has contact-PII-like columns: {', '.join(flagged)}")
    return problems


def _rows_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int]:
    """(rows, sum and XOR of each whole row's hash) of ``table``: equal for two tables that
    hold the same rows in any order, and a changed, missing or extra row changes it. One scan;
    comparing by ``EXCEPT ALL`` both ways took 45 s at 1,000,000 accounts."""
    return con.execute(
        f"SELECT count(*), coalesce(sum(hash(row_)::HUGEINT), 0), coalesce(bit_xor(hash(row_)), 0) "
        f"FROM {table} AS row_"
    ).fetchone()


def score_problems(
    con: duckdb.DuckDBPyConnection, published: str, source: str
) -> tuple[list[str], dict[str, object]]:
    """Whether ``<published>.marts.account_fit_scores`` is one complete version equal to
    ``<source>.marts.account_fit_scores``: same rows, one as_of_date, one score_version, one row
    per account, and the history rows of that date in the same file."""
    pub, src = (
        f"{quote_identifier(published)}.marts.{SCORES}",
        f"{quote_identifier(source)}.marts.{SCORES}",
    )
    rows, dates, versions, accounts, as_of, score_version = con.execute(
        f"SELECT count(*), count(DISTINCT as_of_date), count(DISTINCT score_version), "
        f"count(DISTINCT account_id), min(as_of_date), min(score_version) FROM {pub}"
    ).fetchone()
    published_fingerprint = _rows_fingerprint(con, pub)
    source_rows, *_ = source_fingerprint = _rows_fingerprint(con, src)
    only_published = only_source = 0
    if published_fingerprint != source_fingerprint:
        # Which rows differ, only when some do: both ways, every column, is the slow part.
        only_published, only_source = con.execute(
            f"SELECT (SELECT count(*) FROM (FROM {pub} EXCEPT ALL FROM {src})), "
            f"(SELECT count(*) FROM (FROM {src} EXCEPT ALL FROM {pub}))"
        ).fetchone()
    history_rows = con.execute(
        f"SELECT count(*) FROM {quote_identifier(published)}.marts.{HISTORY} "
        "WHERE as_of_date = $as_of",
        {"as_of": as_of},
    ).fetchone()[0]
    facts = {
        "rows": rows,
        "warehouse_rows": source_rows,
        "as_of_dates": dates,
        "score_versions": versions,
        "as_of_date": as_of.isoformat() if as_of else None,
        "score_version": score_version,
        "history_rows_of_date": history_rows,
    }
    problems = []
    if rows == 0:
        problems.append(f"marts.{SCORES} is empty")
    if dates != 1 or versions != 1:
        problems.append(f"marts.{SCORES} holds {dates} as_of_dates and {versions} score_versions")
    if accounts != rows:
        problems.append(f"marts.{SCORES} has {rows} rows for {accounts} accounts")
    if published_fingerprint != source_fingerprint:
        problems.append(
            f"marts.{SCORES} differs from the warehouse: {rows} rows vs {source_rows}, "
            f"{only_published} only published, {only_source} only in the warehouse"
        )
    if history_rows != rows:
        problems.append(
            f"marts.{HISTORY} has {history_rows} rows for {as_of}, the current table {rows}"
        )
    return problems, facts


def parquet_problems(
    con: duckdb.DuckDBPyConnection,
    version_dir: Path,
    catalog: str,
    tables: Sequence[str] = PUBLISHED_TABLES,
) -> list[str]:
    """Each Parquet table of ``version_dir`` holds as many rows as its DuckDB table."""
    problems = []
    for table in tables:
        expected = con.execute(
            f"SELECT count(*) FROM {quote_identifier(catalog)}.marts.{table}"
        ).fetchone()[0]
        folder = version_dir / table
        if not folder.is_dir():
            problems.append(f"parquet table {table} is missing in {version_dir.name}")
            continue
        if not any(folder.rglob("*.parquet")):
            found = 0
        else:
            found = con.execute(
                f"SELECT count(*) FROM read_parquet({string_literal(folder / '**' / '*.parquet')}, "
                "hive_partitioning = true)"
            ).fetchone()[0]
        if found != expected:
            problems.append(f"parquet table {table} has {found} rows, its DuckDB table {expected}")
    return problems


@contextmanager
def _exclusive_lock(published_dir: Path) -> Iterator[None]:
    """One publisher at a time per published folder (leftover clean-up relies on it)."""
    with open(published_dir / _LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _clean_leftovers(published_dir: Path, parquet_root: Path) -> list[str]:
    """Temporary files of a publish that crashed (only ever called under the lock)."""
    removed = []
    for path in published_dir.glob(f"{_TMP_DB_PREFIX}*"):
        _remove(path)
        removed.append(path.name)
    for prefix in (_TMP_VERSION_PREFIX, _TMP_LINK_PREFIX):
        for path in parquet_root.glob(f"{prefix}*"):
            _remove(path)
            removed.append(f"{PARQUET_DIR}/{path.name}")
    return removed


def _prune_versions(parquet_root: Path, keep: int) -> list[str]:
    current = current_parquet_version(parquet_root.parent)
    versions = sorted(p for p in parquet_root.glob("v-*") if p.is_dir() and not p.is_symlink())
    removed = []
    for old in versions[:-keep]:
        if current is not None and old.resolve() == current:
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(f"{PARQUET_DIR}/{old.name}")
    return removed


def prune_published_versions(
    published_dir: Path | str, keep_versions: int = DEFAULT_KEEP_VERSIONS
) -> list[str]:
    """Remove Parquet versions beyond the newest ``keep_versions`` (never ``current``), under
    the publish lock; return their names. Each publish does this too; retention calls it so a
    lowered ``ICP_KEEP_PUBLISHED_VERSIONS`` applies without waiting for the next publish."""
    if keep_versions < 1:
        raise ValueError("keep_versions must be at least 1")
    published_dir = Path(published_dir).resolve()
    parquet_root = published_dir / PARQUET_DIR
    if not parquet_root.is_dir():
        return []
    with _exclusive_lock(published_dir):
        return _prune_versions(parquet_root, keep_versions)


def publish_marts(
    con: duckdb.DuckDBPyConnection,
    published_dir: Path | str,
    *,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    tables: Sequence[str] = PUBLISHED_TABLES,
    validate: VersionValidator | None = None,
) -> PublishResult:
    """Copy ``marts.<table>`` of the warehouse ``con`` (a read-write connection to it) to a new
    published version and swap it in atomically; raises :class:`PublishError` (publishing
    nothing) when the new version fails a check.

    Every published table keeps its ``as_of_date`` column (the Parquet partition key); the
    published copy is the warehouse's marts as they stand, every date included. ``validate``
    runs on the finished Parquet version before the swap (see :data:`VersionValidator`).
    """
    if keep_versions < 1:
        raise ValueError("keep_versions must be at least 1")
    started = time.perf_counter()
    published_dir = Path(published_dir).resolve()
    parquet_root = published_dir / PARQUET_DIR
    parquet_root.mkdir(parents=True, exist_ok=True)
    source = con.execute("SELECT current_database()").fetchone()[0]

    missing = missing_tables(con, source, tables)
    if missing:
        raise PublishError(f"the warehouse lacks marts.{', marts.'.join(missing)}")
    current_as_of = con.execute(f"SELECT max(as_of_date) FROM marts.{SCORES}").fetchone()[0]
    if current_as_of is None:
        raise PublishError(f"marts.{SCORES} is empty in the warehouse")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    version = f"v-{stamp}-{uuid.uuid4().hex[:8]}"
    tmp_db = published_dir / f"{_TMP_DB_PREFIX}{uuid.uuid4().hex}"
    tmp_version = parquet_root / f"{_TMP_VERSION_PREFIX}{version[2:]}"
    final_db = published_dir / DB_FILE
    alias = f"icp_publish_{uuid.uuid4().hex[:12]}"

    with _exclusive_lock(published_dir):
        removed = _clean_leftovers(published_dir, parquet_root)
        attached: list[str] = []
        try:
            con.execute(f"ATTACH {string_literal(tmp_db)} AS {alias}")
            attached.append(alias)
            con.execute(f"CREATE SCHEMA {alias}.marts")
            for table in tables:
                con.execute(
                    f"CREATE TABLE {alias}.marts.{table} AS "
                    f"SELECT * FROM {quote_identifier(source)}.marts.{table}"
                )

            problems = missing_tables(con, alias, tables) + pii_problems(con, alias, tables)
            problems += [
                f"marts.{table} has no as_of_date column (the Parquet partition key)"
                for table in tables
                if "as_of_date" not in _columns(con, alias, table)
            ]
            facts: dict[str, object] = {}
            if SCORES in tables and HISTORY in tables:
                score_issues, facts = score_problems(con, alias, source)
                problems += score_issues
            if problems:
                raise PublishError("not published: " + "; ".join(problems))
            row_counts = {
                t: con.execute(f"SELECT count(*) FROM {alias}.marts.{t}").fetchone()[0]
                for t in tables
            }

            tmp_version.mkdir()
            for table in tables:
                (tmp_version / table).mkdir()
                if row_counts[table]:
                    con.execute(
                        f"COPY (SELECT * FROM {alias}.marts.{table}) "
                        f"TO {string_literal(tmp_version / table)} (FORMAT parquet, "
                        "PARTITION_BY (as_of_date), FILENAME_PATTERN 'part_{uuid}', "
                        "OVERWRITE_OR_IGNORE true)"
                    )
            problems = parquet_problems(con, tmp_version, alias, tables)
            if problems:
                raise PublishError("not published: " + "; ".join(problems))
            if validate is not None:
                validate(
                    tmp_version,
                    version,
                    date.fromisoformat(str(facts.get("as_of_date") or current_as_of)),
                )

            published_at = datetime.now(UTC).replace(tzinfo=None)
            info = {
                "version": version,
                "published_at": published_at.isoformat(timespec="seconds") + "Z",
                "as_of_date": facts.get("as_of_date") or current_as_of.isoformat(),
                "score_version": facts.get("score_version"),
                "row_counts": row_counts,
            }
            con.execute(f"CREATE SCHEMA {alias}.meta")
            con.execute(
                f"CREATE TABLE {alias}.meta.publish_info AS SELECT $version AS version, "
                "$published_at::TIMESTAMP AS published_at, $as_of::DATE AS as_of_date, "
                "$score_version AS score_version, $row_counts::JSON AS row_counts",
                {
                    "version": version,
                    "published_at": published_at,
                    "as_of": info["as_of_date"],
                    "score_version": info["score_version"],
                    "row_counts": json.dumps(row_counts),
                },
            )
            (tmp_version / MANIFEST).write_text(json.dumps(info, indent=2), encoding="utf-8")
            con.execute(f"CHECKPOINT {alias}")
            con.execute(f"DETACH {alias}")
            attached.remove(alias)
            if Path(f"{tmp_db}.wal").exists():
                raise PublishError(f"{tmp_db.name} kept a write-ahead log after DETACH")
            _fsync_path(tmp_db)
            _fsync_tree(tmp_version)

            final_version = parquet_root / version
            os.replace(tmp_version, final_version)
            tmp_link = parquet_root / f"{_TMP_LINK_PREFIX}{uuid.uuid4().hex}"
            os.symlink(version, tmp_link, target_is_directory=True)
            # The DuckDB file first, then the Parquet pointer: each swap is atomic on its own.
            os.replace(tmp_db, final_db)
            os.replace(tmp_link, parquet_root / CURRENT_LINK)
            _fsync_path(published_dir)
            _fsync_path(parquet_root)
        except BaseException:
            for name in attached:
                with suppress(duckdb.Error):
                    con.execute(f"DETACH {name}")
            for leftover in (tmp_db, Path(f"{tmp_db}.wal"), tmp_version):
                _remove(leftover)
            raise
        removed += _prune_versions(parquet_root, keep_versions)

    return PublishResult(
        version=version,
        db_path=final_db,
        parquet_dir=parquet_root / version,
        as_of_date=date.fromisoformat(str(info["as_of_date"])),
        score_version=str(info["score_version"]),
        row_counts=row_counts,
        seconds=round(time.perf_counter() - started, 3),
        removed=removed,
    )
