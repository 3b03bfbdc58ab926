"""The whole pipeline with ``ICP_TARGET=postgres`` on a real PostgreSQL server, end to end.

The session's sample landing zone is run through Dagster twice with the PostgreSQL target (a
database of its own on the session's server); the published schema readers query there must
hold the scores the DuckDB run of the same landing zone published: the same tiers, anti-ICP
flags and reasons, routes and factor points, scores equal to the cent.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import closing

import duckdb
import pytest

from dagster_project.defs.transform.dbt import NOT_RUN_ON_POSTGRES
from dagster_project.postgres import PUBLISHED_SCHEMA, connect
from dagster_project.publish import DB_FILE, PUBLISHED_TABLES, published_dir_for
from tests.conftest import settings_for
from tests.postgres_server import fresh_database

pytestmark = pytest.mark.slow

DATABASE = "icp_pipeline_e2e"
#: Every column a CRM sync reads of the scores, compared row by row.
SCORE_COLUMNS = (
    "account_id",
    "as_of_date",
    "fit_score",
    "fit_tier",
    "is_anti_icp",
    "anti_icp_reasons",
    "route",
    "score_version",
)


@pytest.fixture(scope="module")
def postgres_runs(sample_landing, postgres_environment, tmp_path_factory):
    """Two runs of the graph on the PostgreSQL target (the second changes nothing)."""
    environment = fresh_database(postgres_environment, DATABASE)
    settings = dataclasses.replace(
        settings_for(sample_landing, tmp_path_factory.mktemp("pg-run") / "warehouse.duckdb"),
        target="postgres",
    )
    first = _run_on(environment, settings)
    first_info = _publish_info(environment)
    second = _run_on(environment, settings)
    return settings, environment, first, first_info, second


def _run_on(environment: dict[str, str], settings):
    from dagster_project.run import run_pipeline

    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        return run_pipeline(settings)


def _published_scores_on_duckdb(settings) -> list[tuple]:
    published = published_dir_for(settings.warehouse_path) / DB_FILE
    with duckdb.connect(str(published), read_only=True) as con:
        return con.execute(
            f"SELECT {', '.join(SCORE_COLUMNS)} FROM marts.account_fit_scores ORDER BY account_id"
        ).fetchall()


def _published_scores_on_server(environment) -> list[tuple]:
    return _server_rows(
        environment,
        f"SELECT {', '.join(SCORE_COLUMNS)} FROM {PUBLISHED_SCHEMA}.account_fit_scores "
        "ORDER BY account_id",
    )


def _publish_info(environment) -> dict:
    with closing(connect(environment)) as server, server.cursor() as cursor:
        cursor.execute(f"SELECT info FROM {PUBLISHED_SCHEMA}.publish_info")
        return cursor.fetchone()[0]


def _server_rows(environment, sql: str) -> list[tuple]:
    with closing(connect(environment)) as server, server.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_both_runs_succeed_with_every_check_run_or_said_why_not(postgres_runs):
    _, _, first, _, second = postgres_runs
    for summary in (first, second):
        assert summary.success, summary.failures + summary.check_failure_details
        assert summary.checks_failed == []
        not_run = [w for w in summary.warnings if NOT_RUN_ON_POSTGRES in w]
        # The three score-changes unit tests whose fixtures are DuckDB literals.
        assert len(not_run) == 3, summary.warnings
        assert summary.checks_passed > 300


def test_readers_find_every_published_table_on_the_server(postgres_runs):
    _, environment, first, first_info, second = postgres_runs
    tables = {
        name
        for (name,) in _server_rows(
            environment,
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = '{PUBLISHED_SCHEMA}'",
        )
    }
    assert tables == {*PUBLISHED_TABLES, "publish_info"}
    info = _publish_info(environment)
    # The second run published a new version of the same scores.
    assert info["version"] != first_info["version"]
    assert info["as_of_date"] == second.as_of_date == first.as_of_date
    for table, rows in info["row_counts"].items():
        assert _server_rows(environment, f"SELECT count(*) FROM {PUBLISHED_SCHEMA}.{table}") == [
            (rows,)
        ]
    assert _server_rows(
        environment,
        f"SELECT count(*) FROM {PUBLISHED_SCHEMA}.account_fit_scores",
    ) == [(second.accounts_scored,)]


def test_postgres_publishes_the_scores_duckdb_publishes(postgres_runs, pipeline_run):
    _, environment, *_ = postgres_runs
    duckdb_settings, duckdb_summary = pipeline_run
    on_server = _published_scores_on_server(environment)
    assert len(on_server) == duckdb_summary.accounts_scored > 0
    assert on_server == _published_scores_on_duckdb(duckdb_settings)


def test_the_second_generators_landing_zone_scores_alike_on_both_targets(
    postgres_environment, tmp_path
):
    # Data the project's own generator does not write: its own planted ICP, no churn or FX
    # files, company names with quotes (the mirror once failed on them).
    from dagster_project.sample_data import generate_structured_landing_zone

    landing = tmp_path / "landing"
    generate_structured_landing_zone(landing, structure="tech_and_size", accounts=800, seed=3)
    on_duckdb = settings_for(landing, tmp_path / "duckdb" / "warehouse.duckdb")
    on_postgres = dataclasses.replace(
        settings_for(landing, tmp_path / "postgres" / "warehouse.duckdb"), target="postgres"
    )
    environment = fresh_database(postgres_environment, "icp_second_generator")
    duckdb_summary = _run_on({}, on_duckdb)
    postgres_summary = _run_on(environment, on_postgres)
    assert duckdb_summary.success and postgres_summary.success, postgres_summary.failures
    assert postgres_summary.checks_failed == []
    assert postgres_summary.evidence == duckdb_summary.evidence
    on_server = _published_scores_on_server(environment)
    assert len(on_server) == 800
    assert on_server == _published_scores_on_duckdb(on_duckdb)


def test_postgres_factor_points_and_history_match_duckdb(postgres_runs, pipeline_run):
    _, environment, *_ = postgres_runs
    duckdb_settings, _ = pipeline_run
    on_server = _server_rows(
        environment,
        "SELECT account_id, as_of_date, factor_points::text "
        f"FROM {PUBLISHED_SCHEMA}.account_fit_score_history ORDER BY account_id, as_of_date",
    )
    published = published_dir_for(duckdb_settings.warehouse_path) / DB_FILE
    with duckdb.connect(str(published), read_only=True) as con:
        on_duckdb = con.execute(
            "SELECT account_id, as_of_date, factor_points "
            "FROM marts.account_fit_score_history ORDER BY account_id, as_of_date"
        ).fetchall()
    assert len(on_server) == len(on_duckdb)
    for (account, as_of, server_points), (_, _, duck_points) in zip(
        on_server, on_duckdb, strict=True
    ):
        parsed = [(item["factor"], round(item["points"], 2)) for item in json.loads(server_points)]
        assert parsed == [(item["factor"], float(item["points"])) for item in duck_points], (
            account,
            as_of,
        )


def test_the_score_changes_are_built_on_the_server(postgres_runs):
    _, environment, _, _, second = postgres_runs
    # One date was ever scored (twice): every account is new on it, as on DuckDB.
    rows = _server_rows(
        environment,
        "SELECT count(*), count(*) FILTER (WHERE is_new_account) "
        f"FROM {PUBLISHED_SCHEMA}.account_fit_score_changes "
        f"WHERE as_of_date = '{second.as_of_date}'",
    )
    assert rows == [(second.accounts_scored, second.accounts_scored)]
