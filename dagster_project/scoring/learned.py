"""The data-derived ICP: outcome labels, binned attributes, a weight-of-evidence scorecard.

1. **Labels** (:func:`label_customers`): customers with enough tenure (churned ones count from
   the day they churned) get a composite of retention, net revenue retention, satisfaction
   and low support burden per dollar, each as a percentile rank. The top ``best_share`` are
   *best*; *worst* are those that churned within 90 days, sit in the top decile of support
   burden per dollar, or never expanded with poor retention.
2. **Bins** (:func:`build_attribute_bins`): every account gets one bin per attribute
   (industry, size band, country, business model, ..., one yes/no attribute per frequent tech
   stack item); rare values join ``other``, missing values are a bin of their own. The bins
   are one wide row per account (``account_bins``, a column per attribute), so binning,
   counting and scoring a million accounts each take one pass, not one per attribute.
3. **Scorecard** (:func:`fit_scorecard`): weight of evidence (best vs worst, smoothed) per bin,
   an L2-regularised logistic regression on the WoE columns (scikit-learn), and points
   ``scale * coefficient * woe`` per bin, so an account's score is ``base + sum(points)``, a
   linear function of the model's log-odds. The scale is anchored on the customers themselves:
   the median best customer scores ``best_median_score`` (85), the median worst customer
   ``worst_median_score`` (15): high means "like our best customers", low "like our worst".

Binning, counting and scoring run in DuckDB; only the labelled customers' WoE matrix (one row
per labelled customer, one column per attribute) reaches scikit-learn. The per-bin counts over
all accounts are taken once, when binning (``bin_counts``); the fit reads the labelled
customers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression

from dagster_project.sql import quote_identifier, table_exists

__all__ = [
    "BIN_COUNT_TABLE",
    "BIN_TABLE",
    "CUSTOMER_BIN_TABLE",
    "NotEnoughCustomersError",
    "LABEL_TABLE",
    "LearnedSettings",
    "Scorecard",
    "bin_columns",
    "bin_customers",
    "build_attribute_bins",
    "fit_scorecard",
    "label_customers",
    "labelled_customer_bins",
    "long_bins_sql",
    "outcome_basis",
]

#: One row per account: ``account_id`` and one bin column per attribute, named as the attribute.
BIN_TABLE = "account_bins"
#: (attribute, bin, accounts): how many accounts hold each bin of ``account_bins``.
BIN_COUNT_TABLE = "bin_counts"
#: The rows of ``account_bins`` of the labelled customers.
CUSTOMER_BIN_TABLE = "customer_bins"
LABEL_TABLE = "customer_labels"
MISSING_BIN = "missing"
OTHER_BIN = "other"
TECH_PREFIX = "tech_stack:"


class NotEnoughCustomersError(ValueError):
    """Too few labelled customers (or no contrast between them) to learn an ICP from."""


@dataclass(frozen=True)
class LearnedSettings:
    """The ``learned`` section of the scoring config, with the defaults of the method."""

    min_tenure_months: int = 6
    best_share: float = 0.2
    weight_retention: float = 0.35
    weight_net_revenue_retention: float = 0.25
    weight_satisfaction: float = 0.2
    weight_low_support_burden: float = 0.2
    weight_nps: float = 0.15
    weight_product_usage: float = 0.15
    worst_support_burden_top_share: float = 0.1
    worst_poor_grr_below: float = 0.9
    attributes: tuple[str, ...] = (
        "industry",
        "size_band",
        "revenue_band",
        "country",
        "business_model",
        "deployment",
        "funding_stage",
        "tech_stack",
    )
    min_labelled_customers: int = 30
    min_bin_accounts: int = 10
    max_tech_items: int = 15
    woe_smoothing: float = 0.5
    regularization_c: float = 1.0
    best_median_score: float = 85.0
    worst_median_score: float = 15.0


#: Which outcomes the labels come from, by the sources the company has.
CUSTOMER_VALUE_BASIS = "customer_value"
DEAL_OUTCOMES_BASIS = "deal_outcomes"
def outcome_basis(con: duckdb.DuckDBPyConnection, as_of) -> str | None:
    """``customer_value`` with billing subscriptions (retention, NRR, CSAT, support burden),
    else ``deal_outcomes`` with won/lost deals, else None: nothing to learn from."""
    # Read from the facts themselves: a fact is NULL exactly when its source is absent
    # (is_churned needs billing subscriptions, opportunities_won needs deals).
    columns = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'fct_account_metrics'"
        ).fetchall()
    }
    for column, basis in (
        ("is_churned", CUSTOMER_VALUE_BASIS),
        ("opportunities_won", DEAL_OUTCOMES_BASIS),
    ):
        if column not in columns:
            continue
        known = con.execute(
            f"SELECT count({column}) FROM marts.fct_account_metrics WHERE as_of_date = $as_of",
            {"as_of": as_of},
        ).fetchone()[0]
        if known:
            return basis
    return None


def label_customers(con: duckdb.DuckDBPyConnection, settings: LearnedSettings, as_of) -> int:
    """Write ``customer_labels`` from the outcomes the company's sources hold; returns how many.

    With billing, customers with enough tenure are ranked on a composite of the value
    measures present; without billing but with won/lost deals, accounts are ranked by win
    rate: *worst* never won or sit in the bottom ``best_share``, *best* in the top.

    Raises:
        NotEnoughCustomersError: the company has neither billing subscriptions nor deals.
    """
    basis = outcome_basis(con, as_of)
    if basis is None:
        raise NotEnoughCustomersError(
            "no outcomes to learn the ICP from: no billing subscriptions and no won or lost "
            "deals as of this date"
        )
    if basis == DEAL_OUTCOMES_BASIS:
        return _label_by_deal_outcomes(con, settings, as_of)
    weights = {
        "retention": settings.weight_retention,
        "nrr": settings.weight_net_revenue_retention,
        "csat": settings.weight_satisfaction,
        "support": settings.weight_low_support_burden,
        "nps": settings.weight_nps,
        "usage": settings.weight_product_usage,
    }
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {LABEL_TABLE} AS
        WITH eligible AS (
            SELECT
                account_id,
                is_churned,
                coalesce(is_churned_within_90_days, false) AS is_churned_within_90_days,
                tenure_months,
                nrr_12m,
                grr_12m,
                avg_csat,
                tickets_per_1k_mrr_usd,
                avg_nps_score,
                usage_active_days_last_90_days,
                coalesce(expansion_mrr_usd, 0) AS expansion_mrr_usd
            FROM marts.fct_account_metrics
            WHERE as_of_date = $as_of
              AND lifecycle_stage IN ('customer', 'churned')
              AND (is_churned OR tenure_months >= $min_tenure)
        ),
        ranked AS (
            SELECT
                *,
                -- Retention: staying beats leaving; among leavers, later beats sooner.
                percent_rank() OVER (
                    ORDER BY CASE WHEN is_churned THEN 0 ELSE 1 END, tenure_months
                ) AS retention_rank,
                CASE WHEN nrr_12m IS NOT NULL
                    THEN percent_rank() OVER (PARTITION BY nrr_12m IS NULL ORDER BY nrr_12m)
                END AS nrr_rank,
                CASE WHEN avg_csat IS NOT NULL
                    THEN percent_rank() OVER (PARTITION BY avg_csat IS NULL ORDER BY avg_csat)
                END AS csat_rank,
                CASE WHEN tickets_per_1k_mrr_usd IS NOT NULL
                    THEN 1 - percent_rank() OVER (
                        PARTITION BY tickets_per_1k_mrr_usd IS NULL
                        ORDER BY tickets_per_1k_mrr_usd)
                END AS low_support_rank,
                CASE WHEN avg_nps_score IS NOT NULL
                    THEN percent_rank() OVER (
                        PARTITION BY avg_nps_score IS NULL ORDER BY avg_nps_score)
                END AS nps_rank,
                CASE WHEN usage_active_days_last_90_days IS NOT NULL
                    THEN percent_rank() OVER (
                        PARTITION BY usage_active_days_last_90_days IS NULL
                        ORDER BY usage_active_days_last_90_days)
                END AS usage_rank,
                CASE WHEN tickets_per_1k_mrr_usd IS NOT NULL
                    THEN cume_dist() OVER (
                        PARTITION BY tickets_per_1k_mrr_usd IS NULL
                        ORDER BY tickets_per_1k_mrr_usd)
                END AS support_burden_cume
            FROM eligible
        ),
        composite AS (
            SELECT
                *,
                -- A missing component drops out and the others' weights are renormalised.
                (
                    $w_retention * retention_rank
                    + coalesce($w_nrr * nrr_rank, 0)
                    + coalesce($w_csat * csat_rank, 0)
                    + coalesce($w_support * low_support_rank, 0)
                    + coalesce($w_nps * nps_rank, 0)
                    + coalesce($w_usage * usage_rank, 0)
                ) / (
                    $w_retention
                    + CASE WHEN nrr_rank IS NULL THEN 0 ELSE $w_nrr END
                    + CASE WHEN csat_rank IS NULL THEN 0 ELSE $w_csat END
                    + CASE WHEN low_support_rank IS NULL THEN 0 ELSE $w_support END
                    + CASE WHEN nps_rank IS NULL THEN 0 ELSE $w_nps END
                    + CASE WHEN usage_rank IS NULL THEN 0 ELSE $w_usage END
                ) AS composite_score
            FROM ranked
        ),
        flagged AS (
            SELECT
                *,
                list_filter([
                    CASE WHEN is_churned_within_90_days THEN 'churned_within_90_days' END,
                    CASE WHEN support_burden_cume > 1 - $support_top_share
                        THEN 'top_decile_support_burden' END,
                    CASE WHEN expansion_mrr_usd <= 0
                          AND (is_churned OR coalesce(grr_12m, 1) < $poor_grr)
                        THEN 'never_expanded_poor_retention' END
                ], lambda reason: reason IS NOT NULL) AS worst_reasons,
                percent_rank() OVER (ORDER BY composite_score) AS composite_rank
            FROM composite
        )
        SELECT
            account_id,
            composite_score,
            CASE
                WHEN len(worst_reasons) > 0 THEN 'worst'
                WHEN composite_rank >= 1 - $best_share THEN 'best'
                ELSE 'middle'
            END AS outcome_label,
            worst_reasons
        FROM flagged
        """,
        {
            "as_of": as_of,
            "min_tenure": settings.min_tenure_months,
            "w_retention": weights["retention"],
            "w_nrr": weights["nrr"],
            "w_csat": weights["csat"],
            "w_support": weights["support"],
            "w_nps": weights["nps"],
            "w_usage": weights["usage"],
            "support_top_share": settings.worst_support_burden_top_share,
            "poor_grr": settings.worst_poor_grr_below,
            "best_share": settings.best_share,
        },
    )
    return con.execute(f"SELECT count(*) FROM {LABEL_TABLE}").fetchone()[0]


