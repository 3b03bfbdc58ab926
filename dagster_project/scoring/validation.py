"""``icp_validation``: does the score predict outcomes, is the ICP a sane size, did it drift?

Every run writes one row per measure: a time-based backtest (fit on the facts known
``backtest_days`` earlier, then see which accounts open at that date were won and kept),
the high tier's share of all accounts, and drift against the previous run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from dagster_project.scoring.config import ScoringConfig
from dagster_project.scoring.evidence import BASELINE, out_of_fold_points, tier_evidence
from dagster_project.scoring.learned import (
    BIN_TABLE,
    CUSTOMER_VALUE_BASIS,
    DEAL_OUTCOMES_BASIS,
    LABEL_TABLE,
    NotEnoughCustomersError,
    bin_columns,
    build_attribute_bins,
    fit_scorecard,
    label_customers,
    outcome_basis,
)
from dagster_project.scoring.models import REFERENCE_CANDIDATE
from dagster_project.scoring.scorecard import (
    FEATURE_TABLE,
    HISTORY_TABLE,
    SCORED_TABLE,
    SqlParams,
    build_features,
    scorecard_total_sql,
)
from dagster_project.sql import table_exists

if TYPE_CHECKING:
    from dagster_project.scoring.pipeline import ScoringRun

__all__ = [
    "HIGH_TIER_THRESHOLD",
    "Backtest",
    "evidence_summary",
    "run_backtest",
    "validate",
]

VALIDATION_TABLE = "icp_validation_rows"
#: The features the backtest bins: as known at the backtest date (temp table).
BACKTEST_FEATURE_TABLE = "backtest_features"
#: The measure the blocking check reads: the high tier must beat the low tier on it.
HIGH_BEATS_LOW = "high_tier_beats_low_tier"
#: The measure holding the tier thresholds a run scored with (value high, threshold medium).
HIGH_TIER_THRESHOLD = "high_tier_threshold"


@dataclass
class Backtest:
    """Results of fitting at ``backtest_date`` and scoring what happened until ``as_of``."""

    backtest_date: date
    status: str
    detail: str = ""
    measures: dict[str, float | None] = field(default_factory=dict)


def _tier_sql(score: str, config: ScoringConfig) -> str:
    return (
        f"CASE WHEN {score} >= {float(config.high_threshold)!r} THEN 'high' "
        f"WHEN {score} >= {float(config.medium_threshold)!r} THEN 'medium' ELSE 'low' END"
    )


def run_backtest(
    con: duckdb.DuckDBPyConnection, config: ScoringConfig, as_of: date, backtest_date: date
) -> Backtest:
    """Fit the scorecard on labels known at ``backtest_date`` and measure it on what followed.

    The population is every account that was a prospect or open pipeline at the backtest
    date, or did not exist yet; the outcome is being a customer at ``as_of`` (won and
    retained). Accounts are binned on the firmographics known at the backtest date
    (``dim_accounts_history``); one that did not exist yet on the ones it first had in the
    warehouse, today's.
    """
    # Imported here: the definitions load without scikit-learn (dagster_project/defs/preload.py).
    from sklearn.metrics import roc_auc_score

    facts_then = con.execute(
        "SELECT count(*) FROM marts.fct_account_metrics WHERE as_of_date = $date",
        {"date": backtest_date},
    ).fetchone()[0]
    if not facts_then:
        return Backtest(
            backtest_date,
            "skipped",
            f"no facts for {backtest_date} in marts.fct_account_metrics (backfill that date)",
        )
    try:
        label_customers(con, config.learned, backtest_date)
    except NotEnoughCustomersError as error:
        return Backtest(backtest_date, "skipped", str(error))
    build_features(con, backtest_date, BACKTEST_FEATURE_TABLE)
    con.execute(
        f"INSERT INTO {BACKTEST_FEATURE_TABLE} BY NAME SELECT * FROM {FEATURE_TABLE} "
        f"WHERE account_id NOT IN (SELECT account_id FROM {BACKTEST_FEATURE_TABLE})"
    )
    attributes = build_attribute_bins(con, config.learned, BACKTEST_FEATURE_TABLE)
    try:
        card = fit_scorecard(con, config.learned, attributes)
    except NotEnoughCustomersError as error:
        return Backtest(backtest_date, "skipped", str(error))
    # Scored exactly as the live scoring scores a learned scorecard.
    card_by_column: dict[str, tuple[list[str], list[float]]] = {}
    for (attribute, bin_), points in sorted(card.points.items()):
        bins, values = card_by_column.setdefault(attribute, ([], []))
        bins.append(bin_)
        values.append(points)
    params = SqlParams()
    total = scorecard_total_sql(
        card.base_points,
        {column: card_by_column[column] for column in bin_columns(con) if column in card_by_column},
        params,
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE backtest_population AS
        WITH scores AS (
            SELECT account_id, greatest(0, least(100, {total})) AS fit_score FROM {BIN_TABLE}
        ),
        facts_then AS (
            SELECT * FROM marts.fct_account_metrics WHERE as_of_date = $backtest_date
        ),
        facts_now AS (
            SELECT * FROM marts.fct_account_metrics WHERE as_of_date = $as_of
        )
        SELECT
            facts_now.account_id,
            scores.fit_score,
            {_tier_sql("scores.fit_score", config)} AS fit_tier,
            coalesce(facts_then.lifecycle_stage, 'not_yet') AS stage_then,
            facts_now.lifecycle_stage AS stage_now,
            facts_now.opportunities_won - coalesce(facts_then.opportunities_won, 0) AS won_since,
            facts_now.opportunities_lost - coalesce(facts_then.opportunities_lost, 0) AS lost_since
        FROM facts_now
        INNER JOIN scores USING (account_id)
        LEFT JOIN facts_then USING (account_id)
        """,
        {**params.values, "backtest_date": backtest_date, "as_of": as_of},
    )
    result = Backtest(backtest_date, "ok")
    open_then = "stage_then IN ('prospect', 'open_pipeline', 'not_yet')"
    arrays = con.execute(
        f"SELECT fit_score, CAST(stage_now = 'customer' AS INTEGER) FROM backtest_population "
        f"WHERE {open_then}"
    ).fetchnumpy()
    scores, outcomes = np.asarray(arrays["fit_score"]), np.asarray(arrays[list(arrays)[1]])
    if len(set(outcomes.tolist())) == 2:
        result.measures["backtest_auc_won_and_retained"] = float(roc_auc_score(outcomes, scores))
    result.measures["backtest_accounts"] = float(len(outcomes))
    for tier, won_and_kept, win_rate, retention in con.execute(
        f"""
        SELECT fit_tier,
               avg(CAST(stage_now = 'customer' AS DOUBLE)) FILTER (WHERE {open_then}),
               sum(won_since) / nullif(sum(won_since + lost_since), 0),
               avg(CAST(stage_now = 'customer' AS DOUBLE)) FILTER (WHERE stage_then = 'customer')
        FROM backtest_population GROUP BY fit_tier
        """
    ).fetchall():
        result.measures[f"backtest_won_and_retained_rate_{tier}"] = won_and_kept
        result.measures[f"backtest_win_rate_{tier}"] = win_rate
        result.measures[f"backtest_retention_since_{tier}"] = retention
    for decile, rate, mean_score in con.execute(
        f"""
        SELECT decile, avg(outcome), avg(fit_score) FROM (
            -- Ties broken by account: ntile splits equal scores by row order otherwise,
            -- and a rerun must give the same deciles.
            SELECT ntile(10) OVER (ORDER BY fit_score, account_id) AS decile, fit_score,
                   CAST(stage_now = 'customer' AS DOUBLE) AS outcome
            FROM backtest_population WHERE {open_then}
        ) GROUP BY decile ORDER BY decile
        """
    ).fetchall():
        result.measures[f"backtest_calibration_decile_{decile:02d}_outcome_rate"] = rate
        result.measures[f"backtest_calibration_decile_{decile:02d}_mean_score"] = mean_score
    return result


