"""Shared fixtures: a generated landing zone and one real pipeline run per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_project.settings import PROJECT_ROOT, Settings

SAMPLE_ACCOUNTS = 400
SAMPLE_SEED = 7


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory) -> Path:
    """A small generated landing zone (read-only for tests: copy it before changing it)."""
    from dagster_project.sample_data import generate_landing_zone

    landing = tmp_path_factory.mktemp("sample") / "landing"
    generate_landing_zone(landing, accounts=SAMPLE_ACCOUNTS, seed=SAMPLE_SEED, history_months=8)
    return landing


def settings_for(landing: Path, warehouse: Path) -> Settings:
    return Settings(
        landing_dir=landing,
        warehouse_path=warehouse,
        scoring_config_path=PROJECT_ROOT / "config" / "scoring.yaml",
    )


@pytest.fixture(scope="session")
def postgres_environment():
    """The PG* variables of a PostgreSQL server of this test session (tests/postgres_server.py)."""
    from tests.postgres_server import postgres_server

    with postgres_server() as environment:
        yield environment


@pytest.fixture(scope="session")
def pipeline_run(sample_landing, tmp_path_factory):
    """The whole graph materialized once through Dagster on the sample landing zone."""
    from dagster_project.run import run_pipeline

    settings = settings_for(sample_landing, tmp_path_factory.mktemp("run") / "warehouse.duckdb")
    summary = run_pipeline(settings)
    return settings, summary


__all__ = ["settings_for"]
