"""Where things are: landing zone, warehouse, scoring config, as-of date, from the environment.

Every path has a default under the working directory so a first run needs no set-up; each can
be set by an environment variable (for ``dagster dev`` and the daemon) or a CLI option.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["PROJECT_ROOT", "TARGETS", "Settings"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_SCORING_CONFIG = PROJECT_ROOT / "config" / "scoring.yaml"
#: Where the models and the published tables live: ``duckdb``, the embedded warehouse file
#: (the default), or ``postgres``, a PostgreSQL server (docs/postgres.md).
TARGETS = ("duckdb", "postgres")


@dataclass(frozen=True)
class Settings:
    """Paths and the as-of date of a run. ``as_of_date`` None means the newest export date."""

    landing_dir: Path
    warehouse_path: Path
    scoring_config_path: Path
    as_of_date: date | None = None
    max_export_age_days: int = 2
    max_quarantine_share: float = 0.05
    min_valid_date: date = date(1900, 1, 1)
    max_valid_date: date = date(2100, 12, 31)
    schedule_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    export_completion: str = "files"
    max_catchup_dates: int = 7
    target: str = "duckdb"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"ICP_TARGET must be one of {', '.join(TARGETS)}, not {self.target!r}")

    @classmethod
    def from_env(cls) -> Settings:
        """``ICP_LANDING``, ``ICP_WAREHOUSE``, ``ICP_SCORING_CONFIG``, ``ICP_AS_OF_DATE``,
        ``ICP_MAX_EXPORT_AGE_DAYS``, ``ICP_MAX_QUARANTINE_SHARE`` (a file or rule quarantining
        more than this share of a file's rows is a warning, default 0.05),
        ``ICP_MIN_VALID_DATE`` / ``ICP_MAX_VALID_DATE`` (a timestamp dated outside is a
        sentinel such as 0001-01-01 or 9999-12-31 and quarantined; default 1900-01-01 and
        2100-12-31),
        ``ICP_SCHEDULE_CRON`` (the nightly run, default 02:00),
        ``ICP_TIMEZONE`` (of the schedule and the daily partitions, default UTC),
        ``ICP_EXPORT_COMPLETION`` (``files``: an export folder is complete when every required
        file is there, the default; ``marker``: when it holds ``_SUCCESS``),
        ``ICP_MAX_CATCHUP_DATES`` (after downtime the schedule scores at most this many
        missed dates, the newest; default 7),
        ``ICP_TARGET`` (``duckdb``, the default, or ``postgres``: the models, scores and
        published tables on the server of ``ICP_PG_DSN`` or the ``PG*`` variables).

        ``ICP_PARTITIONS_START`` (default 2000-01-01), the first as-of date partition, is read
        by :mod:`dagster_project.defs.partitions`."""
        cwd = Path.cwd()
        as_of = os.environ.get("ICP_AS_OF_DATE", "").strip()
        return cls(
            landing_dir=Path(os.environ.get("ICP_LANDING") or cwd / "data" / "landing").resolve(),
            warehouse_path=Path(
                os.environ.get("ICP_WAREHOUSE") or cwd / "data" / "warehouse.duckdb"
            ).resolve(),
            scoring_config_path=Path(
                os.environ.get("ICP_SCORING_CONFIG") or _DEFAULT_SCORING_CONFIG
            ).resolve(),
            as_of_date=date.fromisoformat(as_of) if as_of else None,
            max_export_age_days=int(os.environ.get("ICP_MAX_EXPORT_AGE_DAYS") or 2),
            max_quarantine_share=float(os.environ.get("ICP_MAX_QUARANTINE_SHARE") or 0.05),
            min_valid_date=date.fromisoformat(
                os.environ.get("ICP_MIN_VALID_DATE", "").strip() or "1900-01-01"
            ),
            max_valid_date=date.fromisoformat(
                os.environ.get("ICP_MAX_VALID_DATE", "").strip() or "2100-12-31"
            ),
            schedule_cron=os.environ.get("ICP_SCHEDULE_CRON", "").strip() or "0 2 * * *",
            timezone=os.environ.get("ICP_TIMEZONE", "").strip() or "UTC",
            export_completion=os.environ.get("ICP_EXPORT_COMPLETION", "").strip() or "files",
            max_catchup_dates=int(os.environ.get("ICP_MAX_CATCHUP_DATES") or 7),
            target=os.environ.get("ICP_TARGET", "").strip().lower() or "duckdb",
        )
