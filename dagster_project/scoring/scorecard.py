"""Scoring accounts in the warehouse: points per factor, fit score, tier, anti-ICP, route.

Every scorer produces the same long table ``(account_id, factor, points)``; the scorecard
turns it into the published columns. The hand-set points model (:func:`rule_factor_points`)
is the first scorer; the data-derived one plugs in by writing the same table.

Work stays in DuckDB: the config becomes one SQL statement per step, with every value from the
config bound as a parameter and every attribute name checked against the feature columns.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from dagster_project.scoring.config import Condition, ScoringConfig, ScoringConfigError
from dagster_project.sql import quote_identifier, table_exists

__all__ = [
    "BASE_FACTOR",
    "SITUATIONAL_BANDS",
    "FACTOR_TABLE",
    "RULE_POINTS_TABLE",
    "configured_anti_icp_sql",
    "FEATURE_TABLE",
    "SCORED_TABLE",
    "build_features",
    "publish_scores",
    "rule_factor_points",
    "score_accounts",
]

FEATURE_TABLE = "scoring_features"
FACTOR_TABLE = "factor_points"
RULE_POINTS_TABLE = "rule_points"
SCORED_TABLE = "scored_accounts"
CURRENT_TABLE = "marts.account_fit_scores"
HISTORY_TABLE = "marts.account_fit_score_history"
#: Factor names the scorecard adds so that the listed points always add up to the score.
BASE_FACTOR = "base_points"
BOUNDS_FACTOR = "score_bounds_0_100"
FACTOR_LIST_TYPE = "STRUCT(factor VARCHAR, points DECIMAL(7, 2))[]"
#: Situational signal bands built into the features: band -> (source column, CASE branches).
SITUATIONAL_BANDS = {
    "hiring_band": (
        "open_roles",
        "WHEN {column} = 0 THEN '0' WHEN {column} < 5 THEN '1-4' WHEN {column} >= 5 THEN '5+'",
    ),
    "funding_recency_band": (
        "days_since_last_funding",
        "WHEN {column} <= 180 THEN '0-180d' WHEN {column} <= 365 THEN '181-365d' "
        "WHEN {column} > 365 THEN 'over_365d'",
    ),
    "engagement_30d_band": (
        "activities_last_30_days",
        "WHEN coalesce({column}, 0) = 0 THEN '0' WHEN {column} < 3 THEN '1-2' ELSE '3+'",
    ),
}


def build_features(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, str]:
    """Join firmographics and metrics into one row per account; returns column -> type.

    Firmographics are those known on ``as_of`` (``dim_accounts_history``); a column in both
    tables (``open_roles``) is taken from there.
    """
    account_columns = _table_columns(con, "dim_accounts_history")
    metric_columns = [
        c for c in _table_columns(con, "fct_account_metrics") if c not in account_columns
    ]
    metric_select = "".join(f", metrics.{quote_identifier(c)}" for c in metric_columns)
    # Situational signals as bands, so the profile (and, if configured, the learned
    # scorecard) can bin them; a band whose source column is missing is left out.
    table_of = {
        **{c: "metrics" for c in metric_columns},
        **{c: "accounts" for c in account_columns},
    }
    bands = [
        f"CASE {sql.format(column=f'{table_of[source]}.{quote_identifier(source)}')} END "
        f"AS {quote_identifier(band)}"
        for band, (source, sql) in SITUATIONAL_BANDS.items()
        if source in table_of
    ]
    metric_select += "".join(f", {band}" for band in bands)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {FEATURE_TABLE} AS
        SELECT accounts.*{metric_select}
        FROM marts.dim_accounts_history AS accounts
        LEFT JOIN marts.fct_account_metrics AS metrics
            ON metrics.account_id = accounts.account_id AND metrics.as_of_date = $as_of
        WHERE accounts.as_of_date = $as_of
        """,
        {"as_of": as_of},
    )
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {FEATURE_TABLE}").fetchall()}


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = $table ORDER BY ordinal_position",
        {"table": table},
    ).fetchall()
    return [name for (name,) in rows]