def _label_by_deal_outcomes(
    con: duckdb.DuckDBPyConnection, settings: LearnedSettings, as_of
) -> int:
    """Accounts with closed deals, ranked by win rate: worst are those that never won or sit
    in the bottom ``best_share``; best the top ``best_share`` (a company whose accounts all won
    something still has a contrast)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {LABEL_TABLE} AS
        WITH closed AS (
            SELECT
                account_id,
                opportunities_won,
                CAST(opportunities_won AS DOUBLE)
                    / (opportunities_won + opportunities_lost) AS composite_score
            FROM marts.fct_account_metrics
            WHERE as_of_date = $as_of AND opportunities_won + opportunities_lost > 0
        ),
        ranked AS (
            -- Ranked from each end, so accounts tied on a win rate share one label: many
            -- accounts at 100% (or at 0%) are all best (all worst), never none of them.
            SELECT
                *,
                percent_rank() OVER (ORDER BY composite_score) AS rank_from_bottom,
                percent_rank() OVER (ORDER BY composite_score DESC) AS rank_from_top,
                max(composite_score) OVER () AS top_score
            FROM closed
        ),
        flagged AS (
            SELECT
                *,
                rank_from_bottom <= $best_share AND composite_score < top_score AS is_lowest_rate
            FROM ranked
        )
        SELECT
            account_id,
            composite_score,
            CASE
                WHEN opportunities_won = 0 OR is_lowest_rate THEN 'worst'
                WHEN rank_from_top <= $best_share THEN 'best'
                ELSE 'middle'
            END AS outcome_label,
            CASE
                WHEN opportunities_won = 0 THEN ['only_lost_deals']
                WHEN is_lowest_rate THEN ['lowest_win_rate']
                ELSE []
            END AS worst_reasons
        FROM flagged
        """,
        {"as_of": as_of, "best_share": settings.best_share},
    )
    return con.execute(f"SELECT count(*) FROM {LABEL_TABLE}").fetchone()[0]