def validate(
    con: duckdb.DuckDBPyConnection,
    config: ScoringConfig,
    as_of: date,
    backtest: Backtest | None,
    run: ScoringRun,
) -> None:
    """Write ``icp_validation_rows`` (as_of_date, measure, value, threshold, status, detail)."""
    rows: list[tuple[str, float | None, float | None, str, str]] = []
    settings = config.validation
    fallback_reason = run.fallback_reason
    rows.append(_high_tier_threshold_row(run))
    if run.out_of_sample is not None:
        rows.extend(_out_of_sample_rows(run))
    elif config.model != "rules" or fallback_reason:
        rows.append(
            (
                "out_of_sample_auc",
                None,
                settings.no_signal_auc_floor,
                "skipped",
                "too few best customers or other labelled accounts to cross-validate",
            )
        )
    if fallback_reason:
        rows.append(
            (
                "learned_model",
                None,
                None,
                "warn",
                f"scored with the rules model instead: {fallback_reason}",
            )
        )
    if backtest is None:
        rows.append(("backtest", None, None, "skipped", "the rules model has no fit to backtest"))
    else:
        rows.append(
            (
                "backtest",
                None,
                None,
                backtest.status,
                backtest.detail or f"fit on facts of {backtest.backtest_date}",
            )
        )
        rows.extend(
            (name, value, None, "ok", "") for name, value in sorted(backtest.measures.items())
        )
    rows.extend(_source_rows(con, as_of))
    rows.append(_high_beats_low(con, backtest))
    share = con.execute(
        f"SELECT avg(CAST(fit_tier = 'high' AS DOUBLE)) FROM {SCORED_TABLE}"
    ).fetchone()[0]
    in_range = settings.icp_share_low <= (share or 0) <= settings.icp_share_high
    rows.append(
        (
            "high_tier_share_of_accounts",
            share,
            None,
            "ok" if in_range else "warn",
            f"rule of thumb: an ICP is {settings.icp_share_low:.0%}-{settings.icp_share_high:.0%} "
            "of the addressable market",
        )
    )
    rows.extend(_drift(con, config, as_of))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {VALIDATION_TABLE} (
            as_of_date DATE, measure VARCHAR, value DOUBLE, threshold DOUBLE, status VARCHAR,
            detail VARCHAR
        )
        """
    )
    con.executemany(
        f"INSERT INTO {VALIDATION_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
        [(as_of, *row) for row in rows],
    )


#: Entity of each optional source, and the measures of fct_account_metrics that need it.
_SOURCE_MEASURES = {
    "opportunities": ("crm/opportunities", "win rate, sales cycle, won/lost deals"),
    "activities": ("crm/activities", "engagement (activities in the last 30/90 days)"),
    "subscriptions": ("billing/subscriptions", "MRR, retention, churn, NRR/GRR, expansion"),
    "invoices": ("billing/invoices", "lifetime revenue, payment failures"),
    "tickets": ("support/tickets", "tickets, CSAT, resolution time, support burden"),
    "churn_events": ("billing/churn_events", "churn and its reason"),
    "usage": ("product/usage", "adoption: active days, features used, usage trend"),
    "nps_responses": ("feedback/nps_responses", "NPS"),
}
_BASIS_DETAIL = {
    CUSTOMER_VALUE_BASIS: (
        "best customers (and worst) from customer value: retention, NRR, CSAT, support "
        "burden, NPS and product usage, whichever of them the sources hold; the fit takes "
        "best against every other labelled account, prospects that lost every deal included"
    ),
    DEAL_OUTCOMES_BASIS: (
        "no billing: best and worst accounts from deal outcomes (win rate of closed deals; "
        "an account that never won is worst)"
    ),
}


SOURCES_TABLE = "intermediate.int_sources_present"


def _rows_per_source(con: duckdb.DuckDBPyConnection, as_of) -> dict[str, int]:
    """Current rows per optional source entity as of ``as_of`` (``int_sources_present``)."""
    if not table_exists(con, "intermediate", "int_sources_present"):
        return {}
    cursor = con.execute(
        f"SELECT * FROM {SOURCES_TABLE} WHERE as_of_date = $as_of", {"as_of": as_of}
    )
    row = cursor.fetchone()
    if row is None:
        return {}
    names = [column[0] for column in cursor.description]
    return {
        name.removesuffix("_rows"): int(value)
        for name, value in zip(names, row, strict=True)
        if name.endswith("_rows")
    }


def _source_rows(con, as_of: date) -> list[tuple]:
    """Which sources were present, what could therefore be measured, what labels came from."""
    rows_by_source = _rows_per_source(con, as_of)
    present = [
        f"{entity} ({rows_by_source[name]:,} rows): {measures}"
        for name, (entity, measures) in _SOURCE_MEASURES.items()
        if rows_by_source.get(name, 0) > 0
    ]
    absent = [
        entity for name, (entity, _) in _SOURCE_MEASURES.items() if rows_by_source.get(name, 0) == 0
    ]
    detail = "present: crm/accounts; " + "; ".join(present) if present else "present: crm/accounts"
    if absent:
        detail += "; absent (their measures are NULL): " + ", ".join(absent)
    basis = outcome_basis(con, as_of)
    labelled = (
        con.execute(f"SELECT count(*) FROM {LABEL_TABLE}").fetchone()[0]
        if basis and table_exists(con, "main", LABEL_TABLE)
        else None
    )
    return [
        ("sources_present", float(1 + len(present)), None, "ok", detail),
        (
            "outcome_labels",
            None if labelled is None else float(labelled),
            None,
            "ok" if basis else "skipped",
            _BASIS_DETAIL[basis]
            if basis
            else "no billing subscriptions and no won or lost deals: nothing to learn the ICP from",
        ),
    ]


def evidence_summary(run: ScoringRun, measures: dict[str, float | None]) -> str:
    """One plain sentence on what backs the published scores, for the run summary;
    ``measures``: the run's ``icp_validation`` values by measure."""
    evidence = run.out_of_sample
    if run.fit_confidence == "validated":
        precision = measures.get("out_of_fold_precision_high_tier")
        high = (
            f"; out of fold the high tier holds {precision:.0%} best customers, "
            f"{measures['out_of_fold_lift_high_tier']:.1f}x the average, and "
            f"{measures['out_of_fold_recall_high_tier']:.0%} of all best customers"
            if precision is not None
            else "; out of fold no labelled account reaches the high tier"
        )
        return (
            f"validated: {evidence.champion}, out-of-fold AUC {evidence.auc:.3f} "
            f"({evidence.low:.3f}-{evidence.high:.3f}) against {evidence.baseline.auc:.3f} for "
            f"a plain baseline{high}"
        )
    if evidence is not None and evidence.verdict == "no_signal":
        return (
            f"no signal: out-of-fold AUC {evidence.auc:.3f} ({evidence.low:.3f}-"
            f"{evidence.high:.3f}), not clearly above {evidence.floor:.2f}: this data does not "
            "support a learned ICP on these attributes; the scores are the configured rules' "
            "(fit_confidence = insufficient_evidence)"
        )
    if run.fallback_reason:
        return f"insufficient evidence, scored with the configured rules: {run.fallback_reason}"
    return f"not validated: points from the configured {'blend' if run.blended else 'rules'}"


