"""Keeping a deployment's state bounded: old runs, their logs, published versions, dbt folders.

A year of nightly runs leaves, per run, a row in the run storage, a few hundred events in the
event log (a SQLite shard ``history/runs/<run_id>.db`` each, plus the asset events mirrored in
``history/runs/index.db``) and the captured stdout/stderr of its steps under the compute log
storage (``$DAGSTER_HOME/storage/<run_id>/compute_logs/``). :func:`prune` deletes finished runs
older than the retention with all of that, keeps the runs the pipeline still reads (below), and
compacts the SQLite files, which never shrink on their own. It also applies the published
versions' and dbt target folders' retention and rotates the alert log.

Runs kept whatever their age:

* the newest successful run of each job, so "the last good run" is always known;
* the run that holds the newest ``published/marts`` materialization of the newest published
  date: the nightly schedule skips a date whose newest materialization is newer than its
  export files (:mod:`dagster_project.defs.automation`), and deleting a run deletes its
  materializations, so without it the schedule would score that date again every night;
* every run not finished (queued, starting, started, canceling): closing dead runs is
  :func:`dagster_project.operations.liveness.close_dead_runs`'s job, never retention's.

Ticks of the schedule and sensors are purged by the daemon itself (``retention:`` in
deploy/dagster.yaml). ``raw.quarantined_rows`` needs no retention: it holds the bad rows of the
exports the raw tables hold (:mod:`dagster_project.ingest.loader`), no more.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster import DagsterRunStatus

from dagster_project.publish.snapshot import DEFAULT_KEEP_VERSIONS, published_dir_for
from dagster_project.settings import Settings

__all__ = [
    "ALERT_LOG",
    "PruneReport",
    "RetentionSettings",
    "dagster_sqlite_files",
    "event_log_shard_dir",
    "prune",
    "rotate_alert_log",
    "runs_to_keep",
    "tree_bytes",
]

#: The alert log's name in ``$DAGSTER_HOME`` (one line per alert, written by the alerts module).
ALERT_LOG = "alerts.log"
_DAY_SECONDS = 86_400
_FINISHED_STATUSES = [
    DagsterRunStatus.SUCCESS,
    DagsterRunStatus.FAILURE,
    DagsterRunStatus.CANCELED,
]
#: Dagster run ids are UUID4 strings; only files and folders so named are run leftovers.
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: SQLite's answer when another connection holds the database: VACUUM is retried next time.
_SQLITE_BUSY_SECONDS = 30


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    value = int(raw) if raw else default
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class RetentionSettings:
    """How long each store keeps what it holds."""

    #: Finished runs ending longer ago are deleted with their event and compute logs.
    run_days: int = 90
    #: Published Parquet versions kept (the newest; ``current`` always stays).
    keep_published_versions: int = DEFAULT_KEEP_VERSIONS
    #: The alert log is rotated to ``alerts.log.1`` (one kept) once larger than this.
    alert_log_max_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_env(cls) -> RetentionSettings:
        """``ICP_RETAIN_RUNS_DAYS`` (default 90), ``ICP_KEEP_PUBLISHED_VERSIONS`` (default 3),
        ``ICP_ALERT_LOG_MAX_MB`` (default 10)."""
        return cls(
            run_days=_env_int("ICP_RETAIN_RUNS_DAYS", 90, minimum=1),
            keep_published_versions=_env_int(
                "ICP_KEEP_PUBLISHED_VERSIONS", DEFAULT_KEEP_VERSIONS, minimum=1
            ),
            alert_log_max_bytes=_env_int("ICP_ALERT_LOG_MAX_MB", 10, minimum=1) * 1024 * 1024,
        )

    def describe(self) -> dict[str, str]:
        """Each store and its retention, in words (for ``icp doctor``)."""
        from dagster_project.defs.transform.dbt import FAILED_TARGET_RETENTION

        return {
            "finished runs, event logs, compute logs": (
                f"{self.run_days} days (ICP_RETAIN_RUNS_DAYS); the newest good run and the "
                "newest published date's run always kept"
            ),
            "published versions": f"newest {self.keep_published_versions} "
            "(ICP_KEEP_PUBLISHED_VERSIONS)",
            "dbt target folders of failed calls": f"{FAILED_TARGET_RETENTION.days} days",
            "alert log": f"rotated at {self.alert_log_max_bytes // (1024 * 1024)} MB, one "
            "old file kept (ICP_ALERT_LOG_MAX_MB)",
            "schedule and sensor ticks": "by the daemon: deploy/dagster.yaml `retention:`",
            "raw.quarantined_rows": "the bad rows of the exports the raw tables hold",
        }


@dataclass
class PruneReport:
    """What :func:`prune` removed and kept."""

    runs_deleted: int = 0
    #: Finished runs inside the retention window, left alone.
    runs_within_retention: int = 0
    #: Runs older than the retention kept anyway: run id -> why.
    runs_kept: dict[str, str] = field(default_factory=dict)
    compute_log_folders_removed: int = 0
    event_log_shards_removed: int = 0
    sqlite_compacted: list[str] = field(default_factory=list)
    published_versions_removed: list[str] = field(default_factory=list)
    dbt_targets_removed: list[str] = field(default_factory=list)
    alert_log_rotated: bool = False
    bytes_before: int = 0
    bytes_after: int = 0
    #: Things retention left to someone else or could not do now, in words.
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return max(self.bytes_before - self.bytes_after, 0)

    @property
    def removed_anything(self) -> bool:
        return bool(
            self.runs_deleted
            or self.compute_log_folders_removed
            or self.event_log_shards_removed
            or self.published_versions_removed
            or self.dbt_targets_removed
            or self.alert_log_rotated
        )

    def summary(self) -> str:
        parts = [
            f"deleted {self.runs_deleted} run(s) older than the retention "
            f"({self.runs_within_retention} within it, {len(self.runs_kept)} older kept)",
            f"{self.compute_log_folders_removed} compute log folder(s), "
            f"{self.event_log_shards_removed} event log shard(s)",
            f"{len(self.published_versions_removed)} published version(s)",
            f"{len(self.dbt_targets_removed)} dbt target folder(s)",
        ]
        if self.sqlite_compacted:
            parts.append("compacted " + ", ".join(self.sqlite_compacted))
        if self.alert_log_rotated:
            parts.append("rotated the alert log")
        parts.append(f"freed {self.bytes_freed:,} bytes")
        return "; ".join(parts) + "".join(f". {note}" for note in self.notes)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file), symlinks not followed."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _is_within(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _finished_before(instance: dg.DagsterInstance, cutoff: float) -> tuple[list, int]:
    """Finished run records that ended before ``cutoff``, and how many ended since."""
    old, recent = [], 0
    for record in instance.get_run_records(dg.RunsFilter(statuses=_FINISHED_STATUSES)):
        ended = record.end_time or record.update_timestamp.timestamp()
        if ended < cutoff:
            old.append(record)
        else:
            recent += 1
    return old, recent


def runs_to_keep(instance: dg.DagsterInstance) -> dict[str, str]:
    """Runs retention never deletes whatever their age (besides unfinished ones): id -> why."""
    from dagster_project.defs.publish.assets import PUBLISHED_MARTS

    keep: dict[str, str] = {}
    newest_good: dict[str, str] = {}
    # Newest first: the first successful run met for a job is its newest.
    for record in instance.get_run_records(dg.RunsFilter(statuses=[DagsterRunStatus.SUCCESS])):
        newest_good.setdefault(record.dagster_run.job_name, record.dagster_run.run_id)
    for job_name, run_id in newest_good.items():
        keep[run_id] = f"the newest successful run of {job_name}"
    published = instance.get_materialized_partitions(PUBLISHED_MARTS)
    if published:
        newest_date = max(published)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PUBLISHED_MARTS, asset_partitions=[newest_date]),
            limit=1,
        ).records
        if records and records[0].run_id:
            keep.setdefault(
                records[0].run_id,
                f"published {newest_date}, the newest date published: the nightly schedule "
                "reads its materialization to skip that date",
            )
    return keep


def _delete_run(instance: dg.DagsterInstance, run_id: str, report: PruneReport) -> None:
    instance.delete_run(run_id)
    report.runs_deleted += 1
    shard_dir = event_log_shard_dir(instance)
    shard = shard_dir / f"{run_id}.db" if shard_dir is not None else None
    if shard is not None and shard.is_file() and _is_within(shard, Path(instance.root_directory)):
        forget_shard = getattr(instance.event_log_storage, "forget_shard", None)
        if forget_shard is not None:
            # The pooled storage (operations/event_log.py) may hold the file open.
            forget_shard(run_id)
        # delete_run empties the run's shard but leaves the file.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{shard}{suffix}").unlink(missing_ok=True)
        # The storage remembers shards it has set up; a later read of this run in this process
        # must set the file up again rather than query a file with no tables.
        getattr(instance.event_log_storage, "_initialized_dbs", set()).discard(run_id)
        report.event_log_shards_removed += 1
    manager = instance.compute_log_manager
    local_folder = _local_compute_log_folder(instance, run_id)
    if local_folder is not None:
        if local_folder.is_dir() and _is_within(local_folder, Path(instance.root_directory)):
            manager.delete_logs(prefix=[run_id])
            report.compute_log_folders_removed += 1
    else:
        # Another compute log store (S3, Azure, ...): its own delete, by the run's prefix.
        manager.delete_logs(prefix=[run_id])
        report.compute_log_folders_removed += 1


def _local_compute_log_folder(instance: dg.DagsterInstance, run_id: str) -> Path | None:
    """``<compute log base>/<run_id>`` for the local compute log manager, else None."""
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

    manager = instance.compute_log_manager
    if isinstance(manager, LocalComputeLogManager):
        return Path(manager._base_dir) / run_id  # noqa: SLF001 - no public accessor
    return None


def dagster_sqlite_files(instance: dg.DagsterInstance) -> dict[str, Path]:
    """The instance's SQLite databases by store (empty for Postgres or MySQL storage)."""
    from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
        ConsolidatedSqliteEventLogStorage,
    )
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
        INDEX_SHARD_NAME,
        SqliteEventLogStorage,
    )
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
    from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import (
        SqliteScheduleStorage,
    )

    files: dict[str, Path] = {}
    run_storage = instance.run_storage
    if isinstance(run_storage, SqliteRunStorage):
        files["run storage"] = _sqlite_path(run_storage._conn_string)  # noqa: SLF001
    events = instance.event_log_storage
    if isinstance(events, SqliteEventLogStorage):
        files["event log index"] = Path(events.path_for_shard(INDEX_SHARD_NAME))
    elif isinstance(events, ConsolidatedSqliteEventLogStorage):
        files["event log"] = Path(events.get_db_path())
    schedules = instance.schedule_storage
    if isinstance(schedules, SqliteScheduleStorage):
        files["schedule and sensor storage"] = _sqlite_path(schedules._conn_string)  # noqa: SLF001
    return files


