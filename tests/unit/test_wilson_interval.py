"""The Wilson interval SQL every lift and anti-ICP rate is bounded with.

The published ``icp_profile`` is refused by its expectation suite when an interval's low end
lies above the share it bounds; at a share of 0 the raw formula gave about 1e-19 and failed
a 3,000-account run at publish."""

import math

import duckdb
import pytest

from dagster_project.sql import wilson_bound_sql


def _wilson(rate: float, count: int, z: float, side: str) -> float:
    centre = rate + z * z / (2 * count)
    spread = z * math.sqrt(rate * (1 - rate) / count + z * z / (4 * count * count))
    sign = -1 if side == "lower" else 1
    return (centre + sign * spread) / (1 + z * z / count)


@pytest.fixture(scope="module")
def proportions():
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE proportions AS
        SELECT successes / trials::DOUBLE AS rate, trials
        FROM range(1, 400) AS t(trials), LATERAL range(0, trials + 1) AS s(successes)
        """
    )
    yield con
    con.close()


def test_every_interval_holds_its_rate_and_lies_in_the_unit_range(proportions):
    lower = wilson_bound_sql("rate", "trials", "1.96", "lower")
    upper = wilson_bound_sql("rate", "trials", "1.96", "upper")
    outside = proportions.execute(
        f"""
        SELECT count(*) FILTER (WHERE NOT (0 <= lo AND lo <= rate AND rate <= hi AND hi <= 1)),
               count(*) FILTER (WHERE rate = 0 AND lo <> 0),
               count(*) FILTER (WHERE rate = 1 AND hi <> 1),
               count(*)
        FROM (SELECT rate, {lower} AS lo, {upper} AS hi FROM proportions)
        """
    ).fetchone()
    assert outside[:3] == (0, 0, 0)
    assert outside[3] > 70_000


@pytest.mark.parametrize(("rate", "count"), [(0.3, 10), (0.05, 200), (0.5, 1), (0.9, 37)])
def test_the_bounds_are_the_wilson_score_interval(rate, count):
    con = duckdb.connect()
    lower, upper = con.execute(
        f"SELECT {wilson_bound_sql('$rate', '$count', '$z', 'lower')},"
        f" {wilson_bound_sql('$rate', '$count', '$z', 'upper')}",
        {"rate": rate, "count": count, "z": 1.96},
    ).fetchone()
    assert lower == pytest.approx(_wilson(rate, count, 1.96, "lower"), abs=1e-12)
    assert upper == pytest.approx(_wilson(rate, count, 1.96, "upper"), abs=1e-12)
