"""The state of a deployment in one look, and what to do about anything wrong (``icp doctor``).

It reads the Dagster instance, the warehouse lock, the landing zone and the files of each store;
it changes nothing unless asked to fix (:func:`fix`: close dead runs, apply retention now). The
warehouse is opened read-only, and only while this process holds the warehouse lock, so a run
never finds it open.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus

from dagster_project.defs.locking import WarehouseLock, lock_path_for
from dagster_project.operations.liveness import RunProcess, close_dead_runs, in_progress_runs
from dagster_project.operations.liveness import run_dates as dates_of_run
from dagster_project.operations.retention import (
    ALERT_LOG,
    PruneReport,
    RetentionSettings,
    dagster_sqlite_files,
    event_log_shard_dir,
    prune,
    runs_to_keep,
    tree_bytes,
)
from dagster_project.publish.snapshot import published_dir_for
from dagster_project.run import retry_cause as innermost_error
from dagster_project.settings import Settings

__all__ = ["DoctorReport", "GoodRun", "diagnose", "fix", "format_time"]

#: Dates shown in "last good run per as-of date" (the count of all is shown too).
SHOWN_GOOD_DATES = 14
FIX_CLOSED_BY = "icp doctor --fix"
#: Free disk below either of these, on the filesystem of a store, is a problem.
_MIN_FREE_BYTES = 1024**3
_MIN_FREE_SHARE = 0.05


@dataclass(frozen=True)
class GoodRun:
    """The newest successful run of an as-of date (or date range)."""

    dates: str
    run_id: str
    ended_at: float | None


@dataclass
class DoctorReport:
    """What ``icp doctor`` shows."""

    good_runs: list[GoodRun]
    good_dates_total: int
    in_progress: list[RunProcess]
    #: Queued runs as (run id, dates).
    queued: list[tuple[str, str]]
    lock_held: bool
    lock_holder: str
    disk_bytes: dict[str, int]
    quarantine_rows: int | None
    quarantine_note: str
    retention: dict[str, str]
    #: Each thing wrong, with what to do, in one sentence.
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _good_runs(instance: dg.DagsterInstance) -> list[GoodRun]:
    """Newest successful run per as-of date, newest date first."""
    newest: dict[str, GoodRun] = {}
    for record in instance.get_run_records(dg.RunsFilter(statuses=[DagsterRunStatus.SUCCESS])):
        dates = dates_of_run(record.dagster_run) or "(no date)"
        newest.setdefault(dates, GoodRun(dates, record.dagster_run.run_id, record.end_time))
    return sorted(newest.values(), key=lambda run: run.dates, reverse=True)


def _warehouse_lock_state(warehouse: Path) -> tuple[bool, str]:
    """Held or free, and by whom, tried with a non-blocking flock that is released at once."""
    path = lock_path_for(warehouse)
    if not path.exists():
        return False, "free (no run has taken it yet)"
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True, f"held by {WarehouseLock(warehouse).holder()}"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, "free"
    finally:
        os.close(fd)


@contextmanager
def _holding_free_warehouse_lock(warehouse: Path) -> Iterator[bool]:
    """Hold the warehouse lock while the body reads the warehouse, if no run holds it: a run
    starting meanwhile waits for it instead of finding the file open. Yields False if held."""
    path = lock_path_for(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _quarantine_rows(warehouse: Path) -> tuple[int | None, str]:
    import duckdb

    from dagster_project.ingest.loader import QUARANTINE_TABLE

    if not warehouse.exists():
        return None, "no warehouse yet"
    with _holding_free_warehouse_lock(warehouse) as free:
        if not free:
            return None, "not read: a run holds the warehouse"
        try:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                rows = con.execute(f"SELECT count(*) FROM {QUARANTINE_TABLE}").fetchone()[0]
        except duckdb.CatalogException:
            return 0, "no table yet"
        except duckdb.IOException as error:
            return None, f"not read: {error}"
    return rows, "bad rows of the exports the raw tables hold (up to the newest run's as-of date)"


def _disk_bytes(instance: dg.DagsterInstance, settings: Settings) -> dict[str, int]:
    from dagster_project.defs.transform.dbt import DBT_TARGET_ROOT

    home = Path(instance.root_directory)
    sizes: dict[str, int] = {}
    counted = 0
    for store, path in dagster_sqlite_files(instance).items():
        if store == "event log index":
            continue  # counted with the shards below
        size = sum(tree_bytes(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm"))
        sizes[f"dagster {store}"] = size
        counted += size
    shard_dir = event_log_shard_dir(instance)
    if shard_dir is not None and shard_dir.is_dir():
        sizes["dagster event logs"] = tree_bytes(shard_dir)
        counted += sizes["dagster event logs"]
    compute_logs = getattr(instance.compute_log_manager, "_base_dir", None)
    if compute_logs and Path(compute_logs).is_dir():
        sizes["dagster compute logs"] = tree_bytes(Path(compute_logs))
        counted += sizes["dagster compute logs"]
    alert_logs = sum(tree_bytes(home / name) for name in (ALERT_LOG, f"{ALERT_LOG}.1"))
    sizes["alert log"] = alert_logs
    sizes["dagster home, other"] = max(tree_bytes(home) - counted - alert_logs, 0)
    warehouse = settings.warehouse_path
    sizes["warehouse (+ .wal)"] = sum(
        tree_bytes(path) for path in (warehouse, Path(f"{warehouse}.wal")) if path.exists()
    )
    published = published_dir_for(warehouse)
    sizes["published"] = tree_bytes(published) if published.exists() else 0
    sizes["dbt/target"] = tree_bytes(DBT_TARGET_ROOT) if DBT_TARGET_ROOT.exists() else 0
    return sizes


def _last_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first step failure's error of a run, else its run failure message."""
    for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        records = instance.get_records_for_run(run_id, of_type=event_type, limit=1).records
        if not records:
            continue
        entry = records[0].event_log_entry
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = getattr(data, "error", None)
        # The innermost cause says what went wrong; the outer errors say where.
        message = innermost_error(error) if error is not None else entry.message
        step = f"{entry.step_key}: " if entry.step_key else ""
        return f"{step}{message}".strip()
    return "no failure recorded"


