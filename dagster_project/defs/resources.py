"""Resources: the DuckDB warehouse, the landing zone, the run's as-of date, the dbt CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from dagster_project.ingest.landing import export_dates
from dagster_project.scoring.config import ScoringConfig, load_scoring_config
from dagster_project.settings import Settings

__all__ = ["LandingZoneResource", "ScoringConfigResource", "WarehouseResource", "build_resources"]

_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file.

    DuckDB allows one writing process per file, so a connection is opened only for the
    duration of one step's work and closed before dbt (a separate process) runs; the job runs
    in process, one step at a time.
    """

    path: str
    memory_limit: str = "4GB"

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
    """The landing folder and the as-of date of the run (empty: the newest export date)."""

    root: str
    as_of_date: str = ""
    max_export_age_days: int = 2

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def resolved_as_of(self) -> date:
        """The as-of date: the configured one, else the newest export folder's date."""
        if self.as_of_date:
            return date.fromisoformat(self.as_of_date)
        dates = export_dates(self.root_path)
        if not dates:
            raise dg.Failure(f"no export-date folders (YYYY-MM-DD) under landing root {self.root}")
        return dates[-1]


class ScoringConfigResource(dg.ConfigurableResource):
    """The scoring config file (points per criterion, anti-ICP rules, tiers, routes)."""

    path: str

    def load(self) -> ScoringConfig:
        return load_scoring_config(Path(self.path))


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources for ``settings``, as passed to ``Definitions``."""
    from dagster_project.defs.transform.dbt import DBT_PROJECT

    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
        "landing": LandingZoneResource(
            root=str(settings.landing_dir),
            as_of_date=settings.as_of_date.isoformat() if settings.as_of_date else "",
            max_export_age_days=settings.max_export_age_days,
        ),
        "scoring_config": ScoringConfigResource(path=str(settings.scoring_config_path)),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT),
    }
