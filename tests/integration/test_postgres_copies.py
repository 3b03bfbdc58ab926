"""Moving tables between the DuckDB working file and a real PostgreSQL server, and the swap of
the server's published schema (dagster_project/postgres.py), in a database of their own."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from dagster_project.postgres import (
    PUBLISHED_SCHEMA,
    connect,
    copy_table_if_changed,
    copy_tables,
    duckdb_column_type,
    mirror_tables,
    publish_schema,
)
from tests.postgres_server import fresh_database

DATABASE = "icp_copies"
FACTORS = "STRUCT(factor VARCHAR, points DECIMAL(7, 2))[]"
FIRST, SECOND = date(2026, 6, 29), date(2026, 6, 30)


@pytest.fixture(scope="module")
def environment(postgres_environment):
    return fresh_database(postgres_environment, DATABASE)


def _rows(environment, sql: str) -> list[tuple]:
    with closing(connect(environment)) as server, server.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _scores(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""
        CREATE TABLE marts.scores AS SELECT * FROM (VALUES
            ('A', DATE '{FIRST}', 10.5::DECIMAL(7, 2), 0.1::DOUBLE, true, ['x', 'y z'],
             [{{'factor': 'industry', 'points': 3.25}}]::{FACTORS}, '',
             TIMESTAMP '2026-06-29 06:00:00'),
            ('B', DATE '{FIRST}', NULL, NULL, NULL, [], []::{FACTORS}, NULL, NULL),
            ('A', DATE '{SECOND}', 99.99::DECIMAL(7, 2), 1e-17::DOUBLE, false,
             ['with "quote"', NULL], NULL, 'The "Quoted", Co.' || chr(10) || 'line two',
             TIMESTAMP '2026-06-30 06:00:00.123456')
        ) AS t(account_id, as_of_date, fit_score, share, is_anti_icp, reasons, factor_points,
               note, scored_at)
        """
    )


def test_rows_of_the_given_dates_are_replaced_and_the_others_kept(environment):
    with duckdb.connect() as con, closing(connect(environment)) as server:
        _scores(con)
        assert copy_tables(con, server, "marts", ["scores"]) == {"scores": 3}
        con.execute("UPDATE marts.scores SET fit_score = 1 WHERE true")
        assert copy_tables(con, server, "marts", ["scores"], dates=[SECOND]) == {"scores": 1}
    rows = _rows(
        environment, "SELECT account_id, as_of_date, fit_score FROM marts.scores ORDER BY 2, 1"
    )
    assert rows == [
        ("A", FIRST, Decimal("10.50")),
        ("B", FIRST, None),
        ("A", SECOND, Decimal("1.00")),
    ]


def test_a_mirrored_table_holds_the_values_duckdb_wrote(environment):
    with duckdb.connect() as con, closing(connect(environment)) as server:
        _scores(con)
        copy_tables(con, server, "marts", ["scores"])
        expected = con.execute(
            "SELECT * FROM marts.scores ORDER BY as_of_date, account_id"
        ).fetchall()
        con.execute("DROP TABLE marts.scores")
        copied = mirror_tables(server, con, "marts", {"scores": {"factor_points": FACTORS}})
        assert copied == {"scores": 3}
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'scores'"
            ).fetchall()
        )
        mirrored = con.execute(
            "SELECT * FROM marts.scores ORDER BY as_of_date, account_id"
        ).fetchall()
    # Empty strings stay empty strings, NULLs NULL, quotes, commas and line breaks in text as
    # they were (a company name such as 'The "Quoted" Widget Co.'), lists, structs and doubles
    # exact.
    assert mirrored == expected
    assert types["factor_points"] == "STRUCT(factor VARCHAR, points DECIMAL(7,2))[]"
    assert types["reasons"] == "VARCHAR[]" and types["fit_score"] == "DECIMAL(7,2)"


def test_mirroring_dates_replaces_only_their_rows_in_the_working_file(environment):
    with duckdb.connect() as con, closing(connect(environment)) as server:
        _scores(con)
        copy_tables(con, server, "marts", ["scores"])
        con.execute("UPDATE marts.scores SET note = 'local' WHERE true")
        mirror_tables(server, con, "marts", {"scores": {"factor_points": FACTORS}}, [SECOND])
        notes = con.execute(
            "SELECT as_of_date, note FROM marts.scores ORDER BY 1, account_id"
        ).fetchall()
    assert notes == [(FIRST, "local"), (FIRST, "local"), (SECOND, 'The "Quoted", Co.\nline two')]


def test_server_types_map_to_duckdb_types():
    assert duckdb_column_type("numeric", "numeric", 7, 2) == "DECIMAL(7, 2)"
    assert duckdb_column_type("ARRAY", "_text", None, None) == "VARCHAR[]"
    assert duckdb_column_type("timestamp without time zone", "timestamp", None, None) == "TIMESTAMP"
    with pytest.raises(ValueError, match="jsonb"):
        duckdb_column_type("jsonb", "jsonb", None, None)


