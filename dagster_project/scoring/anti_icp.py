"""Anti-ICP reasons: configured knock-outs, learned segments that churn or cost, situations.

Three sources, one table ``anti_icp_flags (account_id, anti_icp_reasons)``:

* **knock-out rules** from the config (``too_small``, ``agency``, ``on_prem_only``, ...);
* **learned** attribute values and pairs of values whose customers churn within 90 days, or
  land in the top decile of support burden per dollar, at ``min_lift`` times the base rate
  with at least ``min_customers`` customers, and more likely than not: the lower end of the
  Wilson interval of the rate, at a family-wise 95% over every group tried (Bonferroni), is
  at least ``min_rate`` (``learned_fast_churn:deployment=on_prem``), so a group that did
  badly by chance flags nobody;
* **situational** facts about a current customer: repeated payment failures, heavy support
  per dollar, contraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import duckdb

from dagster_project.scoring.learned import (
    BIN_TABLE,
    CUSTOMER_BIN_TABLE,
    LABEL_TABLE,
    MISSING_BIN,
    OTHER_BIN,
    long_bins_sql,
)
from dagster_project.sql import quote_identifier, wilson_bound_sql

__all__ = [
    "AntiIcpSettings",
    "LearnedAntiIcpRule",
    "learn_anti_icp_rules",
    "learned_reasons_sql",
    "situational_reasons_sql",
]

LEARNED_RULE_TABLE = "learned_anti_icp_rules"
LEARNED_REASON_TABLE = "learned_anti_icp_reasons"


@dataclass(frozen=True)
class AntiIcpSettings:
    """The ``learned.anti_icp`` section of the scoring config."""

    min_customers: int = 15
    min_lift: float = 2.0
    min_rate: float = 0.5
    max_rules: int = 20
    payment_failure_rate_at_least: float = 0.25
    support_burden_top_share: float = 0.1
    contraction_grr_below: float = 0.8


@dataclass(frozen=True)
class LearnedAntiIcpRule:
    reason_code: str
    conditions: tuple[tuple[str, str], ...]
    customers: int
    rate: float
    lift: float


def learn_anti_icp_rules(
    con: duckdb.DuckDBPyConnection, settings: AntiIcpSettings, as_of
) -> list[LearnedAntiIcpRule]:
    """Find attribute values (and pairs) whose customers churn fast or cost far more to support.

    A pair is kept only when it beats both of its single values' lifts, so it says something the
    singles do not. Writes ``learned_anti_icp_rules (reason_code, attribute, bin,
    condition_count)`` and the accounts each rule flags, ``learned_anti_icp_reasons
    (account_id, reason_code)`` (read through :func:`learned_reasons_sql`).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE anti_icp_candidates AS
        WITH outcomes AS MATERIALIZED (
            SELECT
                labels.account_id,
                CAST(coalesce(metrics.is_churned_within_90_days, false) AS INTEGER) AS fast_churn,
                CAST(list_contains(labels.worst_reasons, 'top_decile_support_burden') AS INTEGER)
                    AS heavy_support
            FROM {LABEL_TABLE} AS labels
            INNER JOIN marts.fct_account_metrics AS metrics
                ON metrics.account_id = labels.account_id AND metrics.as_of_date = $as_of
        ),
        base AS (
            SELECT avg(fast_churn) AS fast_churn_rate, avg(heavy_support) AS heavy_support_rate
            FROM outcomes
        ),
        traits AS MATERIALIZED (
            SELECT account_id, attribute, bin
            FROM ({long_bins_sql(CUSTOMER_BIN_TABLE, "SELECT account_id FROM outcomes")})
            WHERE bin NOT IN ('{MISSING_BIN}', '{OTHER_BIN}', 'no')
        ),
        -- Traits and customers as small integers: the pairs below are millions of rows at
        -- scale, grouped far faster by two integers than by a list of strings. The CTEs read
        -- more than once are MATERIALIZED, so they are computed once.
        trait_codes AS (
            SELECT attribute, bin, attribute || '=' || bin AS condition,
                   CAST(row_number() OVER (ORDER BY attribute, bin) AS INTEGER) AS trait
            FROM (SELECT DISTINCT attribute, bin FROM traits)
        ),
        customers AS (
            SELECT *, row_number() OVER () AS customer FROM outcomes
        ),
        coded AS MATERIALIZED (
            SELECT customers.customer, trait_codes.trait, customers.fast_churn,
                   customers.heavy_support
            FROM traits
            INNER JOIN trait_codes USING (attribute, bin)
            INNER JOIN customers USING (account_id)
        ),
        singles AS (
            SELECT trait AS first_trait, NULL AS second_trait, count(*) AS customers,
                   avg(fast_churn) AS fast_churn_rate, avg(heavy_support) AS heavy_support_rate
            FROM coded
            GROUP BY trait
            HAVING count(*) >= $min_customers
        ),
        pairs AS (
            -- One bin per attribute and account, and codes ordered by attribute: a higher code
            -- of the same customer is a later attribute.
            SELECT first.trait, second.trait, count(*),
                   avg(first.fast_churn), avg(first.heavy_support)
            FROM coded AS first
            INNER JOIN coded AS second
                ON second.customer = first.customer AND second.trait > first.trait
            GROUP BY first.trait, second.trait
            HAVING count(*) >= $min_customers
        ),
        grouped AS (
            SELECT
                list_filter([first_code.condition, second_code.condition],
                            lambda condition: condition IS NOT NULL) AS conditions,
                groups.customers, groups.fast_churn_rate, groups.heavy_support_rate
            FROM (SELECT * FROM singles UNION ALL SELECT * FROM pairs) AS groups
            INNER JOIN trait_codes AS first_code ON first_code.trait = groups.first_trait
            LEFT JOIN trait_codes AS second_code ON second_code.trait = groups.second_trait
        ),
        rates AS (
            SELECT conditions, customers, 'learned_fast_churn' AS kind,
                   grouped.fast_churn_rate AS rate,
                   grouped.fast_churn_rate / nullif(base.fast_churn_rate, 0) AS lift
            FROM grouped CROSS JOIN base
            UNION ALL
            SELECT conditions, customers, 'learned_heavy_support',
                   grouped.heavy_support_rate,
                   grouped.heavy_support_rate / nullif(base.heavy_support_rate, 0)
            FROM grouped CROSS JOIN base
        )
        SELECT * FROM rates
        """,
        {"as_of": as_of, "min_customers": settings.min_customers},
    )
    tried = con.execute("SELECT count(*) FROM anti_icp_candidates").fetchone()[0]
    # Family-wise 5% over every group tried: chance winners among hundreds of pairs fail it.
    z = NormalDist().inv_cdf(1 - 0.05 / (2 * max(tried, 1)))
    rows = con.execute(
        f"""
        WITH rates AS (SELECT * FROM anti_icp_candidates),
        measured AS (
            SELECT *,
                   {wilson_bound_sql("rate", "customers", "$z", "lower")} AS rate_lower_bound
            FROM rates
        ),
        single_lift AS (
            SELECT conditions[1] AS condition, kind, lift FROM measured WHERE len(conditions) = 1
        )
        SELECT measured.kind, measured.conditions, measured.customers, measured.rate, measured.lift
        FROM measured
        LEFT JOIN single_lift AS first_single
            ON first_single.kind = measured.kind
           AND first_single.condition = measured.conditions[1]
        LEFT JOIN single_lift AS second_single
            ON second_single.kind = measured.kind
           AND second_single.condition = measured.conditions[2]
        WHERE measured.lift >= $min_lift
          AND measured.rate_lower_bound >= $min_rate
          AND (len(measured.conditions) = 1
               OR measured.lift > greatest(coalesce(first_single.lift, 0),
                                           coalesce(second_single.lift, 0)))
        ORDER BY measured.lift * sqrt(measured.customers) DESC, measured.conditions
        LIMIT $max_rules
        """,
        {
            "z": z,
            "min_lift": settings.min_lift,
            "min_rate": settings.min_rate,
            "max_rules": settings.max_rules,
        },
    ).fetchall()
    rules = []
    for kind, conditions, customers, rate, lift in rows:
        parsed = tuple(tuple(condition.split("=", 1)) for condition in conditions)
        rules.append(
            LearnedAntiIcpRule(
                reason_code=f"{kind}:{'&'.join(conditions)}",
                conditions=parsed,
                customers=customers,
                rate=float(rate),
                lift=float(lift),
            )
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LEARNED_RULE_TABLE} "
        "(reason_code VARCHAR, attribute VARCHAR, bin VARCHAR, condition_count INTEGER)"
    )
    conditions = [
        (rule.reason_code, attribute, bin_, len(rule.conditions))
        for rule in rules
        for attribute, bin_ in rule.conditions
    ]
    if conditions:
        con.executemany(f"INSERT INTO {LEARNED_RULE_TABLE} VALUES (?, ?, ?, ?)", conditions)
    _flag_learned_reasons(con, rules)
    return rules


def _flag_learned_reasons(con: duckdb.DuckDBPyConnection, rules: list[LearnedAntiIcpRule]) -> None:
    """Write ``learned_anti_icp_reasons (account_id, reason_code)``: one filtered pass over the
    accounts' bins per rule."""
    params: dict[str, object] = {}
    selects = []
    for i, rule in enumerate(rules):
        params[f"code{i}"] = rule.reason_code
        conditions = []
        for j, (attribute, bin_) in enumerate(rule.conditions):
            params[f"bin{i}_{j}"] = bin_
            conditions.append(f"{quote_identifier(attribute)} = $bin{i}_{j}")
        selects.append(
            f"SELECT account_id, CAST($code{i} AS VARCHAR) AS reason_code FROM {BIN_TABLE} "
            f"WHERE {' AND '.join(conditions)}"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LEARNED_REASON_TABLE} AS "
        + (
            " UNION ALL ".join(selects)
            or "SELECT CAST(NULL AS VARCHAR) AS account_id, CAST(NULL AS VARCHAR) AS reason_code "
            "WHERE false"
        ),
        params,
    )


def learned_reasons_sql() -> str:
    """(account_id, reason_code) for accounts meeting every condition of a learned rule."""
    return f"SELECT account_id, reason_code FROM {LEARNED_REASON_TABLE}"


def situational_reasons_sql(feature_table: str) -> str:
    """(account_id, reason_code) from a current customer's facts; parameters ``$payment_failure``,
    ``$support_top_share``, ``$contraction_grr``."""
    return f"""
        WITH customers AS (
            SELECT *,
                   cume_dist() OVER (
                       PARTITION BY tickets_per_1k_mrr_usd IS NULL ORDER BY tickets_per_1k_mrr_usd
                   ) AS support_burden_cume
            FROM {feature_table}
            WHERE lifecycle_stage = 'customer'
        )
        SELECT account_id, 'repeated_payment_failures' AS reason_code FROM customers
        WHERE payment_failure_rate >= $payment_failure
        UNION ALL
        SELECT account_id, 'heavy_support_per_dollar' FROM customers
        WHERE tickets_per_1k_mrr_usd IS NOT NULL AND support_burden_cume > 1 - $support_top_share
        UNION ALL
        SELECT account_id, 'contraction' FROM customers
        WHERE grr_12m < $contraction_grr
    """
