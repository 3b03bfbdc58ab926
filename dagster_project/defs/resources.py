"""Resources: the DuckDB warehouse, the landing zone, the run's as-of date, the dbt CLI."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliInvocation, DbtCliResource
from packaging.version import Version
from pydantic import PrivateAttr

from dagster_project.defs.locking import WarehouseLock
from dagster_project.defs.project import (
    DBT_PIPELINE_TARGET,
    DBT_PROJECT,
    POSTGRES_DBT_TARGET,
    dbt_executable,
)
from dagster_project.operations.liveness import close_dead_runs
from dagster_project.scoring.config import ScoringConfig, load_scoring_config
from dagster_project.settings import Settings

__all__ = [
    "DBT_AS_OF_DATE_ENV",
    "IcpDbtCliResource",
    "LandingZoneResource",
    "ScoringConfigResource",
    "WarehouseResource",
    "build_resources",
]

_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file, and the lock that makes a run its only writer.

    DuckDB allows one writing process per file, so a connection is opened only for the
    duration of one step's work and closed before dbt (a separate process) runs; the job runs
    in process, one step at a time. Between runs, the run holds an exclusive lock on
    ``<warehouse>.lock`` from its first step to its last (the resource is set up once per run
    by the in-process executor): a second run (a CLI run while the schedule's run is going,
    two backfills) waits for it, up to ``lock_timeout_seconds``, instead of interleaving its
    steps with the first run's.
    """

    path: str
    #: ``duckdb`` (the file is the warehouse) or ``postgres`` (the models and the published
    #: tables are on the server; the file keeps the ingest's state and the scoring's working
    #: tables): Settings.target.
    target: str = "duckdb"
    #: DuckDB's own memory (it spills to ``<warehouse>.tmp`` beyond it), leaving room in the
    #: process for Python's (the scoring's arrays, Great Expectations' batches) under the 3 GiB
    #: a run may use at a million accounts; dbt's process has the same (dbt/profiles.yml).
    memory_limit: str = "2GB"
    lock_timeout_seconds: int = 6 * 3600

    _lock: WarehouseLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run_id = context.run_id if context.dagster_run else "no-run"
        log = context.log.info if context.log else None
        self._lock = WarehouseLock(Path(self.path))
        self._lock.acquire(run_id, self.lock_timeout_seconds, log)
        if context.dagster_run and context.instance:
            # Holding the lock, this run is the warehouse's only writer: a run still recorded
            # as in progress whose process is gone died mid-run. Closing it keeps the queue
            # (one run at a time) from waiting on it when no daemon monitors the runs.
            for dead in close_dead_runs(context.instance, "the next run", except_run_id=run_id):
                if log:
                    log(f"marked run {dead.run_id} failed: {dead.state}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def on_postgres(self) -> bool:
        return self.target == "postgres"

    @contextmanager
    def postgres(self) -> Iterator[Any]:
        """A connection to the PostgreSQL target's server, closed afterwards."""
        from dagster_project.postgres import connect

        server = connect()
        try:
            yield server
        finally:
            server.close()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not _MEMORY_LIMIT.match(self.memory_limit):
            raise ValueError(f"memory_limit {self.memory_limit!r} is not like '4GB'")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield con
        finally:
            con.close()


class LandingZoneResource(dg.ConfigurableResource):
    """The landing folder; the as-of date of a run is its partition key."""

    root: str
    max_export_age_days: int = 2
    max_quarantine_share: float = 0.05
    #: Timestamps dated before / after these days are sentinels and quarantined (ISO dates).
    min_valid_date: str = "1900-01-01"
    max_valid_date: str = "2100-12-31"

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    @property
    def valid_dates(self) -> tuple[date, date]:
        return date.fromisoformat(self.min_valid_date), date.fromisoformat(self.max_valid_date)


class ScoringConfigResource(dg.ConfigurableResource):
    """The scoring config file (points per criterion, anti-ICP rules, tiers, routes)."""

    path: str

    def load(self) -> ScoringConfig:
        return load_scoring_config(Path(self.path))


#: The as-of date of a pipeline dbt invocation (macros/as_of_date.sql reads it after --vars).
DBT_AS_OF_DATE_ENV = "ICP_DBT_AS_OF_DATE"
#: The warehouse file of a dbt invocation (profiles.yml reads it after --vars).
DBT_WAREHOUSE_ENV = "ICP_WAREHOUSE"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class IcpDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt CLI without two probes it makes in each step that invokes dbt, and with
    the run's date and warehouse passed so that dbt's partial parse stays valid.

    - ``dbt --version`` (a subprocess, ~4 s here, partly a look-up of the newest dbt-core on
      PyPI) tells dagster-dbt dbt Core from dbt Fusion; the dbt beside this interpreter is the
      installed dbt-core package, whose version is known without running it.
    - An in-process dbt adapter (~2 s: it loads the project and parses every macro) serves
      only ``fetch_row_counts``/``fetch_column_metadata``, which this project does not use.

    Both override private dagster-dbt methods; tests/unit/test_dbt_resource.py fails when an
    upgrade renames them.
    """

    def cli_as_of(
        self,
        args: Sequence[str],
        as_of: date,
        warehouse_path: str,
        run_vars: Mapping[str, Any],
        **kwargs,
    ) -> DbtCliInvocation:
        """``dbt <args> --vars <run_vars>`` describing ``as_of`` on the file ``warehouse_path``.

        The date and the file reach dbt as environment variables, not ``--vars``: dbt parses
        the whole project again (about 5 s of CPU here) whenever the vars differ from those
        its saved partial parse was made with, which a new date always does; the date is read
        only when SQL is compiled, so an environment variable leaves the parse valid.
        ``run_vars`` must therefore be the same for every invocation of a run and from run to
        run (settings, not dates). dagster-dbt gives the dbt process a copy of ``os.environ``
        when it starts it, inside ``cli``: the values are set around that call and restored
        after it (the job runs its steps one at a time).

        ``--no-write-json``: dbt writes no manifest.json (twice per invocation, about 1.5 s
        for this project's 4 MB manifest) nor run_results.json; the results the pipeline
        uses come from dbt's events as they stream
        (``transform.dbt.stream_noting_unit_tests``). The partial parse is saved all the same.
        """
        values = {DBT_AS_OF_DATE_ENV: as_of.isoformat(), DBT_WAREHOUSE_ENV: warehouse_path}
        if self.target == POSTGRES_DBT_TARGET:
            from dagster_project.postgres import libpq_environment

            # The profile's postgres target reads the PG* variables; ICP_PG_DSN becomes them.
            values.update(libpq_environment())
        with _environment(values):
            return self.cli(
                [*args, "--vars", json.dumps(dict(run_vars)), "--no-write-json"], **kwargs
            )

    @cached_property
    def _cli_version(self) -> Version:
        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            return Version(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources for ``settings``, as passed to ``Definitions``."""
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path), target=settings.target),
        "landing": LandingZoneResource(
            root=str(settings.landing_dir),
            max_export_age_days=settings.max_export_age_days,
            max_quarantine_share=settings.max_quarantine_share,
            min_valid_date=settings.min_valid_date.isoformat(),
            max_valid_date=settings.max_valid_date.isoformat(),
        ),
        "scoring_config": ScoringConfigResource(path=str(settings.scoring_config_path)),
        "dbt": IcpDbtCliResource(
            project_dir=DBT_PROJECT,
            dbt_executable=dbt_executable(),
            target=POSTGRES_DBT_TARGET if settings.target == "postgres" else DBT_PIPELINE_TARGET,
        ),
    }
