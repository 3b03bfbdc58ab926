"""Scoring accounts in the warehouse: points per factor, fit score, tier, anti-ICP, route.

Every scorer writes the same two tables: a small catalogue of its factors,
``<table>_catalogue (factor_code, factor, points)`` with codes 1..n, and ``<table>
(account_id, factor_codes, base_points)``, one row per account with the codes of the factors
it earns and its base points. The hand-set points model (:func:`rule_factor_points`) and the
learned scorecards (:func:`learned_factor_points`) are the scorers;
:func:`combine_factor_points` weighs and merges them into ``factor_points``, and
:func:`score_accounts` turns that into the published columns.

Why codes into a catalogue rather than a long ``(account_id, factor, points)`` table: a
million accounts with twenty factors each are twenty million rows to write and to aggregate
back into one list per account, which took most of the scoring time. A short integer list per
account is built in one pass over the accounts, sorted cheaply (the catalogue ranks every
factor once) and turned into ``(factor, points)`` items by position.

Work stays in DuckDB: the config becomes one SQL statement per step, with every value from the
config bound as a parameter and every attribute name checked against the feature columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import duckdb

from dagster_project.scoring.config import Condition, ScoringConfig, ScoringConfigError
from dagster_project.scoring.learned import BIN_TABLE, bin_columns
from dagster_project.sql import add_missing_columns, quote_identifier, table_exists

__all__ = [
    "BASE_FACTOR",
    "SITUATIONAL_BANDS",
    "FACTOR_TABLE",
    "RULE_POINTS_TABLE",
    "catalogue_table",
    "combine_factor_points",
    "configured_anti_icp_sql",
    "FEATURE_TABLE",
    "SCORED_TABLE",
    "SqlParams",
    "build_features",
    "learned_factor_points",
    "publish_scores",
    "rule_factor_points",
    "score_accounts",
    "scorecard_total_sql",
]

FEATURE_TABLE = "scoring_features"
#: (account_id, factor_codes, base_points) of every scorer combined; see catalogue_table.
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


def build_features(
    con: duckdb.DuckDBPyConnection, as_of: date, table: str = FEATURE_TABLE
) -> dict[str, str]:
    """Join firmographics and metrics into one row per account of ``as_of`` in the temp table
    ``table``; returns column -> type.

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
        CREATE OR REPLACE TEMP TABLE {quote_identifier(table)} AS
        SELECT accounts.*{metric_select}
        FROM marts.dim_accounts_history AS accounts
        LEFT JOIN marts.fct_account_metrics AS metrics
            ON metrics.account_id = accounts.account_id AND metrics.as_of_date = $as_of
        WHERE accounts.as_of_date = $as_of
        """,
        {"as_of": as_of},
    )
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {quote_identifier(table)}").fetchall()}


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = $table ORDER BY ordinal_position",
        {"table": table},
    ).fetchall()
    return [name for (name,) in rows]


class SqlParams:
    """Collects bound parameters under generated names."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def bind(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def scorecard_total_sql(
    base_points: float, card: Mapping[str, tuple[list[str], list[float]]], params: SqlParams
) -> str:
    """SQL for the score of a row of ``account_bins`` on one scorecard: ``base_points`` plus,
    per bin column of ``card`` (column -> its bins and their points), the points of the row's
    bin, 0 for a bin the card lacks. Exact in DECIMAL(7, 2), as the card's points are, so equal
    bins give equal totals and ties stay ties."""
    return f"CAST({params.bind(base_points)} AS DECIMAL(7, 2))" + "".join(
        f" + coalesce(CAST({params.bind(points)} AS DECIMAL(7, 2)[])"
        f"[list_position({params.bind(bins)}, {BIN_TABLE}.{quote_identifier(column)})], 0)"
        for column, (bins, points) in card.items()
    )


def _condition_sql(condition: Condition, column_types: dict[str, str], params: SqlParams) -> str:
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