def _out_of_sample_rows(run: ScoringRun) -> list[tuple]:
    """The cross-validated evidence: the champion's AUC and verdict, every candidate's, the
    non-additive reference, and (when the learned score is published) each tier's precision,
    recall and lift and the calibration, all out of fold."""
    evidence = run.out_of_sample
    rows = [
        ("out_of_sample_auc", evidence.auc, evidence.floor, evidence.verdict, evidence.describe()),
        (
            "out_of_sample_auc_baseline",
            evidence.baseline.auc,
            None,
            "ok",
            f"{BASELINE}: one-hot attributes + logistic regression, the same folds (95% interval "
            f"{evidence.baseline.low:.3f}-{evidence.baseline.high:.3f})",
        ),
        (
            "champion_model",
            None,
            None,
            "ok" if evidence.verdict == "ok" else evidence.verdict,
            f"{evidence.champion}: the preferred candidate within one standard error of the "
            "best out-of-fold AUC"
            + ("" if evidence.verdict == "ok" else "; not published (no signal)"),
        ),
    ]
    for name, candidate in evidence.candidates.items():
        rows.append(
            (
                f"out_of_sample_auc_{name}",
                candidate.auc,
                None,
                "ok",
                f"95% interval {candidate.low:.3f}-{candidate.high:.3f}",
            )
        )
    if evidence.reference is not None:
        left = evidence.reference.auc - evidence.auc
        rows.append(
            (
                f"out_of_sample_auc_reference_{REFERENCE_CANDIDATE}",
                evidence.reference.auc,
                None,
                "ok",
                f"non-additive reference (may use interactions); the published scorecard is "
                f"{left:.3f} AUC below it"
                if left > 0
                else "non-additive reference (may use interactions); the published scorecard "
                f"does as well ({-left:.3f} AUC above it)",
            )
        )
        missed = "; ".join(
            f"{first} x {second} (+{gain:.3f})"
            for first, second, gain in evidence.missed_interactions
        )
        rows.append(
            (
                "missed_interactions",
                float(len(evidence.missed_interactions)),
                None,
                "ok",
                "pairs of attributes whose combined values would raise the scorecard's "
                f"out-of-fold AUC: {missed}"
                if missed
                else "no pair of the most informative attributes raises the scorecard's "
                "out-of-fold AUC by 0.005 or more",
            )
        )
    if run.fit_confidence != "validated":
        return rows
    points = out_of_fold_points(evidence, run.score_at_base_odds, run.points_to_double_odds)
    for tier in tier_evidence(evidence, run.high_threshold, run.medium_threshold, points):
        for measure, value in (
            ("share", tier.share),
            ("precision", tier.precision),
            ("recall", tier.recall),
            ("lift", tier.lift),
        ):
            rows.append(
                (
                    f"out_of_fold_{measure}_{tier.tier}_tier",
                    value,
                    None,
                    "ok",
                    f"labelled accounts scored out of fold, {tier.tier} tier: {measure}",
                )
            )
    intercept, slope = run.fit_probability_line()
    probability = 1 / (1 + np.exp(-(intercept + slope * points)))
    order = np.argsort(probability, kind="stable")
    for quintile, members in enumerate(np.array_split(order, 5), start=1):
        if len(members):
            rows.append(
                (
                    f"out_of_fold_calibration_quintile_{quintile}",
                    float(evidence.is_best[members].mean()),
                    float(probability[members].mean()),
                    "ok",
                    "share of best customers (value) against the mean fit_probability "
                    "(threshold) in this fifth of the out-of-fold scores",
                )
            )
    return rows


