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

from dagster_project.scoring.learned import BIN_TABLE, LABEL_TABLE, MISSING_BIN, OTHER_BIN
from dagster_project.sql import wilson_bound_sql

__all__ = [
    "AntiIcpSettings",
    "LearnedAntiIcpRule",
    "learn_anti_icp_rules",
    "learned_reasons_sql",
    "situational_reasons_sql",
]

LEARNED_RULE_TABLE = "learned_anti_icp_rules"


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
    singles do not. Writes ``learned_anti_icp_rules (rule_id, attribute, bin)``.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE anti_icp_candidates AS
        WITH outcomes AS (
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
        traits AS (
            SELECT account_id, attribute, bin FROM {BIN_TABLE}
            WHERE bin NOT IN ('{MISSING_BIN}', '{OTHER_BIN}', 'no')
              AND account_id IN (SELECT account_id FROM outcomes)
        ),
        singles AS (
            SELECT [traits.attribute || '=' || traits.bin] AS conditions, outcomes.*
            FROM traits INNER JOIN outcomes USING (account_id)
        ),
        pairs AS (
            SELECT [first.attribute || '=' || first.bin, second.attribute || '=' || second.bin]
                       AS conditions,
                   outcomes.*
            FROM traits AS first
            INNER JOIN traits AS second
                ON second.account_id = first.account_id AND second.attribute > first.attribute
            INNER JOIN outcomes ON outcomes.account_id = first.account_id
        ),
        grouped AS (
            SELECT conditions, count(*) AS customers,
                   avg(fast_churn) AS fast_churn_rate, avg(heavy_support) AS heavy_support_rate
            FROM (SELECT * FROM singles UNION ALL SELECT * FROM pairs)
            GROUP BY conditions
            HAVING count(*) >= $min_customers
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
    for rule in rules:
        for attribute, bin_ in rule.conditions:
            con.execute(
                f"INSERT INTO {LEARNED_RULE_TABLE} VALUES ($code, $attribute, $bin, $count)",
                {
                    "code": rule.reason_code,
                    "attribute": attribute,
                    "bin": bin_,
                    "count": len(rule.conditions),
                },
            )
    return rules


def learned_reasons_sql() -> str:
    """(account_id, reason_code) for accounts meeting every condition of a learned rule."""
    return f"""
        SELECT account_bins.account_id, rules.reason_code
        FROM {LEARNED_RULE_TABLE} AS rules
        INNER JOIN {BIN_TABLE} AS account_bins USING (attribute, bin)
        GROUP BY account_bins.account_id, rules.reason_code, rules.condition_count
        HAVING count(*) = rules.condition_count
    """


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