def _run_problems(
    instance: dg.DagsterInstance, in_progress: list[RunProcess], queued: list[tuple[str, str]]
) -> list[str]:
    problems = []
    dead = [process for process in in_progress if process.dead]
    for process in dead:
        step = f" (step {process.running_step} was running)" if process.running_step else ""
        problems.append(
            f"run {process.run_id[:8]} ({process.dates or 'no date'}) is recorded "
            f"{process.status} but {process.state}{step}: `icp doctor --fix` marks it failed"
        )
    if dead and queued:
        problems.append(
            f"{len(queued)} run(s) queued behind a dead run: they start once it is marked "
            "failed (`icp doctor --fix`)"
        )
    finished = instance.get_run_records(
        dg.RunsFilter(
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
        ),
        limit=50,
    )
    failures = []
    for record in finished:
        if record.dagster_run.status == DagsterRunStatus.SUCCESS:
            break
        if record.dagster_run.status == DagsterRunStatus.FAILURE:
            failures.append(record)
    if failures:
        newest = failures[0].dagster_run
        good = instance.get_run_records(dg.RunsFilter(statuses=[DagsterRunStatus.SUCCESS]), limit=1)
        since = (
            f"no successful run since {format_time(good[0].end_time)}"
            if good
            else "no successful run yet"
        )
        problems.append(
            f"{since} ({len(failures)} failed run(s) since); the last failure, run "
            f"{newest.run_id[:8]} ({dates_of_run(newest) or 'no date'}): "
            f"{_last_failure(instance, newest.run_id)}"
        )
    return problems


def _publish_problems(
    instance: dg.DagsterInstance,
    settings: Settings,
    in_progress: list[RunProcess],
    queued: list[tuple[str, str]],
) -> list[str]:
    from dagster_project.defs.automation import scoreable_export_dates
    from dagster_project.defs.publish.assets import PUBLISHED_MARTS

    dates = scoreable_export_dates(settings)
    if not dates:
        return [
            f"no complete export folder under {settings.landing_dir} (completion: "
            f"{settings.export_completion}): check the exporter"
        ]
    newest = dates[-1].isoformat()
    if newest in instance.get_materialized_partitions(PUBLISHED_MARTS):
        return []
    pending = {process.dates for process in in_progress if not process.dead}
    pending |= {dates for _run_id, dates in queued}
    if newest in pending:
        return []
    return [
        f"the newest complete export {newest} is not published: the schedule scores it at its "
        f"next tick, or run `icp run --as-of {newest}` now"
    ]