class _Params:
    """Collects bound parameters under generated names."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def bind(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def _condition_sql(condition: Condition, column_types: dict[str, str], params: _Params) -> str:
    """SQL that is true when the condition holds (NULL attribute: false)."""
    if condition.attribute not in column_types:
        raise ScoringConfigError(
            f"attribute {condition.attribute!r} is not a scoring feature; available: "
            + ", ".join(sorted(column_types))
        )
    column = quote_identifier(condition.attribute)
    is_text = column_types[condition.attribute] == "VARCHAR"
    op, operand = condition.operator, condition.operand
    if op == "is_missing":
        return f"{column} IS NULL"
    if op == "contains_any":
        items = params.bind([str(v).strip().lower() for v in operand])
        predicate = (
            f"len(list_intersect(list_transform(string_split(lower({column}), ';'), "
            f"lambda item: trim(item)), {items})) > 0"
        )
    elif op in ("eq", "not_eq", "in", "not_in"):
        values = operand if isinstance(operand, list) else [operand]
        if is_text:
            bound = params.bind([str(v).strip().lower() for v in values])
            predicate = f"list_contains({bound}, lower(trim({column})))"
        else:
            bound = params.bind([float(v) for v in values])
            predicate = f"list_contains({bound}, CAST({column} AS DOUBLE))"
        if op in ("not_eq", "not_in"):
            predicate = f"NOT {predicate}"
    elif op == "between":
        low, high = params.bind(float(operand[0])), params.bind(float(operand[1]))
        predicate = f"{column} BETWEEN {low} AND {high}"
    else:
        if is_text:
            raise ScoringConfigError(
                f"{op} needs a numeric attribute; {condition.attribute} is text"
            )
        symbol = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}[op]
        predicate = f"{column} {symbol} {params.bind(float(operand))}"
    return f"coalesce({predicate}, false)"


def rule_factor_points(
    con: duckdb.DuckDBPyConnection,
    config: ScoringConfig,
    column_types: dict[str, str],
    table: str = RULE_POINTS_TABLE,
) -> None:
    """Write ``table`` (account_id, factor, points): the config's points per criterion and
    its base points, for every account."""
    params = _Params()
    columns = []
    for criterion in config.criteria:
        condition = _condition_sql(criterion.condition, column_types, params)
        points = params.bind(criterion.points)
        columns.append(
            f"CAST(CASE WHEN {condition} THEN {points} ELSE 0 END AS DECIMAL(7, 2)) "
            f"AS {quote_identifier(criterion.name)}"
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        UNPIVOT (SELECT account_id, {", ".join(columns)} FROM {FEATURE_TABLE})
        ON COLUMNS(* EXCLUDE (account_id)) INTO NAME factor VALUE points
        """,
        params.values,
    )
    con.execute(
        f"INSERT INTO {table} SELECT account_id, '{BASE_FACTOR}', "
        f"CAST($base AS DECIMAL(7, 2)) FROM {FEATURE_TABLE}",
        {"base": config.base_points},
    )


def configured_anti_icp_sql(
    config: ScoringConfig, column_types: dict[str, str]
) -> tuple[str, dict[str, object]]:
    """(account_id, reason_code) for the config's knock-out rules, with its parameters."""
    params = _Params()
    selects = [
        f"SELECT account_id, CAST({params.bind(rule.code)} AS VARCHAR) AS reason_code "
        f"FROM {FEATURE_TABLE} WHERE {_condition_sql(rule.condition, column_types, params)}"
        for rule in config.anti_icp_rules
    ]
    if not selects:
        return (
            "SELECT CAST(NULL AS VARCHAR) AS account_id, CAST(NULL AS VARCHAR) AS reason_code "
            "WHERE false",
            {},
        )
    return " UNION ALL ".join(selects), params.values


