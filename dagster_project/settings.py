"""Where things are: landing zone, warehouse, scoring config, as-of date, from the environment.

Every path has a default under the working directory so a first run needs no set-up; each can
be set by an environment variable (for ``dagster dev`` and the daemon) or a CLI option.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["PROJECT_ROOT", "Settings"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_SCORING_CONFIG = PROJECT_ROOT / "config" / "scoring.yaml"


@dataclass(frozen=True)
class Settings:
    """Paths and the as-of date of a run. ``as_of_date`` None means the newest export date."""

    landing_dir: Path
    warehouse_path: Path
    scoring_config_path: Path
    as_of_date: date | None = None
    max_export_age_days: int = 2

    @classmethod
    def from_env(cls) -> Settings:
        """``ICP_LANDING``, ``ICP_WAREHOUSE``, ``ICP_SCORING_CONFIG``, ``ICP_AS_OF_DATE``,
        ``ICP_MAX_EXPORT_AGE_DAYS``."""
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
        )
