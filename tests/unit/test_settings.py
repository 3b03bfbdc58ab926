"""Settings from the environment, and the CLI keeping them under its options."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from dagster_project.cli import _settings
from dagster_project.defs.project import DBT_PIPELINE_TARGET, POSTGRES_DBT_TARGET
from dagster_project.defs.resources import build_resources
from dagster_project.settings import Settings


def test_the_target_defaults_to_duckdb_and_takes_postgres(monkeypatch):
    monkeypatch.delenv("ICP_TARGET", raising=False)
    assert Settings.from_env().target == "duckdb"
    monkeypatch.setenv("ICP_TARGET", " Postgres ")
    assert Settings.from_env().target == "postgres"


def test_an_unknown_target_is_refused(monkeypatch):
    monkeypatch.setenv("ICP_TARGET", "snowflake")
    with pytest.raises(ValueError, match="ICP_TARGET must be one of duckdb, postgres"):
        Settings.from_env()


def test_the_cli_options_keep_the_environments_other_settings(monkeypatch, tmp_path: Path):
    # The CLI once built Settings from its options alone: ICP_MAX_QUARANTINE_SHARE and the
    # like were silently ignored by `icp run`.
    monkeypatch.setenv("ICP_TARGET", "postgres")
    monkeypatch.setenv("ICP_MAX_QUARANTINE_SHARE", "0.2")
    monkeypatch.setenv("ICP_MAX_VALID_DATE", "2099-01-01")
    settings = _settings(
        tmp_path / "landing", tmp_path / "w.duckdb", datetime(2026, 6, 30), tmp_path / "c.yaml"
    )
    assert settings.target == "postgres"
    assert settings.max_quarantine_share == 0.2
    assert settings.max_valid_date.isoformat() == "2099-01-01"
    assert settings.warehouse_path == (tmp_path / "w.duckdb").resolve()
    assert settings.as_of_date.isoformat() == "2026-06-30"


@pytest.mark.parametrize(
    ("target", "dbt_target", "on_postgres"),
    [("duckdb", DBT_PIPELINE_TARGET, False), ("postgres", POSTGRES_DBT_TARGET, True)],
)
def test_the_target_reaches_the_warehouse_and_dbt(tmp_path: Path, target, dbt_target, on_postgres):
    settings = Settings(
        landing_dir=tmp_path,
        warehouse_path=tmp_path / "w.duckdb",
        scoring_config_path=tmp_path / "c.yaml",
        target=target,
    )
    resources = build_resources(settings)
    assert resources["warehouse"].on_postgres is on_postgres
    assert resources["dbt"].target == dbt_target
