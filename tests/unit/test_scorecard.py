"""The points model, anti-ICP rules, tiers, routes and publishing, on hand-made marts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from dagster_project.scoring.config import ScoringConfigError, load_scoring_config
from dagster_project.scoring.explain import explain_account
from dagster_project.scoring.pipeline import publish, run_scoring
from dagster_project.settings import PROJECT_ROOT

AS_OF = date(2026, 11, 20)
SCORED_AT = datetime(2026, 11, 20, 6, 0)

CONFIG = {
    "model": "rules",
    "base_points": 10,
    "criteria": [
        {
            "name": "sweet_spot",
            "attribute": "employee_count",
            "when": {"between": [100, 1000]},
            "points": 40,
        },
        {"name": "software", "attribute": "industry", "when": {"in": ["Software"]}, "points": 30},
        {
            "name": "stack",
            "attribute": "tech_stack",
            "when": {"contains_any": ["dbt"]},
            "points": 25,
        },
        {
            "name": "engaged",
            "attribute": "activities_last_30_days",
            "when": {"gte": 3},
            "points": 20,
        },
        {
            "name": "no_size",
            "attribute": "employee_count",
            "when": {"is_missing": True},
            "points": -30,
        },
    ],
    "anti_icp_rules": [
        {"code": "too_small", "attribute": "employee_count", "when": {"lt": 20}},
        {"code": "agency", "attribute": "business_model", "when": {"eq": "agency"}},
    ],
    "tiers": {"high": 70, "medium": 40},
}


def _write_config(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA marts")
    connection.execute(
        """
        CREATE TABLE marts.dim_accounts_history AS SELECT dates.as_of_date, t.* FROM (VALUES
            ('A1', 'software', 500, 'snowflake; DBT', 'b2b_saas'),
            ('A2', 'retail', 10, NULL, 'agency'),
            ('A3', NULL, NULL, NULL, NULL),
            ('A4', 'software', 150, 'dbt', 'b2b_saas')
        ) AS t(account_id, industry, employee_count, tech_stack, business_model)
        CROSS JOIN (VALUES (DATE '2026-11-19'), (DATE '2026-11-20')) AS dates(as_of_date)
        """
    )
    connection.execute(
        """
        CREATE TABLE marts.fct_account_metrics AS SELECT * FROM (VALUES
            ('A1', DATE '2026-11-20', 5),
            ('A2', DATE '2026-11-20', 0),
            ('A4', DATE '2026-11-20', 9),
            ('A4', DATE '2026-11-19', 0)
        ) AS t(account_id, as_of_date, activities_last_30_days)
        """
    )
    yield connection
    connection.close()


def _score(con, config_path: Path, as_of: date = AS_OF) -> dict[str, tuple]:
    config = load_scoring_config(config_path)
    run_scoring(con, config, as_of, SCORED_AT)
    publish(con, as_of)
    rows = con.execute(
        "SELECT account_id, fit_score, fit_tier, is_anti_icp, anti_icp_reasons, route, "
        "top_factors, factor_points FROM marts.account_fit_scores"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_points_tiers_flags_and_routes(tmp_path, con):
    scores = _score(con, _write_config(tmp_path, CONFIG))
    # A1: 10 base + 40 size + 30 industry + 25 stack + 20 engaged = 125, bounded to 100.
    assert scores["A1"][:5] == (Decimal("100.00"), "high", False, [], "senior_ae")
    assert [f["factor"] for f in scores["A1"][5]] == ["sweet_spot", "software", "stack", "engaged"]
    # A2: base only, flagged twice.
    assert scores["A2"][:5] == (
        Decimal("10.00"),
        "low",
        True,
        ["agency", "too_small"],
        "disqualify",
    )
    # A3: 10 base - 30 missing size = -20, bounded to 0; no metrics row at all.
    assert scores["A3"][:3] == (Decimal("0.00"), "low", False)
    assert scores["A3"][4] == "sdr_nurture"
    # A4 uses the metrics of the scored date only.
    assert scores["A4"][0] == Decimal("100.00")


def test_factor_points_add_up_to_score_and_explain_lists_them(tmp_path, con):
    scores = _score(con, _write_config(tmp_path, CONFIG))
    for account_id, row in scores.items():
        assert sum(f["points"] for f in row[6]) == row[0], account_id
    explanation = explain_account(con, "A3")
    assert explanation.factor_total == explanation.fit_score == 0
    assert ("no_size", Decimal("-30.00")) in explanation.factors
    assert ("base_points", Decimal("10.00")) in explanation.factors
    assert ("score_bounds_0_100", Decimal("20.00")) in explanation.factors


def test_factors_are_listed_largest_first_ties_by_name_base_last_zeros_left_out(tmp_path, con):
    document = {
        **CONFIG,
        "base_points": 5,
        "top_factors": 2,
        "criteria": [
            {
                "name": "size",
                "attribute": "employee_count",
                "when": {"between": [100, 1000]},
                "points": 20,
            },
            {
                "name": "industry",
                "attribute": "industry",
                "when": {"eq": "software"},
                "points": -20,
            },
            {"name": "nothing", "attribute": "industry", "when": {"eq": "software"}, "points": 0},
            {
                "name": "stack",
                "attribute": "tech_stack",
                "when": {"contains_any": ["dbt"]},
                "points": 7.5,
            },
        ],
    }
    scores = _score(con, _write_config(tmp_path, document))

    def listed(factors) -> list[tuple[str, Decimal]]:
        return [(f["factor"], f["points"]) for f in factors]

    # A4: 5 + 20 - 20 + 7.5; the two 20s by name, the zero criterion not listed.
    assert scores["A4"][0] == Decimal("12.50")
    assert listed(scores["A4"][6]) == [
        ("industry", Decimal("-20.00")),
        ("size", Decimal("20.00")),
        ("stack", Decimal("7.50")),
        ("base_points", Decimal("5.00")),
    ]
    assert listed(scores["A4"][5]) == [("industry", Decimal("-20.00")), ("size", Decimal("20.00"))]
    # A2 earns nothing: base points alone, no top factor.
    assert listed(scores["A2"][6]) == [("base_points", Decimal("5.00"))]
    assert scores["A2"][5] == []


def test_medium_tier_and_thresholds_from_config(tmp_path, con):
    document = {**CONFIG, "base_points": 0, "tiers": {"high": 90, "medium": 50}}
    scores = _score(con, _write_config(tmp_path, document))
    assert scores["A4"][:2] == (Decimal("100.00"), "high")
    document["criteria"] = CONFIG["criteria"][:2]
    scores = _score(con, _write_config(tmp_path, document))
    assert scores["A4"][:2] == (Decimal("70.00"), "medium")
    assert scores["A4"][4] == "ae"


def test_history_keeps_one_row_per_account_per_date_and_backfill_leaves_current(tmp_path, con):
    path = _write_config(tmp_path, CONFIG)
    _score(con, path)
    _score(con, path)  # same date again: replaced, not appended
    _score(con, path, as_of=date(2026, 11, 19))  # a backfill of an older date
    history = con.execute(
        "SELECT as_of_date, count(*), count(DISTINCT account_id) "
        "FROM marts.account_fit_score_history GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert history == [(date(2026, 11, 19), 4, 4), (date(2026, 11, 20), 4, 4)]
    current_dates = con.execute(
        "SELECT DISTINCT as_of_date FROM marts.account_fit_scores"
    ).fetchall()
    assert current_dates == [(AS_OF,)]


def test_config_values_are_bound_not_interpolated(tmp_path, con):
    hostile = "x'); DROP TABLE marts.dim_accounts_history; --"
    document = {
        **CONFIG,
        "criteria": [
            {"name": "odd", "attribute": "industry", "when": {"eq": hostile}, "points": 5},
        ],
    }
    scores = _score(con, _write_config(tmp_path, document))
    assert len(scores) == 4
    assert con.execute("SELECT count(*) FROM marts.dim_accounts_history").fetchone()[0] == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"criteria": [{"name": "x", "attribute": "nope", "when": {"eq": 1}, "points": 1}]},
            "not a scoring feature",
        ),
        (
            {
                "criteria": [
                    {"name": "x", "attribute": "industry", "when": {"like": "a"}, "points": 1}
                ]
            },
            "unknown operator",
        ),
        (
            {
                "criteria": [
                    {"name": "x y", "attribute": "industry", "when": {"eq": "a"}, "points": 1}
                ]
            },
            "letters, digits and underscores",
        ),
        ({"tiers": {"high": 30, "medium": 40}}, "0 <= medium < high"),
        ({"learned": {"best_share": 1.5}}, "best_share"),
        ({"learned": {"min_tenure_months": "six"}}, "must be a int"),
        ({"learned": {"surprise": 1}}, "unknown setting"),
        (
            {"criteria": [{"name": "x", "attribute": "industry", "when": {"gte": 3}, "points": 1}]},
            "numeric attribute",
        ),
    ],
)
def test_invalid_config_is_refused_with_a_clear_message(tmp_path, con, change, message):
    with pytest.raises(ScoringConfigError, match=message):
        _score(con, _write_config(tmp_path, {**CONFIG, **change}))


def test_shipped_config_is_valid():
    config = load_scoring_config(PROJECT_ROOT / "config" / "scoring.yaml")
    assert config.high_threshold == 70 and config.medium_threshold == 40
    assert {rule.code for rule in config.anti_icp_rules} >= {"too_small", "agency", "on_prem_only"}


def test_explain_shows_what_changed_since_the_previous_date(tmp_path, con):
    path = _write_config(tmp_path, CONFIG)
    _score(con, path, as_of=date(2026, 11, 19))
    _score(con, path)
    explanation = explain_account(con, "A4")
    change = explanation.change
    assert change.previous_as_of_date == date(2026, 11, 19)
    # A4 had no activity in the 30 days before 19 Nov and 9 before 20 Nov: +20 "engaged",
    # which the cut at 100 takes back.
    assert change.factor_changes == [
        ("engaged", Decimal("0"), Decimal("20.00")),
        ("score_bounds_0_100", Decimal("-5.00"), Decimal("-25.00")),
    ]
    assert (change.previous_fit_score, explanation.fit_score) == (Decimal("100.00"),) * 2
    assert explain_account(con, "A4", date(2026, 11, 19)).change is None