def test_readers_see_the_old_published_version_or_the_new_one_never_a_mix(environment):
    with duckdb.connect() as con, closing(connect(environment)) as server:
        _scores(con)
        copy_tables(con, server, "marts", ["scores"])
        publish_schema(server, ["scores"], {"version": "v1"})
        con.execute("DELETE FROM marts.scores WHERE account_id = 'B'")
        copy_tables(con, server, "marts", ["scores"])

    with closing(connect(environment)) as reader, reader.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {PUBLISHED_SCHEMA}.scores")  # opens a transaction
        assert cursor.fetchone() == (3,)
        publisher = threading.Thread(
            target=lambda: _publish(environment, {"version": "v2"}), daemon=True
        )
        publisher.start()
        time.sleep(1.5)
        # The swap waits for the reader's transaction, which still reads version 1 whole.
        assert publisher.is_alive()
        cursor.execute(
            f"SELECT count(*), max(info->>'version') FROM {PUBLISHED_SCHEMA}.scores, "
            f"{PUBLISHED_SCHEMA}.publish_info"
        )
        assert cursor.fetchone() == (3, "v1")
        reader.rollback()
        publisher.join(timeout=30)
        assert not publisher.is_alive()
    assert _rows(
        environment,
        f"SELECT count(*), max(info->>'version') FROM {PUBLISHED_SCHEMA}.scores, "
        f"{PUBLISHED_SCHEMA}.publish_info",
    ) == [(2, "v2")]
    (published_at,) = _rows(
        environment, f"SELECT published_at FROM {PUBLISHED_SCHEMA}.publish_info"
    )
    assert isinstance(published_at[0], datetime)


def _publish(environment, info) -> None:
    with closing(connect(environment)) as server:
        publish_schema(server, ["scores"], info)


def test_doctor_says_when_the_server_does_not_answer_or_has_published_nothing(
    environment, monkeypatch, tmp_path
):
    from dagster_project.operations.doctor import _target_problems
    from dagster_project.settings import Settings

    settings = Settings(tmp_path, tmp_path / "w.duckdb", tmp_path / "c.yaml", target="postgres")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with closing(connect(environment)) as server, server, server.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {PUBLISHED_SCHEMA} CASCADE")
    assert "has no published schema yet" in " ".join(_target_problems(settings))
    with duckdb.connect() as con, closing(connect(environment)) as server:
        _scores(con)
        copy_tables(con, server, "marts", ["scores"])
        publish_schema(server, ["scores"], {"version": "v1"})
    assert _target_problems(settings) == []
    monkeypatch.setenv("PGPORT", "1")
    assert "the server does not answer" in " ".join(_target_problems(settings))
    assert _target_problems(Settings(tmp_path, tmp_path / "w.duckdb", tmp_path / "c.yaml")) == []


def test_a_quoted_name_far_down_a_large_table_is_mirrored(environment):
    # DuckDB's CSV sniffer guesses from a sample: before the mirror named PostgreSQL's CSV
    # dialect, a quote first seen past the sample failed the read ("unterminated quote").
    with duckdb.connect() as con, closing(connect(environment)) as server:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.names AS SELECT i AS n, CASE WHEN i = 60000 "
            "THEN 'The \"Quoted\" Widget Co.' ELSE 'name ' || i END AS name FROM range(60001) t(i)"
        )
        copy_tables(con, server, "marts", ["names"])
        con.execute("DROP TABLE marts.names")
        assert mirror_tables(server, con, "marts", {"names": {}}) == {"names": 60001}
        assert con.execute("SELECT name FROM marts.names WHERE n = 60000").fetchone() == (
            'The "Quoted" Widget Co.',
        )


def test_a_table_is_copied_again_only_when_its_rows_differ_from_the_servers(environment):
    with (
        duckdb.connect() as con,
        duckdb.connect() as other,
        closing(connect(environment)) as server,
    ):
        _scores(con)
        _scores(other)
        other.execute("DELETE FROM marts.scores WHERE account_id = 'B'")
        assert copy_table_if_changed(con, server, "marts", "scores")
        assert not copy_table_if_changed(con, server, "marts", "scores")
        con.execute("UPDATE marts.scores SET note = 'changed' WHERE account_id = 'B'")
        assert copy_table_if_changed(con, server, "marts", "scores")
        # Another working file wrote the server's table: this one's rows go back.
        assert copy_table_if_changed(other, server, "marts", "scores")
        assert copy_table_if_changed(con, server, "marts", "scores")
        # The server's table replaced behind the record's back (a restore, a hand copy).
        copy_tables(other, server, "marts", ["scores"])
        assert copy_table_if_changed(con, server, "marts", "scores")
    assert _rows(environment, "SELECT count(*) FROM marts.scores") == [(3,)]