def _sqlite_path(conn_string: str) -> Path:
    # Dagster writes ``sqlite:///`` + an absolute path (create_db_conn_string).
    return Path("/" + conn_string.removeprefix("sqlite:///").lstrip("/"))


def event_log_shard_dir(instance: dg.DagsterInstance) -> Path | None:
    """The folder of the per-run event log shards, for the default (sharded SQLite) storage."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    events = instance.event_log_storage
    if isinstance(events, SqliteEventLogStorage):
        return Path(events._base_dir)  # noqa: SLF001 - no public accessor
    return None


def _remove_orphans(instance: dg.DagsterInstance, cutoff: float, report: PruneReport) -> None:
    """Event log shards and compute log folders of runs that no longer exist.

    ``delete_run`` empties a run's shard but leaves its file. Only names that are run ids, only
    untouched since ``cutoff`` (a run being created right now has no record yet), and only
    inside ``$DAGSTER_HOME``."""
    home = Path(instance.root_directory)
    shard_dir = event_log_shard_dir(instance)
    candidates: list[tuple[str, Path]] = []
    if shard_dir is not None and shard_dir.is_dir():
        candidates += [
            (path.name.removesuffix(".db"), path)
            for path in shard_dir.glob("*.db")
            if _RUN_ID.fullmatch(path.name.removesuffix(".db"))
        ]
    probe = _local_compute_log_folder(instance, "probe")
    if probe is not None and probe.parent.is_dir():
        candidates += [
            (path.name, path) for path in probe.parent.iterdir() if _RUN_ID.fullmatch(path.name)
        ]
    if not candidates:
        return
    existing = {
        run.run_id
        for run in instance.get_runs(dg.RunsFilter(run_ids=sorted({c[0] for c in candidates})))
    }
    for run_id, path in candidates:
        if run_id in existing or not _is_within(path, home) or path.stat().st_mtime >= cutoff:
            continue
        if path.is_dir():
            instance.compute_log_manager.delete_logs(prefix=[run_id])
            report.compute_log_folders_removed += 1
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            report.event_log_shards_removed += 1


def _compact_sqlite(files: dict[str, Path], home: Path, report: PruneReport) -> None:
    """VACUUM each database that has free pages: SQLite reuses them but never returns them."""
    for store, path in files.items():
        if not path.is_file() or not _is_within(path, home):
            continue
        try:
            with sqlite3.connect(path, timeout=_SQLITE_BUSY_SECONDS) as con:
                free_pages = con.execute("PRAGMA freelist_count").fetchone()[0]
            if not free_pages:
                continue
            con = sqlite3.connect(path, timeout=_SQLITE_BUSY_SECONDS, isolation_level=None)
            try:
                con.execute("VACUUM")
                # runs.db is in WAL mode: fold the log back so the file on disk is the small one.
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            report.sqlite_compacted.append(f"{store} ({path.name})")
        except sqlite3.OperationalError as error:
            report.notes.append(f"{store} ({path}) not compacted now ({error}); next prune retries")


def rotate_alert_log(home: Path, max_bytes: int) -> bool:
    """Move ``alerts.log`` to ``alerts.log.1`` (replacing it) when larger than ``max_bytes``.

    The alerts module opens the file to append each line, so the next alert starts a new file.
    """
    log = home / ALERT_LOG
    if not log.is_file() or log.is_symlink() or log.stat().st_size <= max_bytes:
        return False
    os.replace(log, home / f"{ALERT_LOG}.1")
    return True


def _state_bytes(instance: dg.DagsterInstance, settings: Settings, dbt_target_root: Path) -> int:
    roots = [
        Path(instance.root_directory),
        dbt_target_root,
        published_dir_for(settings.warehouse_path),
    ]
    roots = [root.resolve() for root in roots if root.exists()]
    # A root inside another (a published folder in $DAGSTER_HOME) is counted once.
    outermost = [r for r in roots if not any(r != o and r.is_relative_to(o) for o in roots)]
    return sum(tree_bytes(root) for root in set(outermost))


def prune(
    instance: dg.DagsterInstance,
    settings: Settings,
    retention: RetentionSettings,
    now: float | None = None,
    dbt_target_root: Path | None = None,
) -> PruneReport:
    """Apply every store's retention now; ``now`` (a Unix time) stands for the present.

    Safe to run while runs execute: it deletes only finished runs and files no run uses.
    ``dbt_target_root`` defaults to the project's ``dbt/target``.
    """
    from dagster_project.defs.transform.dbt import DBT_TARGET_ROOT, prune_stale_targets

    dbt_target_root = dbt_target_root or DBT_TARGET_ROOT
    from dagster_project.publish.snapshot import prune_published_versions

    now = time.time() if now is None else now
    cutoff = now - retention.run_days * _DAY_SECONDS
    home = Path(instance.root_directory)
    report = PruneReport(bytes_before=_state_bytes(instance, settings, dbt_target_root))

    old_runs, report.runs_within_retention = _finished_before(instance, cutoff)
    keep = runs_to_keep(instance)
    for record in old_runs:
        run_id = record.dagster_run.run_id
        if run_id in keep:
            report.runs_kept[run_id] = keep[run_id]
        else:
            _delete_run(instance, run_id, report)
    _remove_orphans(instance, cutoff, report)

    sqlite_files = dagster_sqlite_files(instance)
    if sqlite_files:
        _compact_sqlite(sqlite_files, home, report)
    else:
        report.notes.append(
            "Dagster storage is not SQLite: the database reclaims deleted rows itself (autovacuum)"
        )

    report.published_versions_removed = prune_published_versions(
        published_dir_for(settings.warehouse_path), retention.keep_published_versions
    )
    report.dbt_targets_removed = prune_stale_targets(dbt_target_root, now=now)
    report.alert_log_rotated = rotate_alert_log(home, retention.alert_log_max_bytes)
    report.bytes_after = _state_bytes(instance, settings, dbt_target_root)
    return report