def score_accounts(
    con: duckdb.DuckDBPyConnection,
    config: ScoringConfig,
    as_of: date,
    scored_at: datetime,
    score_version: str,
) -> None:
    """Write ``scored_accounts``: one row per account with every published column.

    Reads ``factor_points`` (every factor's points, the base included as ``base_points``),
    ``anti_icp_flags (account_id, anti_icp_reasons)`` and ``account_segments (account_id,
    icp_segment)``. ``factor_points`` of the output (every factor, largest first) always adds
    up exactly to ``fit_score``: the cut at 0 or 100 is listed as a factor of its own.
    """
    params = _Params()
    high, medium = params.bind(config.high_threshold), params.bind(config.medium_threshold)
    routes = {key: params.bind(value) for key, value in config.routes.items()}
    top_count = params.bind(config.top_factor_count)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {SCORED_TABLE} AS
        WITH totals AS (
            SELECT
                account_id,
                CAST(sum(points) AS DECIMAL(7, 2)) AS unbounded_score,
                -- Sorting each account's short list beats an ordered aggregate by far: the
                -- sort key leads the struct, list_sort orders by it, then it is dropped.
                list_transform(
                    list_sort(list({{
                        'sort_key': -abs(points), 'factor': factor, 'points': points
                    }}) FILTER (WHERE points <> 0 AND factor <> '{BASE_FACTOR}')),
                    lambda item: {{'factor': item.factor, 'points': item.points}}
                ) AS criterion_points,
                list({{'factor': factor, 'points': points}})
                    FILTER (WHERE points <> 0 AND factor = '{BASE_FACTOR}') AS base_points
            FROM {FACTOR_TABLE}
            GROUP BY account_id
        ),
        bounded AS (
            SELECT
                *,
                CAST(greatest(0, least(100, unbounded_score)) AS DECIMAL(7, 2)) AS fit_score
            FROM totals
        ),
        final AS (
            SELECT
                features.account_id,
                CAST($as_of AS DATE) AS as_of_date,
                coalesce(bounded.fit_score, 0) AS fit_score,
                CASE
                    WHEN coalesce(bounded.fit_score, 0) >= {high} THEN 'high'
                    WHEN coalesce(bounded.fit_score, 0) >= {medium} THEN 'medium'
                    ELSE 'low'
                END AS fit_tier,
                coalesce(flags.anti_icp_reasons, CAST([] AS VARCHAR[])) AS anti_icp_reasons,
                list_slice(coalesce(bounded.criterion_points, []), 1, {top_count}) AS top_factors,
                segments.icp_segment,
                coalesce(bounded.criterion_points, [])
                    || coalesce(bounded.base_points, [])
                    || CASE WHEN bounded.fit_score <> bounded.unbounded_score
                        THEN [{{'factor': '{BOUNDS_FACTOR}',
                               'points': bounded.fit_score - bounded.unbounded_score}}]
                        ELSE [] END AS factor_points
            FROM {FEATURE_TABLE} AS features
            LEFT JOIN bounded ON bounded.account_id = features.account_id
            LEFT JOIN anti_icp_flags AS flags ON flags.account_id = features.account_id
            LEFT JOIN account_segments AS segments ON segments.account_id = features.account_id
        )
        SELECT
            account_id,
            as_of_date,
            CAST(fit_score AS DECIMAL(7, 2)) AS fit_score,
            fit_tier,
            len(anti_icp_reasons) > 0 AS is_anti_icp,
            anti_icp_reasons,
            CAST(top_factors AS {FACTOR_LIST_TYPE}) AS top_factors,
            icp_segment,
            CASE
                WHEN len(anti_icp_reasons) > 0 THEN {routes["anti_icp"]}
                WHEN fit_tier = 'high' THEN {routes["high"]}
                WHEN fit_tier = 'medium' THEN {routes["medium"]}
                ELSE {routes["low"]}
            END AS route,
            CAST($score_version AS VARCHAR) AS score_version,
            CAST($scored_at AS TIMESTAMP) AS scored_at,
            CAST(factor_points AS {FACTOR_LIST_TYPE}) AS factor_points
        FROM final
        ORDER BY account_id
        """,
        {
            **params.values,
            "as_of": as_of,
            "score_version": score_version,
            "scored_at": scored_at,
        },
    )


def publish_scores(
    con: duckdb.DuckDBPyConnection, as_of: date, in_transaction: bool = False
) -> bool:
    """Publish ``scored_accounts`` in one transaction; returns whether the current table moved.

    History keeps one row per account per as-of date: the rows of ``as_of`` are replaced,
    no other date is touched. The current table only moves forward: a backfill of an older
    date writes history alone.
    """
    if not in_transaction:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} AS SELECT * FROM {SCORED_TABLE} LIMIT 0"
        )
        con.execute(f"DELETE FROM {HISTORY_TABLE} WHERE as_of_date = $as_of", {"as_of": as_of})
        con.execute(f"INSERT INTO {HISTORY_TABLE} BY NAME SELECT * FROM {SCORED_TABLE}")
        newest = (
            con.execute(f"SELECT max(as_of_date) FROM {CURRENT_TABLE}").fetchone()[0]
            if table_exists(con, "marts", "account_fit_scores")
            else None
        )
        moves_current = newest is None or as_of >= newest
        if moves_current:
            con.execute(f"CREATE OR REPLACE TABLE {CURRENT_TABLE} AS SELECT * FROM {SCORED_TABLE}")
        if not in_transaction:
            con.execute("COMMIT")
    except Exception:
        if not in_transaction:
            con.execute("ROLLBACK")
        raise
    return moves_current