def build_attribute_bins(
    con: duckdb.DuckDBPyConnection, settings: LearnedSettings, feature_table: str
) -> list[str]:
    """Write ``account_bins`` (one row per account: ``account_id`` and one bin column per
    attribute used, named as the attribute) and ``bin_counts`` (attribute, bin, accounts: how
    many accounts hold each bin); returns the attributes used.

    Attributes absent from ``feature_table`` are skipped, so a warehouse without
    ``revenue_band`` still scores. One pass over the accounts bins every attribute, one
    GROUP BY per attribute counts the bins, and only if some value is rare (held by fewer than
    ``min_bin_accounts`` accounts) a last pass moves it to ``other``.
    """
    available = {row[0] for row in con.execute(f"DESCRIBE {feature_table}").fetchall()}
    columns: dict[str, str] = {}
    for attribute in settings.attributes:
        if attribute not in available or attribute == "tech_stack":
            continue
        text = f"lower(trim(CAST(features.{quote_identifier(attribute)} AS VARCHAR)))"
        columns[attribute] = f"coalesce(nullif(nullif({text}, ''), 'unknown'), '{MISSING_BIN}')"
    tech_join = ""
    if "tech_stack" in settings.attributes and "tech_stack" in available:
        for item in _tech_stack_bins(con, settings, feature_table):
            attribute = quote_identifier(f"{TECH_PREFIX}{item}")
            columns[f"{TECH_PREFIX}{item}"] = f"coalesce(stacks.{attribute}, '{MISSING_BIN}')"
        tech_join = "LEFT JOIN tech_stack_bins AS stacks ON stacks.tech_stack = features.tech_stack"
    if not columns:
        raise ValueError(f"none of the learned attributes {settings.attributes} is a feature")
    bins = ", ".join(f"{sql} AS {quote_identifier(a)}" for a, sql in columns.items())
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE raw_bins AS
        SELECT features.account_id, {bins}
        FROM {feature_table} AS features {tech_join}
        """
    )
    # One GROUP BY per attribute: each reads one column, far cheaper than unpivoting every
    # account's bins into rows first.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE raw_bin_counts AS "
        + " UNION ALL ".join(
            f"SELECT CAST($attribute{i} AS VARCHAR) AS attribute, {quote_identifier(a)} AS bin, "
            f"count(*) AS accounts FROM raw_bins GROUP BY ALL"
            for i, a in enumerate(columns)
        ),
        {f"attribute{i}": attribute for i, attribute in enumerate(columns)},
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {BIN_COUNT_TABLE} AS
        SELECT attribute, bin, CAST(sum(accounts) AS BIGINT) AS accounts
        FROM (
            SELECT attribute,
                   CASE WHEN accounts < $min AND bin <> '{MISSING_BIN}' THEN '{OTHER_BIN}'
                        ELSE bin END AS bin,
                   accounts
            FROM raw_bin_counts
        )
        GROUP BY attribute, bin
        """,
        {"min": settings.min_bin_accounts},
    )
    rare: dict[str, list[str]] = {}
    for attribute, bin_ in con.execute(
        f"SELECT attribute, bin FROM raw_bin_counts WHERE accounts < $min "
        f"AND bin <> '{MISSING_BIN}' ORDER BY attribute, bin",
        {"min": settings.min_bin_accounts},
    ).fetchall():
        rare.setdefault(attribute, []).append(bin_)
    replaced = [
        f"CASE WHEN list_contains($rare{i}, {quote_identifier(attribute)}) THEN '{OTHER_BIN}' "
        f"ELSE {quote_identifier(attribute)} END AS {quote_identifier(attribute)}"
        for i, attribute in enumerate(rare)
    ]
    if replaced:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {BIN_TABLE} AS "
            f"SELECT * REPLACE ({', '.join(replaced)}) FROM raw_bins",
            {f"rare{i}": bins for i, bins in enumerate(rare.values())},
        )
        con.execute("DROP TABLE raw_bins")
    else:
        # Nothing rare (the usual case at scale): the raw bins are the bins, no copy.
        con.execute(f"DROP TABLE IF EXISTS temp.{BIN_TABLE}")
        con.execute(f"ALTER TABLE temp.raw_bins RENAME TO {BIN_TABLE}")
    bin_customers(con)
    return list(columns)


