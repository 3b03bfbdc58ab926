"""score_problems says whether the published current scores are exactly the warehouse's: it
compares whole-row fingerprints (one scan) and names what differs only when something does."""

from __future__ import annotations

import duckdb
import pytest

from dagster_project.publish.snapshot import score_problems

_SCORES = """
    SELECT 'A' || i AS account_id, DATE '2026-10-20' AS as_of_date, 'v1' AS score_version,
           i * 1.5 AS fit_score, ['size', 'industry'] AS factors
    FROM range(1, 6) AS r(i)
"""


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("ATTACH ':memory:' AS published")
    for catalog in ("memory", "published"):
        connection.execute(f"CREATE SCHEMA {catalog}.marts")
        connection.execute(f"CREATE TABLE {catalog}.marts.account_fit_scores AS {_SCORES}")
        connection.execute(f"CREATE TABLE {catalog}.marts.account_fit_score_history AS {_SCORES}")
    yield connection
    connection.close()


def _differences(con) -> list[str]:
    problems, _ = score_problems(con, "published", "memory")
    return [p for p in problems if "differs from the warehouse" in p]


def test_the_same_rows_in_another_order_are_the_current_version(con):
    con.execute("CREATE TABLE reordered AS FROM published.marts.account_fit_scores ORDER BY 4 DESC")
    con.execute("DELETE FROM published.marts.account_fit_scores")
    con.execute("INSERT INTO published.marts.account_fit_scores FROM reordered")
    assert score_problems(con, "published", "memory")[0] == []


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE published.marts.account_fit_scores SET fit_score = 3.5 WHERE account_id = 'A2'",
        "UPDATE published.marts.account_fit_scores SET factors = ['industry', 'size'] "
        "WHERE account_id = 'A1'",
        # Same row count: A1 twice, A2 gone.
        "UPDATE published.marts.account_fit_scores SET account_id = 'A1', fit_score = 1.5 "
        "WHERE account_id = 'A2'",
    ],
    ids=["a score", "a list's order", "a row swapped for a duplicate"],
)
def test_a_changed_row_is_named_with_how_many_differ(con, change):
    con.execute(change)
    assert _differences(con) == [
        "marts.account_fit_scores differs from the warehouse: 5 rows vs 5, "
        "1 only published, 1 only in the warehouse"
    ]