def catalogue_table(table: str) -> str:
    """The catalogue of a factor table: ``(factor_code, factor, points)``, codes 1..n."""
    return f"{table}_catalogue"


def _fill_catalogue(
    con: duckdb.DuckDBPyConnection, table: str, factors: list[tuple[str, float]]
) -> None:
    """(Re)create ``table``'s catalogue with ``(factor, points)``, coded 1..n in that order."""
    catalogue = catalogue_table(table)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {catalogue} "
        "(factor_code INTEGER, factor VARCHAR, points DECIMAL(7, 2))"
    )
    if factors:
        # Points as DOUBLE, cast like a bound number is: exact for any two-decimal value.
        con.execute(
            f"INSERT INTO {catalogue} SELECT unnest(range(1, $count + 1)), unnest($factors), "
            "CAST(unnest($points) AS DECIMAL(7, 2))",
            {
                "count": len(factors),
                "factors": [factor for factor, _ in factors],
                "points": [float(points) for _, points in factors],
            },
        )


def rule_factor_points(
    con: duckdb.DuckDBPyConnection,
    config: ScoringConfig,
    column_types: dict[str, str],
    table: str = RULE_POINTS_TABLE,
) -> None:
    """Write ``table`` (account_id, factor_codes, base_points) and its catalogue: one factor
    per criterion of the config, earned when its condition holds, and the config's base
    points, for every account."""
    params = SqlParams()
    codes = [
        f"CASE WHEN {_condition_sql(criterion.condition, column_types, params)} THEN {code} END"
        for code, criterion in enumerate(config.criteria, start=1)
    ]
    _fill_catalogue(
        con,
        table,
        [(criterion.name, criterion.points) for criterion in config.criteria],
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT
            account_id,
            list_filter(CAST([{", ".join(codes)}] AS BIGINT[]), lambda code: code IS NOT NULL)
                AS factor_codes,
            CAST({params.bind(config.base_points)} AS DECIMAL(7, 2)) AS base_points
        FROM {FEATURE_TABLE}
        """,
        params.values,
    )


def learned_factor_points(
    con: duckdb.DuckDBPyConnection, scorecard_table: str, segments: list[str], table: str
) -> None:
    """Write ``table`` (account_id, icp_segment, factor_codes, base_points) and its catalogue
    from the learned scorecards, and ``account_segments (account_id, icp_segment)``.

    ``scorecard_table (icp_segment, attribute, bin, points, base_points)`` holds one scorecard
    per ICP segment; each account (a row of ``account_bins``) is scored against every one and
    kept in the segment it scores highest in (the first of ``segments`` on a tie). Its factors
    are its bins, ``attribute=bin``, with that segment's points.
    """
    card = con.execute(
        f"SELECT icp_segment, attribute, bin, points, base_points FROM {scorecard_table} "
        "ORDER BY icp_segment, attribute, bin"
    ).fetchall()
    _fill_catalogue(
        con, table, [(f"{attribute}={bin_}", points) for _, attribute, bin_, points, _ in card]
    )
    # Per segment and attribute: its bins in code order and the code before the first, so an
    # account's code is that offset plus the position of its bin (NULL: not in the card).
    bins: dict[tuple[str, str], list[str]] = {}
    points: dict[tuple[str, str], list[float]] = {}
    offsets: dict[tuple[str, str], int] = {}
    base: dict[str, float] = {}
    for code, (segment, attribute, bin_, bin_points, base_points) in enumerate(card, start=1):
        offsets.setdefault((segment, attribute), code - 1)
        bins.setdefault((segment, attribute), []).append(bin_)
        points.setdefault((segment, attribute), []).append(float(bin_points))
        base[segment] = float(base_points)
    if not any(segment in base for segment in segments):
        raise ValueError(f"{scorecard_table} holds no scorecard of the segments {segments}")
    segments = [segment for segment in segments if segment in base]
    params = SqlParams()
    position = {
        (segment, column): f"list_position({params.bind(bins[(segment, column)])}, "
        f"{BIN_TABLE}.{quote_identifier(column)})"
        for column in bin_columns(con)
        for segment in segments
        if (segment, column) in bins
    }

    def codes(segment: str) -> str:
        items = [f"{offsets[key]} + {sql}" for key, sql in position.items() if key[0] == segment]
        return f"list_filter(CAST([{', '.join(items)}] AS BIGINT[]), lambda code: code IS NOT NULL)"

    def total(segment: str) -> str:
        card = {
            column: (bins[(s, column)], points[(s, column)])
            for s, column in position
            if s == segment
        }
        return scorecard_total_sql(base[segment], card, params)

    if len(segments) == 1:
        totals, chosen = "", params.bind(segments[0])
    else:
        totals = "".join(f", {total(s)} AS segment_total_{i}" for i, s in enumerate(segments))
        # The first segment whose total is at least every later one's: the highest, ties to
        # the first listed.
        branches = [
            "WHEN "
            + " AND ".join(
                f"segment_total_{i} >= segment_total_{j}" for j in range(i + 1, len(segments))
            )
            + f" THEN {params.bind(segment)}"
            for i, segment in enumerate(segments[:-1])
        ]
        chosen = f"CASE {' '.join(branches)} ELSE {params.bind(segments[-1])} END"
    code_cases = " ".join(f"WHEN {params.bind(s)} THEN {codes(s)}" for s in segments)
    base_cases = " ".join(
        f"WHEN {params.bind(s)} THEN CAST({params.bind(base[s])} AS DECIMAL(7, 2))"
        for s in segments
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH totals AS (SELECT *{totals} FROM {BIN_TABLE}),
        chosen AS (SELECT *, CAST({chosen} AS VARCHAR) AS icp_segment FROM totals)
        SELECT
            account_id,
            icp_segment,
            CASE icp_segment {code_cases} END AS factor_codes,
            CASE icp_segment {base_cases} END AS base_points
        FROM chosen AS {BIN_TABLE}
        """,
        params.values,
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE account_segments AS "
        f"SELECT account_id, icp_segment FROM {table}"
    )


