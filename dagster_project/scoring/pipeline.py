"""One scoring run, start to end: features, points, flags, segments, profile, validation.

:func:`run_scoring` leaves every result in temporary tables of the connection;
:func:`publish` then writes the published tables in one transaction. The model the config
chooses decides where points come from: ``rules`` (the hand-set points model), ``learned``
(the data-derived scorecard) or ``blend`` (both, weighted); the rest is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import duckdb

from dagster_project.scoring.anti_icp import (
    LearnedAntiIcpRule,
    learn_anti_icp_rules,
    learned_reasons_sql,
    situational_reasons_sql,
)
from dagster_project.scoring.config import ScoringConfig
from dagster_project.scoring.evidence import (
    OutOfSample,
    cross_validate,
    high_threshold_for_recall,
    out_of_fold_points,
)
from dagster_project.scoring.learned import (
    BIN_COUNT_TABLE,
    CUSTOMER_BIN_TABLE,
    LABEL_TABLE,
    MISSING_BIN,
    NotEnoughCustomersError,
    Scorecard,
    build_attribute_bins,
    fit_scorecard,
    label_customers,
    labelled_bin_codes,
    long_bins_sql,
)
from dagster_project.scoring.scorecard import (
    FEATURE_TABLE,
    RULE_POINTS_TABLE,
    SITUATIONAL_BANDS,
    build_features,
    combine_factor_points,
    configured_anti_icp_sql,
    learned_factor_points,
    publish_scores,
    rule_factor_points,
    score_accounts,
)
from dagster_project.scoring.segments import (
    CORE_SEGMENT,
    SEGMENT_TABLE,
    IcpSegment,
    find_icp_segments,
)
from dagster_project.sql import add_missing_columns, wilson_bound_sql

__all__ = ["NoSignalError", "ScoringRun", "publish", "run_scoring"]


class NoSignalError(NotEnoughCustomersError):
    """The customers are there, but the learned score does not predict them out of sample."""


LEARNED_POINTS_TABLE = "learned_points"
SCORECARD_TABLE = "scorecard_points"
PROFILE_TABLE = "icp_profile_rows"
VALIDATION_TABLE = "icp_validation_rows"


@dataclass
class ScoringRun:
    """What a scoring run found, for metadata, logs and tests."""

    as_of: date
    score_version: str
    labelled_customers: int = 0
    best_customers: int = 0
    worst_customers: int = 0
    segments: list[IcpSegment] = field(default_factory=list)
    scorecards: dict[str, Scorecard] = field(default_factory=dict)
    learned_anti_icp_rules: list[LearnedAntiIcpRule] = field(default_factory=list)
    fallback_reason: str | None = None
    attributes: list[str] = field(default_factory=list)
    out_of_sample: OutOfSample | None = None
    #: The published model: the champion of the out-of-sample evidence.
    method: str = "woe_scorecard"
    trained_on: str = "best_vs_rest"
    blended: bool = False
    score_at_base_odds: float = 50.0
    points_to_double_odds: float = 20.0
    #: The tier thresholds the run scored with (the high one may be data-driven).
    high_threshold: float | None = None
    medium_threshold: float | None = None
    #: Set when the high threshold was data-driven (``tiers.high_captures_best_share``).
    high_captures_best_share: float | None = None

    @property
    def fit_confidence(self) -> str:
        """``validated``: learned points with out-of-sample evidence; ``insufficient_evidence``:
        the learned ICP was not supported (the rules stand in); ``not_validated``: hand-set
        or blended points, which no out-of-sample test backs."""
        if self.fallback_reason:
            return "insufficient_evidence"
        if self.scorecards and self.out_of_sample is not None and not self.blended:
            return "validated"
        return "not_validated"

    def fit_probability_line(self) -> tuple[float, float] | None:
        """(intercept, slope) of the calibrated probability of becoming a best customer in
        score units, ``P = sigmoid(intercept + slope * unbounded score)``; None when the
        published score is not the validated learned one."""
        if self.fit_confidence != "validated":
            return None
        a, b = self.out_of_sample.calibration
        scale = self.out_of_sample.odds_scale(self.score_at_base_odds, self.points_to_double_odds)
        # The calibration is linear in log-odds, and log-odds are linear in the score.
        return a + b * scale.log_odds(0.0), b / scale.points_per_log_odds


def run_scoring(
    con: duckdb.DuckDBPyConnection, config: ScoringConfig, as_of: date, scored_at: datetime
) -> ScoringRun:
    """Score every account as of ``as_of``; results stay in temporary tables."""
    from dagster_project.scoring.validation import validate

    run = ScoringRun(
        as_of=as_of,
        score_version=config.score_version,
        blended=config.model == "blend",
        score_at_base_odds=config.learned.score_at_base_odds,
        points_to_double_odds=config.learned.points_to_double_odds,
    )
    column_types = build_features(con, as_of)
    uses_learned = config.model in ("learned", "blend")
    backtest = None
    if uses_learned:
        # The backtest fits on what was known earlier; it runs first because the current fit
        # reuses the same working tables.
        backtest = _backtest(con, config, as_of)
        try:
            _learn(con, config, as_of, run)
        except NotEnoughCustomersError as error:
            # A young customer base still gets scores: the hand-set points model, said loudly.
            run.fallback_reason = str(error)
            run.score_version = f"rules-{config.fingerprint}-fallback"
            config = replace(config, model="rules")
            uses_learned = False
            backtest = None
    if uses_learned and config.high_captures_best_share and run.out_of_sample is not None:
        config = replace(config, high_threshold=_data_driven_high_threshold(config, run))
        run.high_captures_best_share = config.high_captures_best_share
    run.high_threshold, run.medium_threshold = config.high_threshold, config.medium_threshold
    _combine_factor_points(con, config, column_types, uses_learned)
    _flag_anti_icp(con, config, column_types, uses_learned)
    score_accounts(
        con,
        config,
        as_of,
        scored_at,
        run.score_version,
        run.fit_confidence,
        run.fit_probability_line(),
    )
    if uses_learned:
        _profile(con, config, as_of, run)
    else:
        _empty_profile(con)
    validate(con, config, as_of, backtest, run)
    return run


def _data_driven_high_threshold(config: ScoringConfig, run: ScoringRun) -> float:
    """The smallest high tier holding ``high_captures_best_share`` of the best customers out of
    fold, kept above the medium threshold."""
    points = out_of_fold_points(
        run.out_of_sample, run.score_at_base_odds, run.points_to_double_odds
    )
    threshold = high_threshold_for_recall(
        points, run.out_of_sample.is_best, config.high_captures_best_share
    )
    return min(100.0, max(threshold, config.medium_threshold + 0.01))


def _learn(con, config: ScoringConfig, as_of: date, run: ScoringRun) -> None:
    run.labelled_customers = label_customers(con, config.learned, as_of)
    run.best_customers, run.worst_customers = con.execute(
        f"SELECT count(*) FILTER (WHERE outcome_label = 'best'), "
        f"count(*) FILTER (WHERE outcome_label = 'worst') FROM {LABEL_TABLE}"
    ).fetchone()
    attributes = build_attribute_bins(con, config.learned, FEATURE_TABLE)
    run.attributes = attributes
    labelled = labelled_bin_codes(con, attributes)
    run.out_of_sample = cross_validate(
        labelled.codes,
        labelled.is_best,
        labelled.is_worst,
        labelled.bin_counts,
        config.learned.candidate_settings,
        config.validation.no_signal_auc_floor,
        attributes=labelled.attributes,
    )
    if run.out_of_sample is not None and run.out_of_sample.verdict == "no_signal":
        raise NoSignalError(
            "no signal: this data does not support a learned ICP on these attributes (no "
            "model told best customers from the rest on accounts it was not fitted on: "
            f"{run.out_of_sample.describe()}); the scores are the configured rules', marked "
            "fit_confidence = insufficient_evidence; attributes tried: " + ", ".join(attributes)
        )
    if run.out_of_sample is not None:
        run.method = run.out_of_sample.champion_method
        run.trained_on = run.out_of_sample.champion_labels
    run.segments = find_icp_segments(
        con,
        config.segments.max_segments,
        config.segments.min_silhouette,
        config.segments.min_segment_share,
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SCORECARD_TABLE} "
        "(icp_segment VARCHAR, attribute VARCHAR, bin VARCHAR, points DECIMAL(7, 2), woe DOUBLE, "
        "base_points DECIMAL(7, 2), labelled_accounts BIGINT)"
    )
    try:
        _fit_segment_scorecards(con, config, attributes, run)
    except NotEnoughCustomersError:
        if len(run.segments) == 1:
            raise
        # A segment too small to learn from should not cost everyone the learned ICP: one
        # core scorecard over all best customers instead.
        con.execute(f"UPDATE {SEGMENT_TABLE} SET icp_segment = $core", {"core": CORE_SEGMENT})
        run.segments = [IcpSegment(CORE_SEGMENT, run.best_customers, None)]
        run.scorecards.clear()
        con.execute(f"DELETE FROM {SCORECARD_TABLE}")
        _fit_segment_scorecards(con, config, attributes, run)
    # Each account is scored against every segment's scorecard and kept in the closest one.
    learned_factor_points(
        con, SCORECARD_TABLE, [segment.name for segment in run.segments], LEARNED_POINTS_TABLE
    )
    run.learned_anti_icp_rules = learn_anti_icp_rules(con, config.learned_anti_icp, as_of)


def _fit_segment_scorecards(con, config: ScoringConfig, attributes, run: ScoringRun) -> None:
    for segment in run.segments:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE segment_best AS SELECT account_id FROM {SEGMENT_TABLE} "
            "WHERE icp_segment = $segment",
            {"segment": segment.name},
        )
        scorecard = fit_scorecard(
            con,
            config.learned,
            attributes,
            run.method,
            run.trained_on,
            "SELECT account_id FROM segment_best",
        )
        run.scorecards[segment.name] = scorecard
        con.executemany(
            f"INSERT INTO {SCORECARD_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    segment.name,
                    attribute,
                    bin_,
                    config.pinned_points.get(f"{attribute}={bin_}", points),
                    scorecard.woe[(attribute, bin_)],
                    scorecard.base_points,
                    scorecard.support[(attribute, bin_)],
                )
                for (attribute, bin_), points in sorted(scorecard.points.items())
            ],
        )


def _combine_factor_points(con, config: ScoringConfig, column_types, uses_learned: bool) -> None:
    sources = []
    if config.model in ("rules", "blend"):
        rule_factor_points(con, config, column_types)
        weight = 1.0 if config.model == "rules" else 1 - config.blend_learned_weight
        sources.append((RULE_POINTS_TABLE, weight, "rule:" if config.model == "blend" else ""))
    if uses_learned:
        weight = 1.0 if config.model == "learned" else config.blend_learned_weight
        sources.append((LEARNED_POINTS_TABLE, weight, ""))
    # Blended base points are summed into one factor so the list stays readable.
    combine_factor_points(con, sources)
    if not uses_learned:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE account_segments (account_id VARCHAR, "
            "icp_segment VARCHAR)"
        )


def _flag_anti_icp(con, config: ScoringConfig, column_types, uses_learned: bool) -> None:
    configured_sql, params = configured_anti_icp_sql(config, column_types)
    sources = [configured_sql]
    if uses_learned:
        sources.append(learned_reasons_sql())
    situational_columns = {
        "lifecycle_stage",
        "payment_failure_rate",
        "tickets_per_1k_mrr_usd",
        "grr_12m",
    }
    if situational_columns <= set(column_types):
        sources.append(situational_reasons_sql(FEATURE_TABLE))
        settings = config.learned_anti_icp
        params = {
            **params,
            "payment_failure": settings.payment_failure_rate_at_least,
            "support_top_share": settings.support_burden_top_share,
            "contraction_grr": settings.contraction_grr_below,
        }
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE anti_icp_flags AS
        SELECT account_id, list(DISTINCT reason_code ORDER BY reason_code) AS anti_icp_reasons
        FROM ({" UNION ALL ".join(f"({sql})" for sql in sources)})
        WHERE account_id IS NOT NULL
        GROUP BY account_id
        """,
        params,
    )