def _high_tier_threshold_row(run: ScoringRun) -> tuple:
    """The thresholds the run scored with (value: high, threshold: medium): the high one may
    be data-driven, so readers and checks take them from here, not from the config."""
    detail = (
        f"data-driven: the smallest high tier holding {run.high_captures_best_share:.0%} of "
        "the best customers out of fold"
        if run.high_captures_best_share
        else "configured (tiers.high)"
    )
    return (HIGH_TIER_THRESHOLD, run.high_threshold, run.medium_threshold, "ok", detail)


def _high_beats_low(con, backtest: Backtest | None) -> tuple:
    if backtest is not None and backtest.status == "ok":
        high = backtest.measures.get("backtest_won_and_retained_rate_high")
        low = backtest.measures.get("backtest_won_and_retained_rate_low")
        basis = "backtest: share won and retained among accounts open at the backtest date"
    else:
        # The labels are a temporary table: information_schema lists them under schema main.
        if not table_exists(con, "main", LABEL_TABLE):
            return (HIGH_BEATS_LOW, None, None, "skipped", "no labelled customers")
        high, low = con.execute(
            f"""
            SELECT avg(CAST(labels.outcome_label = 'best' AS DOUBLE))
                       FILTER (WHERE scored.fit_tier = 'high'),
                   avg(CAST(labels.outcome_label = 'best' AS DOUBLE))
                       FILTER (WHERE scored.fit_tier = 'low')
            FROM {LABEL_TABLE} AS labels INNER JOIN {SCORED_TABLE} AS scored USING (account_id)
            """
        ).fetchone()
        basis = "in-sample (no backtest): share of best customers among labelled customers"
    if high is None or low is None:
        return (HIGH_BEATS_LOW, None, None, "skipped", f"{basis}; a tier is empty")
    ratio = high / low if low else float("inf")
    if backtest is not None and backtest.status == "ok":
        status = "ok" if high > low else "fail"
    else:
        # In sample the score is judged on the customers it was fitted to (or, for hand-set
        # rules, on labels that share nothing with the points): neither proof nor disproof,
        # so it never passes as evidence and never blocks a run that has no history.
        status = "unverified" if high > low else "warn"
    return (HIGH_BEATS_LOW, ratio, 1.0, status, f"{basis}: high {high:.3f} vs low {low:.3f}")


