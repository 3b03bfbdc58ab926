"""The data-derived ICP: outcome labels, binned attributes, a scorecard fitted on them.

1. **Labels** (:func:`label_customers`): customers with enough tenure (churned ones count from
   the day they churned) get a composite of retention, net revenue retention, satisfaction,
   low support burden per dollar, NPS and product usage (those the sources hold), each as a
   percentile rank. The top ``best_share`` are *best*; *worst* are those that churned within
   90 days, sit in the top decile of support burden per dollar, or never expanded with poor
   retention; the others are *middle*. Prospects whose every closed deal was lost are
   labelled too (*lost_prospect*): they looked at the product and said no.
2. **Bins** (:func:`build_attribute_bins`): every account gets one bin per attribute
   (industry, size band, country, business model, ..., one yes/no attribute per frequent tech
   stack item); rare values join ``other``, missing values are a bin of their own. The bins
   are one wide row per account (``account_bins``, a column per attribute), so binning,
   counting and scoring a million accounts each take one pass, not one per attribute.
3. **Scorecard** (:func:`fit_scorecard`): one of the additive models of ``models`` (chosen
   by the out-of-sample evidence of ``evidence``), fitted on best customers against every
   other labelled account, and scaled to points per bin, so an account's score is
   ``base + sum(points)``, a linear function of the model's log-odds: ``score_at_base_odds``
   (50) is the odds of an average labelled account and every ``points_to_double_odds`` (20)
   points double them. A score of 70 means twice as likely as average to become a best
   customer.

Binning, counting and scoring run in DuckDB; only the labelled accounts' bin codes (one row
per labelled account, one small integer per attribute) reach numpy and scikit-learn. The
per-bin counts over all accounts are taken once, when binning (``bin_counts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from dagster_project.scoring.models import CandidateSettings, fit_additive, scale_to_points
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
    "LabelledBins",
    "labelled_bin_codes",
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
    #: Prospects whose every closed deal was lost are labelled accounts too (not best).
    lost_prospects_as_rest: bool = True
    #: Pseudo-customers at the base rate behind every bin's evidence: a bin's own customers
    #: outweigh them only once it has more than this many.
    prior_customers: float = 30.0
    regularization_c: float = 1.0
    #: optbinning's smallest bin, as a share of the labelled accounts.
    min_bin_share: float = 0.05
    #: Score scale: this score is the odds of an average labelled account, and every
    #: ``points_to_double_odds`` points more double the odds of becoming a best customer.
    score_at_base_odds: float = 50.0
    points_to_double_odds: float = 20.0

    @property
    def candidate_settings(self) -> CandidateSettings:
        return CandidateSettings(
            prior_customers=self.prior_customers,
            regularization_c=self.regularization_c,
            min_bin_share=self.min_bin_share,
        )


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
        UNION ALL
        -- A prospect with no open deal that lost every closed one: evidence of who does
        -- not buy.
        SELECT account_id, NULL, 'lost_prospect', ['only_lost_deals']
        FROM marts.fct_account_metrics
        WHERE $lost_prospects AND as_of_date = $as_of AND lifecycle_stage = 'prospect'
          AND opportunities_lost > 0 AND opportunities_won = 0
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
            "lost_prospects": settings.lost_prospects_as_rest,
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
    """Points per (attribute, bin) and the base, in score units, of one fitted method."""

    method: str
    base_points: float
    points: dict[tuple[str, str], float]
    #: The bin's evidence in log-odds (its WoE times the attribute's coefficient; for the
    #: one-hot model the bin's coefficient).
    woe: dict[tuple[str, str], float]
    #: Labelled accounts the fit saw in each bin.
    support: dict[tuple[str, str], int]
    training_rows: int
    best_rows: int
    #: Best customers' share of the training rows: the odds a score of ``score_at_base_odds``
    #: stands for.
    base_rate: float


def fit_scorecard(
    con: duckdb.DuckDBPyConnection,
    settings: LearnedSettings,
    attributes: list[str],
    method: str = "woe_scorecard",
    trained_on: str = "best_vs_rest",
    best_accounts_sql: str | None = None,
) -> Scorecard:
    """Fit one additive model of ``models`` on the labelled accounts and scale it to points.

    ``best_accounts_sql`` selects the positives (one ICP segment's best customers, for a
    multi-ICP profile; default: every best customer); the negatives are every labelled
    account that is not a best customer (``best_vs_rest``) or the worst ones
    (``best_vs_worst``). Reads ``customer_labels``, ``customer_bins`` and ``bin_counts``.
    """
    labelled = labelled_bin_codes(con, attributes, best_accounts_sql)
    negatives = labelled.is_worst if trained_on == "best_vs_worst" else ~labelled.is_labelled_best
    rows = np.flatnonzero((labelled.is_best == 1) | negatives)
    best = int(labelled.is_best[rows].sum())
    _require_customers(settings, best, len(rows) - best)
    fit = fit_additive(
        method,
        labelled.codes[rows],
        labelled.is_best[rows],
        labelled.bin_counts,
        settings.candidate_settings,
    )
    base_rate = best / len(rows)
    base_points, points = scale_to_points(
        fit, base_rate, settings.score_at_base_odds, settings.points_to_double_odds
    )
    log_odds = fit.decision(labelled.codes[rows])
    is_best = labelled.is_best[rows] == 1
    # On average the best must score above the rest, by more than rounding: else nothing sets
    # them apart (identical bins give every account the same log-odds).
    if log_odds[is_best].mean() <= log_odds[~is_best].mean() + 1e-9:
        raise NotEnoughCustomersError(
            "cannot learn the ICP: best customers and the rest look alike"
        )
    keys = [
        (attribute, bin_)
        for attribute, bins in zip(labelled.attributes, labelled.bins, strict=True)
        for bin_ in bins
    ]
    return Scorecard(
        method=fit.method,
        base_points=round(base_points, 2),
        points=dict(zip(keys, (round(float(v), 2) for v in np.concatenate(points)), strict=True)),
        woe=dict(zip(keys, (float(v) for v in np.concatenate(fit.contributions)), strict=True)),
        support=dict(zip(keys, (int(v) for v in np.concatenate(fit.support)), strict=True)),
        training_rows=len(rows),
        best_rows=best,
        base_rate=base_rate,
    )


@dataclass(frozen=True)
class LabelledBins:
    """The labelled accounts' bins as codes, for the models: ``codes[i, a]`` is the position
    of account ``i``'s bin in ``bins[a]``, every bin of attribute ``a`` any account holds."""

    attributes: list[str]
    bins: list[list[str]]
    account_ids: np.ndarray
    codes: np.ndarray
    #: 1: a positive (a best customer, or one of the segment's); 0: not.
    is_best: np.ndarray
    is_worst: np.ndarray
    #: A best customer of any segment (never a negative of another segment's fit).
    is_labelled_best: np.ndarray

    @property
    def bin_counts(self) -> list[int]:
        return [len(bins) for bins in self.bins]


