"""The data-derived ICP: outcome labels, binned attributes, a weight-of-evidence scorecard.

1. **Labels** (:func:`label_customers`): customers with enough tenure (churned ones count from
   the day they churned) get a composite of retention, net revenue retention, satisfaction
   and low support burden per dollar, each as a percentile rank. The top ``best_share`` are
   *best*; *worst* are those that churned within 90 days, sit in the top decile of support
   burden per dollar, or never expanded with poor retention.
2. **Bins** (:func:`build_attribute_bins`): every account gets one bin per attribute
   (industry, size band, country, business model, ..., one yes/no attribute per frequent tech
   stack item); rare values join ``other``, missing values are a bin of their own.
3. **Scorecard** (:func:`fit_scorecard`): weight of evidence (best vs worst, smoothed) per bin,
   an L2-regularised logistic regression on the WoE columns (scikit-learn), and points
   ``scale * coefficient * woe`` per bin, so an account's score is ``base + sum(points)``, a
   linear function of the model's log-odds. The scale is anchored on the customers themselves:
   the median best customer scores ``best_median_score`` (85), the median worst customer
   ``worst_median_score`` (15): high means "like our best customers", low "like our worst".

Binning, counting and scoring run in DuckDB; only the labelled customers' WoE matrix (one row
per labelled customer, one column per attribute) reaches scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression

from dagster_project.sql import quote_identifier

__all__ = [
    "BIN_TABLE",
    "NotEnoughCustomersError",
    "LABEL_TABLE",
    "LearnedSettings",
    "Scorecard",
    "build_attribute_bins",
    "fit_scorecard",
    "label_customers",
]

BIN_TABLE = "account_bins"
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


def label_customers(con: duckdb.DuckDBPyConnection, settings: LearnedSettings, as_of) -> int:
    """Write ``customer_labels`` for customers with enough tenure; returns how many."""
    weights = {
        "retention": settings.weight_retention,
        "nrr": settings.weight_net_revenue_retention,
        "csat": settings.weight_satisfaction,
        "support": settings.weight_low_support_burden,
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
                ) / (
                    $w_retention
                    + CASE WHEN nrr_rank IS NULL THEN 0 ELSE $w_nrr END
                    + CASE WHEN csat_rank IS NULL THEN 0 ELSE $w_csat END
                    + CASE WHEN low_support_rank IS NULL THEN 0 ELSE $w_support END
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
            "support_top_share": settings.worst_support_burden_top_share,
            "poor_grr": settings.worst_poor_grr_below,
            "best_share": settings.best_share,
        },
    )
    return con.execute(f"SELECT count(*) FROM {LABEL_TABLE}").fetchone()[0]


def build_attribute_bins(
    con: duckdb.DuckDBPyConnection, settings: LearnedSettings, feature_table: str
) -> list[str]:
    """Write ``account_bins`` (account_id, attribute, bin); returns the attributes used.

    Attributes absent from ``feature_table`` are skipped, so a warehouse without
    ``revenue_band`` still scores.
    """
    available = {row[0] for row in con.execute(f"DESCRIBE {feature_table}").fetchall()}
    selects = []
    used = []
    for attribute in settings.attributes:
        if attribute not in available or attribute == "tech_stack":
            continue
        used.append(attribute)
        text = f"lower(trim(CAST({quote_identifier(attribute)} AS VARCHAR)))"
        value = f"nullif(nullif({text}, ''), 'unknown')"
        selects.append(
            f"SELECT account_id, '{attribute}' AS attribute, "
            f"coalesce({value}, '{MISSING_BIN}') AS bin FROM {feature_table}"
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE raw_bins (account_id VARCHAR, attribute VARCHAR, bin VARCHAR)"
    )
    for select in selects:
        con.execute(f"INSERT INTO raw_bins {select}")
    if "tech_stack" in settings.attributes and "tech_stack" in available:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE tech_items AS
            SELECT DISTINCT account_id, trim(item) AS item
            FROM (
                SELECT account_id, unnest(string_split(lower(tech_stack), ';')) AS item
                FROM {feature_table}
            )
            WHERE trim(item) <> ''
            """
        )
        items = [
            row[0]
            for row in con.execute(
                "SELECT item FROM tech_items GROUP BY item HAVING count(*) >= $min "
                "ORDER BY count(*) DESC, item LIMIT $max",
                {"min": settings.min_bin_accounts, "max": settings.max_tech_items},
            ).fetchall()
        ]
        if items:
            con.execute(
                f"""
                INSERT INTO raw_bins
                SELECT
                    features.account_id,
                    '{TECH_PREFIX}' || frequent.item AS attribute,
                    CASE
                        WHEN features.tech_stack IS NULL OR trim(features.tech_stack) = ''
                            THEN '{MISSING_BIN}'
                        WHEN tech_items.item IS NOT NULL THEN 'yes'
                        ELSE 'no'
                    END AS bin
                FROM {feature_table} AS features
                CROSS JOIN (SELECT unnest($items) AS item) AS frequent
                LEFT JOIN tech_items
                    ON tech_items.account_id = features.account_id
                   AND tech_items.item = frequent.item
                """,
                {"items": items},
            )
            used.extend(f"{TECH_PREFIX}{item}" for item in items)
    if not used:
        raise ValueError(f"none of the learned attributes {settings.attributes} is a feature")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {BIN_TABLE} AS
        WITH rare AS (
            SELECT attribute, bin FROM raw_bins
            WHERE bin <> '{MISSING_BIN}'
            GROUP BY attribute, bin HAVING count(*) < $min
        )
        SELECT
            raw_bins.account_id,
            raw_bins.attribute,
            CASE WHEN rare.bin IS NULL THEN raw_bins.bin ELSE '{OTHER_BIN}' END AS bin
        FROM raw_bins
        LEFT JOIN rare USING (attribute, bin)
        """,
        {"min": settings.min_bin_accounts},
    )
    return used


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
    multi-ICP profile); the negatives are always the worst customers.
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
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE bin_woe AS
        WITH labelled AS ({labelled}),
        totals AS (
            SELECT sum(is_best) AS best_total, count(*) - sum(is_best) AS worst_total
            FROM labelled
        ),
        bins AS (SELECT DISTINCT attribute, bin FROM {BIN_TABLE}),
        bin_counts AS (
            SELECT account_bins.attribute, account_bins.bin,
                   sum(labelled.is_best) AS best_count,
                   count(*) - sum(labelled.is_best) AS worst_count
            FROM {BIN_TABLE} AS account_bins
            INNER JOIN labelled USING (account_id)
            GROUP BY ALL
        )
        SELECT
            bins.attribute,
            bins.bin,
            -- The pseudo-count is split in proportion to the class totals, so a value with no
            -- labelled customer is neutral (WoE 0) and small bins shrink towards 0.
            ln((coalesce(best_count, 0) + $alpha * best_total / (best_total + worst_total))
               / best_total)
              - ln((coalesce(worst_count, 0) + $alpha * worst_total / (best_total + worst_total))
                   / worst_total) AS woe
        FROM bins
        CROSS JOIN totals
        LEFT JOIN bin_counts USING (attribute, bin)
        """,
        {"alpha": settings.woe_smoothing},
    )
    woe = {
        (attribute, bin_): float(value)
        for attribute, bin_, value in con.execute("SELECT * FROM bin_woe").fetchall()
    }
    features, labels = _woe_matrix(con, labelled, attributes)
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