def _empty_profile(con) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {PROFILE_TABLE} (
            as_of_date DATE, icp_segment VARCHAR, attribute VARCHAR, value VARCHAR,
            is_scored BOOLEAN, accounts BIGINT, best_customers BIGINT, worst_customers BIGINT,
            share_all DOUBLE, share_best DOUBLE, share_worst DOUBLE, lift DOUBLE,
            share_best_ci_low DOUBLE, share_best_ci_high DOUBLE, woe DOUBLE,
            points DECIMAL(7, 2), is_low_sample BOOLEAN, score_version VARCHAR
        )
        """
    )


def _profile(con, config: ScoringConfig, as_of: date, run: ScoringRun) -> None:
    """``icp_profile_rows``: per segment and attribute value, shares among best, worst and all,
    lift, a 95% Wilson interval of the best share, WoE and points.

    Situational signals (funding recency, hiring, recent engagement) are profiled too, and
    scored only when listed in ``learned.attributes``: for customers they describe today, not
    the moment they bought.
    """
    _empty_profile(con)
    present = {row[0] for row in con.execute(f"DESCRIBE {FEATURE_TABLE}").fetchall()}
    profiled_only = [
        band for band in SITUATIONAL_BANDS if band in present and band not in run.attributes
    ]
    # Counts over all accounts come from binning (bin_counts) and one GROUP BY per situational
    # band; best and worst counts from the labelled customers' bins alone.
    situational_counts = "".join(
        f" UNION ALL SELECT '{band}', coalesce({band}, '{MISSING_BIN}'), false, count(*) "
        f"FROM {FEATURE_TABLE} GROUP BY ALL"
        for band in profiled_only
    )
    situational_bins = "".join(
        f" UNION ALL SELECT account_id, '{band}', coalesce({band}, '{MISSING_BIN}'), false "
        f"FROM {FEATURE_TABLE} WHERE account_id IN (SELECT account_id FROM labelled)"
        for band in profiled_only
    )
    segments = [s.name for s in run.segments]
    con.execute(
        f"""
        INSERT INTO {PROFILE_TABLE}
        WITH segment_list AS (SELECT unnest($segments) AS icp_segment),
        positives AS (
            SELECT icp_segment, account_id FROM {SEGMENT_TABLE}
        ),
        negatives AS (SELECT account_id FROM {LABEL_TABLE} WHERE outcome_label = 'worst'),
        labelled AS (
            SELECT account_id FROM positives UNION SELECT account_id FROM negatives
        ),
        totals AS (
            SELECT segment_list.icp_segment,
                   (SELECT count(*) FROM {FEATURE_TABLE}) AS all_total,
                   (SELECT count(*) FROM positives
                    WHERE positives.icp_segment = segment_list.icp_segment) AS best_total,
                   (SELECT count(*) FROM negatives) AS worst_total
            FROM segment_list
        ),
        all_counts AS (
            SELECT attribute, bin, true AS is_scored, accounts FROM {BIN_COUNT_TABLE}
            {situational_counts}
        ),
        labelled_bins AS (
            SELECT account_id, attribute, bin, true AS is_scored
            FROM ({long_bins_sql(CUSTOMER_BIN_TABLE, "SELECT account_id FROM labelled")})
            {situational_bins}
        ),
        labelled_counts AS (
            SELECT segment_list.icp_segment, labelled_bins.attribute, labelled_bins.bin,
                   labelled_bins.is_scored,
                   count(positives.account_id) AS best_customers,
                   count(*) FILTER (
                       WHERE labelled_bins.account_id IN (SELECT account_id FROM negatives)
                   ) AS worst_customers
            FROM labelled_bins
            CROSS JOIN segment_list
            LEFT JOIN positives
                ON positives.account_id = labelled_bins.account_id
               AND positives.icp_segment = segment_list.icp_segment
            GROUP BY ALL
        ),
        counts AS (
            SELECT segment_list.icp_segment, all_counts.attribute, all_counts.bin,
                   all_counts.is_scored, all_counts.accounts,
                   coalesce(labelled_counts.best_customers, 0) AS best_customers,
                   coalesce(labelled_counts.worst_customers, 0) AS worst_customers
            FROM all_counts
            CROSS JOIN segment_list
            LEFT JOIN labelled_counts
                ON labelled_counts.icp_segment = segment_list.icp_segment
               AND labelled_counts.attribute = all_counts.attribute
               AND labelled_counts.bin = all_counts.bin
               AND labelled_counts.is_scored = all_counts.is_scored
        ),
        shares AS (
            SELECT counts.*, totals.best_total,
                   accounts / all_total AS share_all,
                   best_customers / nullif(best_total, 0) AS share_best,
                   worst_customers / nullif(worst_total, 0) AS share_worst
            FROM counts INNER JOIN totals USING (icp_segment)
        )
        SELECT
            CAST($as_of AS DATE),
            shares.icp_segment,
            shares.attribute,
            shares.bin,
            shares.is_scored,
            accounts,
            best_customers,
            worst_customers,
            share_all,
            share_best,
            share_worst,
            share_best / nullif(share_all, 0) AS lift,
            {wilson_bound_sql("share_best", "best_total", "1.96", "lower")} AS share_best_ci_low,
            {wilson_bound_sql("share_best", "best_total", "1.96", "upper")} AS share_best_ci_high,
            card.woe,
            card.points,
            -- Fewer labelled accounts behind the bin than pseudo-customers in its prior: its
            -- points are mostly the prior's (near 0), not its own evidence.
            CASE WHEN card.labelled_accounts IS NULL
                THEN best_customers + worst_customers < $low_sample
                ELSE card.labelled_accounts < $low_sample END AS is_low_sample,
            CAST($score_version AS VARCHAR)
        FROM shares
        LEFT JOIN {SCORECARD_TABLE} AS card
            ON card.icp_segment = shares.icp_segment
           AND card.attribute = shares.attribute
           AND card.bin = shares.bin
        ORDER BY shares.icp_segment, shares.attribute, shares.bin
        """,
        {
            "segments": segments,
            "as_of": as_of,
            "score_version": run.score_version,
            "low_sample": config.learned.prior_customers,
        },
    )


def _backtest(con, config: ScoringConfig, as_of: date):
    """Fit on the facts known ``backtest_days`` earlier, if the warehouse has them."""
    from dagster_project.scoring.validation import run_backtest

    backtest_date = as_of - timedelta(days=config.validation.backtest_days)
    return run_backtest(con, config, as_of, backtest_date)


def publish(con: duckdb.DuckDBPyConnection, as_of: date) -> bool:
    """Publish scores, history, profile and validation in one transaction."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute("BEGIN TRANSACTION")
    try:
        for table, rows in (
            ("marts.icp_profile", PROFILE_TABLE),
            ("marts.icp_validation", VALIDATION_TABLE),
        ):
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM {rows} LIMIT 0")
            add_missing_columns(con, table, rows)
            con.execute(f"DELETE FROM {table} WHERE as_of_date = $as_of", {"as_of": as_of})
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {rows}")
        moved = publish_scores(con, as_of, in_transaction=True)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return moved