def _retention_problems(
    instance: dg.DagsterInstance, retention: RetentionSettings, now: float
) -> list[str]:
    cutoff = now - retention.run_days * 86_400
    keep = runs_to_keep(instance)
    overdue = 0
    for record in instance.get_run_records(
        dg.RunsFilter(
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
        )
    ):
        ended = record.end_time or record.update_timestamp.timestamp()
        # A day's grace: the housekeeping sensor prunes once a day.
        if ended < cutoff - 86_400 and record.dagster_run.run_id not in keep:
            overdue += 1
    if not overdue:
        return []
    return [
        f"{overdue} run(s) older than the retention ({retention.run_days} days) are still "
        "stored: the housekeeping sensor prunes daily (is the daemon running?); "
        "`icp doctor --fix` prunes now"
    ]


def _disk_problems(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    problems = []
    seen = set()
    for store, path in (
        ("Dagster home", Path(instance.root_directory)),
        ("warehouse", settings.warehouse_path.parent),
        ("published", published_dir_for(settings.warehouse_path)),
    ):
        while not path.exists() and path != path.parent:
            path = path.parent
        usage = shutil.disk_usage(path)
        if path.stat().st_dev in seen:
            continue
        seen.add(path.stat().st_dev)
        if usage.free < _MIN_FREE_BYTES or usage.free < _MIN_FREE_SHARE * usage.total:
            problems.append(
                f"the disk of the {store} ({path}) has {usage.free / 1024**3:.1f} GB free of "
                f"{usage.total / 1024**3:.1f} GB: free space or lower the retention"
            )
    return problems


def _target_problems(settings: Settings) -> list[str]:
    """On the PostgreSQL target: the server answers, and readers find a published version."""
    if settings.target != "postgres":
        return []
    import psycopg2

    from dagster_project.postgres import PUBLISHED_SCHEMA, connect, server_has_table

    try:
        server = connect()
    except psycopg2.Error as error:
        return [
            f"ICP_TARGET=postgres but the server does not answer ({str(error).strip()}): "
            "check ICP_PG_DSN or the PG* variables"
        ]
    try:
        if not server_has_table(server, PUBLISHED_SCHEMA, "publish_info"):
            return [
                f"the PostgreSQL server has no {PUBLISHED_SCHEMA} schema yet: readers find "
                "nothing there until a run publishes"
            ]
    finally:
        server.close()
    return []


def _instance_config_problems(instance: dg.DagsterInstance) -> list[str]:
    """An instance set up before run monitoring keeps a dead daemon-launched run STARTED."""
    from dagster_project.operations.run_launcher import LivenessCheckingRunLauncher

    if instance.run_monitoring_enabled and isinstance(
        instance.run_launcher, LivenessCheckingRunLauncher
    ):
        return []
    return [
        f"the instance settings ({instance.root_directory}/dagster.yaml) lack run monitoring "
        "with the liveness-checking run launcher, so a daemon-launched run that dies stays "
        "STARTED until the next run closes it: copy the run_launcher and run_monitoring "
        "sections of deploy/dagster.yaml into it"
    ]


def diagnose(
    instance: dg.DagsterInstance,
    settings: Settings,
    retention: RetentionSettings,
    now: float | None = None,
) -> DoctorReport:
    """Read the state of the deployment; change nothing."""
    now = time.time() if now is None else now
    good_runs = _good_runs(instance)
    in_progress = in_progress_runs(instance)
    queued = [
        (run.run_id, dates_of_run(run))
        for run in instance.get_runs(dg.RunsFilter(statuses=[DagsterRunStatus.QUEUED]))
    ]
    lock_held, lock_holder = _warehouse_lock_state(settings.warehouse_path)
    quarantine_rows, quarantine_note = _quarantine_rows(settings.warehouse_path)
    problems = _run_problems(instance, in_progress, queued)
    problems += _publish_problems(instance, settings, in_progress, queued)
    problems += _retention_problems(instance, retention, now)
    problems += _disk_problems(instance, settings)
    problems += _instance_config_problems(instance)
    problems += _target_problems(settings)
    return DoctorReport(
        good_runs=good_runs[:SHOWN_GOOD_DATES],
        good_dates_total=len(good_runs),
        in_progress=in_progress,
        queued=queued,
        lock_held=lock_held,
        lock_holder=lock_holder,
        disk_bytes=_disk_bytes(instance, settings),
        quarantine_rows=quarantine_rows,
        quarantine_note=quarantine_note,
        retention=retention.describe(),
        problems=problems,
    )


def fix(
    instance: dg.DagsterInstance, settings: Settings, retention: RetentionSettings
) -> tuple[list[RunProcess], PruneReport]:
    """Mark dead runs failed and apply retention now; return what was closed and pruned."""
    closed = close_dead_runs(instance, FIX_CLOSED_BY)
    return closed, prune(instance, settings, retention)