def _require_customers(settings: LearnedSettings, best: int, worst: int) -> None:
    if best + worst < settings.min_labelled_customers or not best or not worst:
        raise NotEnoughCustomersError(
            f"cannot learn the ICP from {best} best and {worst} worst customers (at least "
            f"{settings.min_labelled_customers} labelled, some of each, are needed); "
            "lower learned.min_tenure_months or add history"
        )


def _woe_matrix(
    con: duckdb.DuckDBPyConnection, accounts_sql: str, attributes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(features, is_best) for the accounts of ``accounts_sql (account_id, is_best)``: one row
    per account, one WoE column per attribute."""
    rows = con.execute(
        f"""
        WITH chosen AS ({accounts_sql})
        SELECT chosen.account_id, chosen.is_best, account_bins.attribute, bin_woe.woe
        FROM chosen
        INNER JOIN {BIN_TABLE} AS account_bins USING (account_id)
        INNER JOIN bin_woe USING (attribute, bin)
        """
    ).fetchnumpy()
    accounts, account_position = np.unique(rows["account_id"], return_inverse=True)
    column_of = {attribute: i for i, attribute in enumerate(attributes)}
    columns = np.array([column_of.get(a, -1) for a in rows["attribute"]], dtype=int)
    known = columns >= 0
    features = np.zeros((len(accounts), len(attributes)))
    features[account_position[known], columns[known]] = np.asarray(rows["woe"])[known]
    labels = np.zeros(len(accounts), dtype=int)
    labels[account_position] = np.asarray(rows["is_best"])
    return features, labels
