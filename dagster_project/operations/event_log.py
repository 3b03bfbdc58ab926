"""Dagster's SQLite event log, with one open connection per database instead of one per event.

Dagster's ``SqliteEventLogStorage`` creates an SQLAlchemy engine, opens a connection, commits
and closes it for every event it stores. A run of this project stores about 1,500 events (the
asset and check "planned" events at launch, then one per dbt model and dbt test, each mirrored
in the index database), and closing the last connection of a database in WAL mode also
checkpoints its write-ahead log into the database file: at 3,000 accounts that was the largest
single cost of a run after the work itself.

:class:`PooledSqliteEventLogStorage` keeps one connection per database file open (a few
files, least recently used first out) and commits in WAL mode with ``synchronous=NORMAL``:
a commit is durable when the process crashes (it is in the write-ahead log), and may be lost
only when the host loses power in the second after it; a run whose last events were lost so
is closed as dead by the run monitoring like any run whose process is gone. Everything else,
files, schema and migrations included, is Dagster's own: ``dagster-webserver``, the daemon
and a plain ``SqliteEventLogStorage`` read the same files.

Because events now stay in ``<run>.db-wal`` until SQLite checkpoints them, the watcher that
tells a live UI about new events also watches that file (Dagster's watches ``<run>.db`` only).

``deploy/dagster.yaml`` selects it::

    event_log_storage:
      module: dagster_project.operations.event_log
      class: PooledSqliteEventLogStorage

in ``<instance home>/history/runs/``, where Dagster keeps its event log by default (a
``config: {base_dir: DIR}`` elsewhere, relative to the instance's home, the folder of its
dagster.yaml, or absolute).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._config import Field, StringSource, UserConfigSchema
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool
from watchdog.events import FileSystemEvent

__all__ = ["DEFAULT_BASE_DIR", "MAX_OPEN_DATABASES", "PooledSqliteEventLogStorage"]

#: Where Dagster keeps the SQLite event log in an instance's home when dagster.yaml names none.
DEFAULT_BASE_DIR = os.path.join("history", "runs", "")

#: Databases kept open at once: the index and the runs a process is writing or watching. A
#: CLI run touches two; the webserver may read many runs, each reopened when needed.
MAX_OPEN_DATABASES = 8


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` keeping its database connections open between events."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        """``base_dir``: the event log folder; a relative one lies under the home of the
        instance the storage is registered with (see :meth:`register_instance`)."""
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._home_relative_dir: str | None = None
        if os.path.isabs(base_dir):
            super().__init__(base_dir, inst_data)
        else:
            # Set up when the instance registers: until then no folder is known, and any use
            # fails rather than reading another home's runs.
            self._home_relative_dir = base_dir
            self._pending_inst_data = inst_data

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(base_dir=config_value.get("base_dir") or DEFAULT_BASE_DIR, inst_data=inst_data)

    def register_instance(self, instance) -> None:
        """The folder of a relative ``base_dir`` is under the instance's own home: an instance
        made with ``DagsterInstance.from_config(home)`` in a process whose ``DAGSTER_HOME``
        names another (a test, a script watching a run) read another home's event log."""
        if self._home_relative_dir is not None:
            base_dir = os.path.join(instance.root_directory, self._home_relative_dir)
            self._home_relative_dir = None
            super().__init__(base_dir, self._pending_inst_data)
        super().register_instance(instance)

    def forget_shard(self, shard: str) -> None:
        """Close and forget the database of ``shard`` (a run id), before its file is deleted."""
        with self._db_lock:
            engine = self._engines.pop(shard, None)
            if engine is not None:
                engine.dispose()
            self._initialized_dbs.discard(shard)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            # One connection, used under the storage's lock by one thread at a time.
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_DATABASES:
            _, evicted = self._engines.popitem(last=False)
            evicted.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            if shard not in self._initialized_dbs:
                # Dagster's schema set-up opens connections of its own: a pool of one would
                # wait for itself, so it gets an engine without a pool, as in Dagster.
                set_up = create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=NullPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._initdb(set_up)
                set_up.dispose()
                self._initialized_dbs.add(shard)
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def watch(self, run_id: str, cursor: str | None, callback) -> None:
        if not self._obs:
            from watchdog.observers import Observer

            self._obs = Observer()
            self._obs.start()
        watchdog = _WalAwareWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            self._obs.schedule(watchdog, self._base_dir, recursive=True),
        )

    def dispose(self) -> None:
        if self._home_relative_dir is not None:
            return  # never registered with an instance: nothing was opened
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


class _WalAwareWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's watcher of a run's events, woken by its write-ahead log too."""

    def __init__(self, event_log_storage, run_id, callback, cursor, **kwargs):
        super().__init__(event_log_storage, run_id, callback, cursor, **kwargs)
        wal = f"{self._log_path}-wal"
        # PatternMatchingEventHandler keeps its patterns in a private attribute.
        self._patterns = [self._log_path, wal]

    def on_modified(self, event: FileSystemEvent) -> None:
        if event.src_path in (self._log_path, f"{self._log_path}-wal"):
            self._process_log()