def bin_customers(con: duckdb.DuckDBPyConnection) -> None:
    """Write ``customer_bins``: the rows of ``account_bins`` of the labelled customers (those in
    ``customer_labels``; none if there are no labels yet).

    The fit, the ICP segments, the learned anti-ICP and the profile read customers only; one
    pass over every account's bins picks them out for all four.
    """
    if table_exists(con, "main", LABEL_TABLE):  # a temporary table lists under schema main
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {CUSTOMER_BIN_TABLE} AS SELECT * FROM {BIN_TABLE} "
            f"WHERE account_id IN (SELECT account_id FROM {LABEL_TABLE})"
        )
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {CUSTOMER_BIN_TABLE} AS "
            f"SELECT * FROM {BIN_TABLE} WHERE false"
        )


def bin_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The attributes ``account_bins`` has a bin column for, in column order."""
    return [
        row[0] for row in con.execute(f"DESCRIBE {BIN_TABLE}").fetchall() if row[0] != "account_id"
    ]


def long_bins_sql(table: str = BIN_TABLE, accounts_sql: str | None = None) -> str:
    """``(account_id, attribute, bin)`` of ``table`` (``account_bins`` or ``customer_bins``):
    one row per account and attribute with a bin, of the accounts ``accounts_sql`` selects
    (``account_id``; default: all of the table)."""
    source = table
    if accounts_sql is not None:
        source = (
            f"(SELECT {table}.* FROM {table} "
            f"WHERE account_id IN (SELECT account_id FROM ({accounts_sql})))"
        )
    return _long_bins_sql(source)


def _long_bins_sql(source: str) -> str:
    # UNPIVOT leaves out NULL bins, as a long table would have no row for them.
    return (
        f"SELECT account_id, attribute, bin FROM (UNPIVOT {source} "
        "ON COLUMNS(* EXCLUDE (account_id)) INTO NAME attribute VALUE bin)"
    )


def _tech_stack_bins(
    con: duckdb.DuckDBPyConnection, settings: LearnedSettings, feature_table: str
) -> list[str]:
    """Write ``tech_stack_bins``: one row per distinct ``tech_stack`` value with the bin
    (``yes``, ``no``, ``missing`` when empty) of each of the ``max_tech_items`` items held by
    most accounts (at least ``min_bin_accounts``); returns those items, most held first.

    Parsed once per distinct value, not per account: a million accounts share a few tens of
    thousands of stacks. A NULL stack has no row (its bins are ``missing``).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE tech_stack_items AS
        SELECT tech_stack, count(*) AS accounts,
               list_transform(string_split(lower(tech_stack), ';'), lambda item: trim(item))
                   AS items
        FROM {feature_table}
        WHERE tech_stack IS NOT NULL
        GROUP BY tech_stack
        """
    )
    items = [
        row[0]
        for row in con.execute(
            """
            SELECT item FROM (
                SELECT accounts, unnest(list_distinct(items)) AS item FROM tech_stack_items
            )
            WHERE item <> ''
            GROUP BY item HAVING sum(accounts) >= $min
            ORDER BY sum(accounts) DESC, item LIMIT $max
            """,
            {"min": settings.min_bin_accounts, "max": settings.max_tech_items},
        ).fetchall()
    ]
    bins = "".join(
        f", CASE WHEN trim(tech_stack) = '' THEN '{MISSING_BIN}' "
        f"WHEN list_contains(items, $item{i}) THEN 'yes' ELSE 'no' END "
        f"AS {quote_identifier(f'{TECH_PREFIX}{item}')}"
        for i, item in enumerate(items)
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE tech_stack_bins AS SELECT tech_stack{bins} "
        "FROM tech_stack_items",
        {f"item{i}": item for i, item in enumerate(items)},
    )
    return items


@dataclass(frozen=True)
class Scorecard:
    """Points per (attribute, bin) and the base, in score units."""

    base_points: float
    points: dict[tuple[str, str], float]
    coefficients: dict[str, float]
    woe: dict[tuple[str, str], float]
    training_rows: int
    best_rows: int


def fit_scorecard(
    con: duckdb.DuckDBPyConnection,
    settings: LearnedSettings,
    attributes: list[str],
    best_accounts_sql: str = f"SELECT account_id FROM {LABEL_TABLE} WHERE outcome_label = 'best'",
) -> Scorecard:
    """Fit the WoE scorecard on best (1) against worst (0) customers.

    ``best_accounts_sql`` selects the positives (one ICP segment's best customers, for a
    multi-ICP profile); the negatives are always the worst customers. Reads ``customer_bins``
    and ``bin_counts`` as :func:`build_attribute_bins` left them.
    """
    labelled = f"""
        SELECT account_id, 1 AS is_best FROM ({best_accounts_sql})
        UNION ALL
        SELECT account_id, 0 FROM {LABEL_TABLE} WHERE outcome_label = 'worst'
    """
    # Checked first: with no labelled customers at all the WoE below would be NULL.
    best, worst = con.execute(
        f"SELECT count(*) FILTER (WHERE is_best = 1), count(*) FILTER (WHERE is_best = 0) "
        f"FROM ({labelled})"
    ).fetchone()
    _require_customers(settings, best, worst)
    # The fit reads the labelled customers' bins, never all accounts (those were counted once,
    # into bin_counts, when they were binned).
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE labelled_bins AS
        SELECT labelled.is_best, account_bins.*
        FROM ({labelled}) AS labelled
        INNER JOIN {CUSTOMER_BIN_TABLE} AS account_bins USING (account_id)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE bin_woe AS
        WITH labelled_counts AS (
            SELECT attribute, bin,
                   sum(is_best) AS best_count,
                   count(*) - sum(is_best) AS worst_count
            FROM (
                UNPIVOT labelled_bins ON COLUMNS(* EXCLUDE (account_id, is_best))
                INTO NAME attribute VALUE bin
            )
            GROUP BY ALL
        )
        SELECT
            bins.attribute,
            bins.bin,
            -- The pseudo-count is split in proportion to the class totals, so a value with no
            -- labelled customer is neutral (WoE 0) and small bins shrink towards 0.
            ln((coalesce(best_count, 0) + $alpha * $best_total / ($best_total + $worst_total))
               / $best_total)
              - ln((coalesce(worst_count, 0)
                    + $alpha * $worst_total / ($best_total + $worst_total))
                   / $worst_total) AS woe
        FROM {BIN_COUNT_TABLE} AS bins
        LEFT JOIN labelled_counts USING (attribute, bin)
        """,
        {"alpha": settings.woe_smoothing, "best_total": best, "worst_total": worst},
    )
    woe = {
        (attribute, bin_): float(value)
        for attribute, bin_, value in con.execute("SELECT * FROM bin_woe").fetchall()
    }
    features, labels = _woe_matrix(con, attributes)
    _require_customers(settings, int(labels.sum()), int(len(labels) - labels.sum()))
    model = LogisticRegression(C=settings.regularization_c, max_iter=1000)
    model.fit(features, labels)
    log_odds = model.decision_function(features)
    best_median = float(np.median(log_odds[labels == 1]))
    worst_median = float(np.median(log_odds[labels == 0]))
    if best_median <= worst_median:
        raise NotEnoughCustomersError("cannot learn the ICP: best and worst customers look alike")
    score_span = settings.best_median_score - settings.worst_median_score
    scale = score_span / (best_median - worst_median)
    offset = settings.best_median_score - scale * best_median
    coefficients = dict(zip(attributes, model.coef_[0].tolist(), strict=True))
    points = {
        (attribute, bin_): round(scale * coefficients[attribute] * value, 2)
        for (attribute, bin_), value in woe.items()
        if attribute in coefficients
    }
    return Scorecard(
        base_points=round(offset + scale * float(model.intercept_[0]), 2),
        points=points,
        coefficients=coefficients,
        woe=woe,
        training_rows=len(labels),
        best_rows=int(labels.sum()),
    )