def combine_factor_points(
    con: duckdb.DuckDBPyConnection, sources: list[tuple[str, float, str]]
) -> None:
    """Write ``factor_points`` and its catalogue from the scorers' factor tables, given as
    ``(table, weight, prefix)``: each factor's points are weighted (to 0.01), its name
    prefixed, its code moved past the previous sources' codes; base points are weighted and
    summed into one."""
    catalogue, codes, bases = [], [], []
    prefixes: dict[str, str] = {}
    offset = 0
    for i, (table, weight, prefix) in enumerate(sources):
        prefixes[f"prefix{i}"] = prefix
        weighted = f"CAST(round({{}} * {float(weight)!r}, 2) AS DECIMAL(7, 2))"
        catalogue.append(
            f"SELECT factor_code + {offset} AS factor_code, "
            f"CAST($prefix{i} AS VARCHAR) || factor AS factor, "
            f"{weighted.format('points')} AS points FROM {catalogue_table(table)}"
        )
        codes.append(
            f"coalesce(source{i}.factor_codes, [])"
            if offset == 0
            else f"list_transform(coalesce(source{i}.factor_codes, []), "
            f"lambda code: code + {offset})"
        )
        bases.append(f"coalesce({weighted.format(f'source{i}.base_points')}, 0)")
        offset += con.execute(f"SELECT count(*) FROM {catalogue_table(table)}").fetchone()[0]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {catalogue_table(FACTOR_TABLE)} AS "
        + " UNION ALL ".join(catalogue),
        prefixes,
    )
    joins = " ".join(
        f"FULL OUTER JOIN {table} AS source{i} USING (account_id)"
        for i, (table, _, _) in enumerate(sources)
        if i > 0
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {FACTOR_TABLE} AS
        SELECT
            account_id,
            {" || ".join(codes)} AS factor_codes,
            CAST({" + ".join(bases)} AS DECIMAL(7, 2)) AS base_points
        FROM {sources[0][0]} AS source0 {joins}
        """
    )


def configured_anti_icp_sql(
    config: ScoringConfig, column_types: dict[str, str]
) -> tuple[str, dict[str, object]]:
    """(account_id, reason_code) for the config's knock-out rules, with its parameters."""
    params = SqlParams()
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
    fit_confidence: str = "not_validated",
    fit_probability_line: tuple[float, float] | None = None,
) -> None:
    """Write ``scored_accounts``: one row per account with every published column.

    ``fit_probability`` is ``sigmoid(intercept + slope * score)`` of ``fit_probability_line``
    on the score before the 0-100 cut (NULL without a line); ``fit_confidence`` says what
    backs the score (see ``pipeline.ScoringRun.fit_confidence``).

    Reads ``factor_points (account_id, factor_codes, base_points)`` and its catalogue,
    ``anti_icp_flags (account_id, anti_icp_reasons)`` and ``account_segments (account_id,
    icp_segment)``. ``factor_points`` of the output (every factor with points, largest first,
    ties by name, then ``base_points``) always adds up exactly to ``fit_score``: the cut at 0
    or 100 is listed as a factor of its own.

    Every ``(factor, points)`` item that can be listed has a rank: the catalogue's factors in
    listed order, then each distinct base. An account's list is its ranks, sorted, read back
    from one list of items by position: integers are sorted and joined, the items are built
    once, in the last step.
    """
    catalogue = catalogue_table(FACTOR_TABLE)
    (has_zero_points,) = con.execute(
        f"SELECT count(*) > 0 FROM {catalogue} WHERE points = 0"
    ).fetchone()
    # Zero points are never listed: their codes have no rank (NULL), dropped before sorting.
    earned = "list_select(lookup.rank_of_code, factors.factor_codes)"
    if has_zero_points:
        earned = f"list_filter({earned}, lambda factor_rank: factor_rank IS NOT NULL)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE factor_ranks AS
        WITH ranked AS (
            SELECT factor_code, factor, points,
                   CASE WHEN points <> 0 THEN row_number() OVER (
                       PARTITION BY points <> 0 ORDER BY abs(points) DESC, factor
                   ) END AS factor_rank
            FROM {catalogue}
        ),
        bases AS (
            SELECT base_points,
                   (SELECT count(factor_rank) FROM ranked)
                       + row_number() OVER (ORDER BY base_points) AS base_rank
            FROM (SELECT DISTINCT base_points FROM {FACTOR_TABLE} WHERE base_points <> 0)
        )
        SELECT
            coalesce((SELECT list(factor_rank ORDER BY factor_code) FROM ranked), [])
                AS rank_of_code,
            coalesce((SELECT list(points ORDER BY factor_code) FROM ranked), [])
                AS points_of_code,
            coalesce((SELECT list(base_points ORDER BY base_rank) FROM bases), []) AS bases,
            (SELECT count(factor_rank) FROM ranked) AS ranked_factors,
            coalesce(
                (SELECT list({{'factor': factor, 'points': points}} ORDER BY factor_rank)
                 FROM ranked WHERE factor_rank IS NOT NULL),
                []
            ) || coalesce(
                (SELECT list({{'factor': '{BASE_FACTOR}', 'points': base_points}}
                             ORDER BY base_rank)
                 FROM bases),
                []
            ) AS factor_of_rank
        """
    )
    # The narrow part, integers only, joined and sorted by account: sorting rows that carry
    # the (factor, points) items would cost several times more.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE account_ranks AS
        WITH totals AS (
            SELECT
                factors.account_id,
                CAST(
                    coalesce(list_sum(list_select(lookup.points_of_code, factors.factor_codes)), 0)
                    + coalesce(factors.base_points, 0) AS DECIMAL(7, 2)
                ) AS unbounded_score,
                list_sort({earned}) AS criterion_ranks,
                lookup.ranked_factors + list_position(lookup.bases, factors.base_points)
                    AS base_rank
            FROM {FACTOR_TABLE} AS factors
            CROSS JOIN factor_ranks AS lookup
        ),
        bounded AS (
            SELECT
                *,
                CAST(greatest(0, least(100, unbounded_score)) AS DECIMAL(7, 2)) AS fit_score
            FROM totals
        )
        SELECT
            features.account_id,
            coalesce(bounded.fit_score, 0) AS fit_score,
            CAST(bounded.fit_score - bounded.unbounded_score AS DECIMAL(7, 2)) AS bounds_points,
            coalesce(bounded.criterion_ranks, []) AS criterion_ranks,
            bounded.base_rank,
            coalesce(flags.anti_icp_reasons, CAST([] AS VARCHAR[])) AS anti_icp_reasons,
            segments.icp_segment
        FROM {FEATURE_TABLE} AS features
        LEFT JOIN bounded ON bounded.account_id = features.account_id
        LEFT JOIN anti_icp_flags AS flags ON flags.account_id = features.account_id
        LEFT JOIN account_segments AS segments ON segments.account_id = features.account_id
        ORDER BY features.account_id
        """
    )
    # The items by rank are a constant of the last statement: it scans one table and joins
    # nothing, so the rows keep their order.
    con.execute(f"SET VARIABLE {_ITEMS_VARIABLE} = (SELECT factor_of_rank FROM factor_ranks)")
    items = f"getvariable('{_ITEMS_VARIABLE}')"
    params = SqlParams()
    high, medium = params.bind(config.high_threshold), params.bind(config.medium_threshold)
    routes = {key: params.bind(value) for key, value in config.routes.items()}
    top_count = params.bind(config.top_factor_count)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {SCORED_TABLE} AS
        WITH listed AS (
            SELECT
                *,
                CASE
                    WHEN fit_score >= {high} THEN 'high'
                    WHEN fit_score >= {medium} THEN 'medium'
                    ELSE 'low'
                END AS fit_tier,
                list_select({items}, list_slice(criterion_ranks, 1, {top_count})) AS top_factors,
                list_select(
                    {items},
                    CASE WHEN base_rank IS NULL THEN criterion_ranks
                         ELSE list_append(criterion_ranks, base_rank) END
                ) AS listed_factors
            FROM account_ranks
        )
        SELECT
            account_id,
            CAST($as_of AS DATE) AS as_of_date,
            CAST(fit_score AS DECIMAL(7, 2)) AS fit_score,
            CAST(1 / (1 + exp(-($probability_intercept + $probability_slope
                * CAST(fit_score - coalesce(bounds_points, 0) AS DOUBLE)))) AS DOUBLE)
                AS fit_probability,
            CAST($fit_confidence AS VARCHAR) AS fit_confidence,
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
            -- list_concat skips a NULL list: the cut is appended where there is one.
            CAST(
                list_concat(
                    listed_factors,
                    CASE WHEN bounds_points <> 0
                        THEN [{{'factor': '{BOUNDS_FACTOR}', 'points': bounds_points}}] END
                ) AS {FACTOR_LIST_TYPE}
            ) AS factor_points
        FROM listed
        """,
        {
            **params.values,
            "as_of": as_of,
            "score_version": score_version,
            "scored_at": scored_at,
            "fit_confidence": fit_confidence,
            "probability_intercept": None
            if fit_probability_line is None
            else fit_probability_line[0],
            "probability_slope": None if fit_probability_line is None else fit_probability_line[1],
        },
    )
    con.execute(f"RESET VARIABLE {_ITEMS_VARIABLE}")


_ITEMS_VARIABLE = "icp_scoring_factor_items"


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
        add_missing_columns(con, HISTORY_TABLE, SCORED_TABLE)
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
