"""Benchmark the pooled SQLite event log against Dagster's own, on the same disk, in one run.

A pipeline run stores about 1,500 Dagster events (planned asset and check events at launch,
one per dbt model and test, step events, logs). Dagster's ``SqliteEventLogStorage`` opens an
engine and a connection, commits and closes for each; ``PooledSqliteEventLogStorage``
(deploy/dagster.yaml) keeps one connection per database open. This stores the same events
through both into fresh folders under ``--out`` and prints the time per event and the ratio.

Usage::

    uv run python benchmarks/event_log_storage.py --events 1500
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_project.operations.event_log import PooledSqliteEventLogStorage


def _entry(run_id: str, index: int) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ENGINE_EVENT.value,
        job_name="icp_full_run",
        message=f"event {index}",
        event_specific_data=EngineEventData(),
    )
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=f"event {index}",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=event,
    )


def _store(storage_class, base_dir: Path, events: int) -> tuple[float, float]:
    """Wall and CPU seconds per event of storing ``events`` events of one run."""
    storage = storage_class(str(base_dir))
    run_id = str(uuid.uuid4())
    storage.store_event(_entry(run_id, -1))  # set-up of the run's database, not timed
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(events):
        storage.store_event(_entry(run_id, index))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stored = len(storage.get_records_for_run(run_id, limit=events + 1).records)
    assert stored == events + 1, f"{storage_class.__name__} stored {stored} events"
    storage.dispose()
    return wall / events, cpu / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=None, help="folder for the databases")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="icp-event-log-", dir=args.out) as root:
        for storage_class in (SqliteEventLogStorage, PooledSqliteEventLogStorage):
            wall, cpu = _store(storage_class, Path(root) / storage_class.__name__, args.events)
            results[storage_class.__name__] = wall
            print(
                f"{storage_class.__name__:30s} {wall * 1000:7.2f} ms/event wall, "
                f"{cpu * 1000:6.2f} ms/event CPU, {wall * args.events:6.1f} s for {args.events:,}"
            )
    ratio = results["PooledSqliteEventLogStorage"] / results["SqliteEventLogStorage"]
    print(f"RATIO pooled / Dagster's SQLite event log wall per event: {ratio:.3f}x")


if __name__ == "__main__":
    main()