def _drift(con, config: ScoringConfig, as_of: date) -> list[tuple]:
    exists = table_exists(con, "marts", "account_fit_score_history")
    previous = (
        con.execute(
            f"SELECT max(as_of_date) FROM {HISTORY_TABLE} WHERE as_of_date < $as_of",
            {"as_of": as_of},
        ).fetchone()[0]
        if exists
        else None
    )
    if previous is None:
        return [("drift_vs_previous_run", None, None, "skipped", "no earlier run in history")]
    settings = config.validation
    psi = con.execute(
        f"""
        WITH bucketed AS (
            SELECT 'now' AS run, least(floor(fit_score / 10), 9) AS bucket FROM {SCORED_TABLE}
            UNION ALL
            SELECT 'before', least(floor(fit_score / 10), 9) FROM {HISTORY_TABLE}
            WHERE as_of_date = $previous
        ),
        shares AS (
            SELECT bucket,
                   greatest(count(*) FILTER (WHERE run = 'now')
                            / (SELECT count(*) FROM bucketed WHERE run = 'now'), 1e-4) AS now,
                   greatest(count(*) FILTER (WHERE run = 'before')
                            / (SELECT count(*) FROM bucketed WHERE run = 'before'), 1e-4) AS before
            FROM bucketed GROUP BY bucket
        )
        -- Summed in bucket order: a parallel sum of doubles may differ in the last bits
        -- from one run to the next, and a rerun must reproduce its validation rows exactly.
        SELECT list_sum(list((now - before) * ln(now / before) ORDER BY bucket)) FROM shares
        """,
        {"previous": previous},
    ).fetchone()[0]
    rows = [
        (
            "score_psi_vs_previous_run",
            psi,
            settings.psi_warn,
            "warn" if psi > settings.psi_warn else "ok",
            f"previous run as of {previous}",
        )
    ]
    for tier, change in con.execute(
        f"""
        WITH now AS (SELECT fit_tier, count(*) / sum(count(*)) OVER () AS share
                     FROM {SCORED_TABLE} GROUP BY fit_tier),
             before AS (SELECT fit_tier, count(*) / sum(count(*)) OVER () AS share
                        FROM {HISTORY_TABLE} WHERE as_of_date = $previous GROUP BY fit_tier)
        SELECT coalesce(now.fit_tier, before.fit_tier),
               coalesce(now.share, 0) - coalesce(before.share, 0)
        FROM now FULL OUTER JOIN before USING (fit_tier) ORDER BY 1
        """,
        {"previous": previous},
    ).fetchall():
        rows.append(
            (
                f"tier_share_change_{tier}",
                change,
                settings.tier_share_change_warn,
                "warn" if abs(change) > settings.tier_share_change_warn else "ok",
                f"previous run as of {previous}",
            )
        )
    profile_change = (
        con.execute(
            """
        SELECT avg(abs(coalesce(now.points, 0) - coalesce(before.points, 0)))
        FROM icp_profile_rows AS now
        INNER JOIN marts.icp_profile AS before
            ON before.as_of_date = $previous AND before.icp_segment = now.icp_segment
           AND before.attribute = now.attribute AND before.value = now.value
        WHERE now.is_scored
        """,
            {"previous": previous},
        ).fetchone()[0]
        if table_exists(con, "marts", "icp_profile")
        else None
    )
    rows.append(
        (
            "profile_points_mean_abs_change",
            profile_change,
            None,
            "ok",
            f"mean absolute change of scorecard points per attribute value since {previous}",
        )
    )
    return rows
