"""The pooled SQLite event log (operations/event_log.py): what deploy/dagster.yaml selects, one
connection per database, and files that Dagster's own storage and a live watcher read as
they are written."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import event

from dagster_project.operations.event_log import PooledSqliteEventLogStorage
from dagster_project.run import dagster_instance

_STEPS = 12


@dg.op
def _step(context) -> None:
    context.log.info("working")


@dg.job
def _many_steps():
    for index in range(_STEPS):
        _step.alias(f"step_{index}")()


def _messages(storage, run_id: str) -> list[str]:
    records = storage.get_records_for_run(run_id).records
    return [record.event_log_entry.message for record in records]


def test_the_project_instance_uses_it_in_dagsters_usual_folder(tmp_path):
    home = tmp_path / "home"
    instance = dagster_instance(home)
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    assert Path(storage._base_dir) == (home / "history" / "runs").resolve()


def test_an_instance_made_from_its_folder_reads_its_own_event_log(tmp_path, monkeypatch):
    """``DagsterInstance.from_config(home)`` in a process whose DAGSTER_HOME names another
    folder (a test or script watching a run): the storage read ``$DAGSTER_HOME``'s (or the
    working directory's) event log and saw none of the run's events."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    dagster_instance(home).dispose()  # writes home/dagster.yaml
    elsewhere.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    monkeypatch.chdir(elsewhere)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        assert Path(storage._base_dir) == (home / "history" / "runs").resolve()
        run_id = _many_steps.execute_in_process(instance=instance).run_id
        assert len(_messages(storage, run_id)) > 4 * _STEPS
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert list(elsewhere.iterdir()) == []


def test_a_run_opens_each_database_once_and_dagsters_storage_reads_it_live(tmp_path):
    instance = dagster_instance(tmp_path / "home")
    storage = instance.event_log_storage
    opened: list[str] = []
    original_engine = storage._engine

    def counting_engine(shard):
        engine = original_engine(shard)
        if not getattr(engine, "_counted", False):
            event.listen(engine, "connect", lambda *_: opened.append(shard))
            engine._counted = True
        return engine

    storage._engine = counting_engine
    result = _many_steps.execute_in_process(instance=instance)
    assert result.success
    run_id = result.run_id
    pooled = _messages(storage, run_id)
    assert len(pooled) > 4 * _STEPS
    # Dagster's storage opened a connection per event: dozens here.
    assert opened.count(run_id) <= 1, f"{opened.count(run_id)} connections for one run"
    # A reader in another process (the webserver, the daemon) uses Dagster's own class on the
    # same files while this process still holds them open, events still in the -wal file.
    plain = SqliteEventLogStorage(storage._base_dir)
    assert _messages(plain, run_id) == pooled
    instance.dispose()


def test_a_watcher_hears_events_written_after_it_started(tmp_path):
    instance = dagster_instance(tmp_path / "home")
    first = _many_steps.execute_in_process(instance=instance)
    writer = instance.event_log_storage
    reader = PooledSqliteEventLogStorage(writer._base_dir)
    heard = threading.Event()
    seen: list[str] = []

    def callback(entry, _cursor):
        seen.append(entry.message)
        if "late event" in entry.message:
            heard.set()

    cursor = str(writer.get_records_for_run(first.run_id).cursor)
    reader.watch(first.run_id, cursor, callback)
    try:
        instance.report_engine_event("late event", _run(instance, first.run_id))
        assert heard.wait(timeout=20), f"the watcher heard only {seen}"
    finally:
        reader.end_watch(first.run_id, callback)
        reader.dispose()
        instance.dispose()


def _run(instance: dg.DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def test_forgetting_a_shard_closes_it_and_sets_it_up_again_on_next_use(tmp_path):
    instance = dagster_instance(tmp_path / "home")
    run_id = _many_steps.execute_in_process(instance=instance).run_id
    storage = instance.event_log_storage
    assert run_id in storage._engines
    storage.forget_shard(run_id)
    assert run_id not in storage._engines
    shard = Path(storage.path_for_shard(run_id))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{shard}{suffix}").unlink(missing_ok=True)
    # Read after deletion: set up as a new, empty shard instead of failing on a missing table.
    assert _messages(storage, run_id) == []
    instance.dispose()