def labelled_customer_bins(
    con: duckdb.DuckDBPyConnection, attributes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(bins, is_best) of the best and worst customers: one row per customer (by account_id),
    one text column per attribute, for the out-of-sample evidence."""
    present = [a for a in attributes if a in set(bin_columns(con))]
    columns = "".join(
        f", coalesce(CAST(bins.{quote_identifier(a)} AS VARCHAR), '{MISSING_BIN}')"
        for a in present
    )
    rows = con.execute(
        f"""
        SELECT CAST(labels.outcome_label = 'best' AS INTEGER){columns}
        FROM {LABEL_TABLE} AS labels
        INNER JOIN {CUSTOMER_BIN_TABLE} AS bins USING (account_id)
        WHERE labels.outcome_label IN ('best', 'worst')
        ORDER BY labels.account_id
        """
    ).fetchall()
    labels = np.asarray([row[0] for row in rows], dtype=int)
    bins = np.asarray([row[1:] for row in rows], dtype=object).reshape(len(rows), len(present))
    return bins, labels


def _require_customers(settings: LearnedSettings, best: int, worst: int) -> None:
    if best + worst < settings.min_labelled_customers or not best or not worst:
        raise NotEnoughCustomersError(
            f"cannot learn the ICP from {best} best and {worst} worst customers (at least "
            f"{settings.min_labelled_customers} labelled, some of each, are needed); "
            "lower learned.min_tenure_months or add history"
        )


def _woe_matrix(
    con: duckdb.DuckDBPyConnection, attributes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(features, is_best) of ``labelled_bins``: one row per labelled customer (by account_id),
    one WoE column per attribute (0 where the customer has no bin of it)."""
    present = set(bin_columns(con))
    joins, selects, params = [], [], {}
    for i, attribute in enumerate(attributes):
        if attribute not in present:
            continue
        params[f"attribute{i}"] = attribute
        selects.append(f"coalesce(woe{i}.woe, 0) AS column{i}")
        joins.append(
            f"LEFT JOIN bin_woe AS woe{i} ON woe{i}.attribute = $attribute{i} "
            f"AND woe{i}.bin = labelled_bins.{quote_identifier(attribute)}"
        )
    rows = con.execute(
        f"""
        SELECT labelled_bins.is_best{"".join(", " + select for select in selects)}
        FROM labelled_bins {" ".join(joins)}
        ORDER BY labelled_bins.account_id
        """,
        params,
    ).fetchnumpy()
    labels = np.asarray(rows["is_best"], dtype=int)
    features = np.zeros((len(labels), len(attributes)))
    for i, attribute in enumerate(attributes):
        if attribute in present:
            features[:, i] = np.asarray(rows[f"column{i}"], dtype=float)
    return features, labels