def labelled_bin_codes(
    con: duckdb.DuckDBPyConnection,
    attributes: list[str],
    best_accounts_sql: str | None = None,
) -> LabelledBins:
    """The labelled accounts of ``customer_labels`` (one row each, by account_id) with their
    bins as codes into every bin of ``bin_counts``; best are those ``best_accounts_sql``
    selects (one ICP segment's, for a multi-ICP profile)."""
    best_accounts_sql = best_accounts_sql or (
        f"SELECT account_id FROM {LABEL_TABLE} WHERE outcome_label = 'best'"
    )
    present = [a for a in attributes if a in set(bin_columns(con))]
    bins = {a: [] for a in present}
    for attribute, bin_ in con.execute(
        f"SELECT attribute, bin FROM {BIN_COUNT_TABLE} ORDER BY attribute, bin"
    ).fetchall():
        if attribute in bins:
            bins[attribute].append(bin_)
    for values in bins.values():
        if MISSING_BIN not in values:
            values.append(MISSING_BIN)  # a customer without a bin of it (NULL) is "missing"
    params = {f"bins{i}": bins[a] for i, a in enumerate(present)}
    codes = "".join(
        f", list_position($bins{i}, coalesce(CAST(customer.{quote_identifier(a)} AS VARCHAR), "
        f"'{MISSING_BIN}')) - 1 AS code{i}"
        for i, a in enumerate(present)
    )
    rows = con.execute(
        f"""
        SELECT labels.account_id,
               CAST(labels.account_id IN ({best_accounts_sql}) AS INTEGER) AS is_best,
               labels.outcome_label = 'worst' AS is_worst,
               labels.outcome_label = 'best' AS is_labelled_best{codes}
        FROM {LABEL_TABLE} AS labels
        INNER JOIN {CUSTOMER_BIN_TABLE} AS customer USING (account_id)
        ORDER BY labels.account_id
        """,
        params,
    ).fetchnumpy()
    count = len(rows["account_id"])
    matrix = np.zeros((count, len(present)), dtype=np.int64)
    for i in range(len(present)):
        matrix[:, i] = np.asarray(rows[f"code{i}"], dtype=np.int64)
    return LabelledBins(
        attributes=present,
        bins=[bins[a] for a in present],
        account_ids=np.asarray(rows["account_id"], dtype=object),
        codes=matrix,
        is_best=np.asarray(rows["is_best"], dtype=int),
        is_worst=np.asarray(rows["is_worst"], dtype=bool),
        is_labelled_best=np.asarray(rows["is_labelled_best"], dtype=bool),
    )


def _require_customers(settings: LearnedSettings, best: int, rest: int) -> None:
    if best + rest < settings.min_labelled_customers or not best or not rest:
        raise NotEnoughCustomersError(
            f"cannot learn the ICP from {best} best customers and {rest} other labelled "
            f"accounts (at least "
            f"{settings.min_labelled_customers} labelled, some of each, are needed); "
            "lower learned.min_tenure_months or add history"
        )
