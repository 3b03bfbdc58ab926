"""The fit-score asset and the blocking checks on what it publishes."""

from datetime import UTC, datetime

import dagster as dg

from dagster_project.defs.partitions import (
    AS_OF_PARTITIONS,
    SINGLE_RUN,
    TRANSIENT_RETRY,
    retry_only_if_transient,
    run_dates,
)
from dagster_project.defs.postgres_target import (
    copy_scores_to_server,
    mirror_from_server,
    scoring_fact_dates,
)
from dagster_project.defs.resources import ScoringConfigResource, WarehouseResource
from dagster_project.scoring.pipeline import publish, run_scoring
from dagster_project.scoring.scorecard import CURRENT_TABLE
from dagster_project.scoring.validation import (
    HIGH_BEATS_LOW,
    HIGH_TIER_THRESHOLD,
    evidence_summary,
)

__all__ = ["account_fit_scores", "fit_score_checks"]

FIT_SCORES = dg.AssetKey(["marts", "account_fit_scores"])
FIT_SCORE_HISTORY = dg.AssetKey(["marts", "account_fit_score_history"])
ICP_PROFILE = dg.AssetKey(["marts", "icp_profile"])
ICP_VALIDATION = dg.AssetKey(["marts", "icp_validation"])
DIM_ACCOUNTS = dg.AssetKey(["marts", "dim_accounts"])
ACCOUNTS_BY_DATE = dg.AssetKey(["marts", "dim_accounts_history"])
ACCOUNT_METRICS = dg.AssetKey(["marts", "fct_account_metrics"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            FIT_SCORES,
            deps=[ACCOUNTS_BY_DATE, ACCOUNT_METRICS],
            group_name="scoring",
            kinds={"duckdb", "python"},
            description=(
                "Fit score 0-100, tier, anti-ICP flags with reasons, top factors and route for "
                "every account, prospects included, as of the newest date scored."
            ),
        ),
        dg.AssetSpec(
            FIT_SCORE_HISTORY,
            deps=[ACCOUNTS_BY_DATE, ACCOUNT_METRICS],
            group_name="scoring",
            kinds={"duckdb"},
            description=(
                "Every scoring run, one row per account per as-of date; a run replaces the "
                "rows of its own date only."
            ),
        ),
        dg.AssetSpec(
            ICP_PROFILE,
            deps=[ACCOUNTS_BY_DATE, ACCOUNT_METRICS],
            group_name="scoring",
            kinds={"duckdb"},
            description=(
                "The derived ICP per as-of date and ICP segment: for each attribute value, "
                "shares among best, worst and all accounts, lift, a 95% interval, WoE and points."
            ),
        ),
        dg.AssetSpec(
            ICP_VALIDATION,
            deps=[ACCOUNTS_BY_DATE, ACCOUNT_METRICS],
            group_name="scoring",
            kinds={"duckdb"},
            description=(
                "Per as-of date and measure: backtest AUC, win rate and retention by tier, "
                "calibration by decile, ICP share of all accounts, drift against the last run."
            ),
        ),
    ],
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
)
def account_fit_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    scoring_config: ScoringConfigResource,
):
    """Score each as-of date of the run, oldest first (a backfill range: each date on its own
    facts, drift against the date before it); the metadata describes the newest date."""
    config = scoring_config.load()
    dates = run_dates(context)
    with retry_only_if_transient("scoring"), warehouse.connect() as con:
        if warehouse.on_postgres:
            backtest_days = None if config.model == "rules" else config.validation.backtest_days
            fact_dates = scoring_fact_dates(dates, backtest_days)
            copied = mirror_from_server(warehouse, con, fact_dates)
            context.log.info(
                f"read the facts of {len(fact_dates)} date(s) from PostgreSQL: {copied}"
            )
        for as_of in dates:
            scored_at = datetime.now(UTC).replace(tzinfo=None)
            run = run_scoring(con, config, as_of, scored_at=scored_at)
            moved_current = publish(con, as_of)
            if len(dates) > 1:
                context.log.info(f"scored as of {as_of}")
        if warehouse.on_postgres:
            copied = copy_scores_to_server(warehouse, con, dates)
            context.log.info(f"wrote the scores to PostgreSQL: {copied}")
        validation_rows = con.execute(
            "SELECT measure, value, status, detail FROM icp_validation_rows"
        ).fetchall()
        validation = {measure: (value, status) for measure, value, status, _ in validation_rows}
        detail = {measure: text for measure, _, _, text in validation_rows}
        sources, outcome_labels = detail["sources_present"], detail["outcome_labels"]
        evidence = evidence_summary(run, {m: value for m, (value, _) in validation.items()})
        tiers = dict(
            con.execute("SELECT fit_tier, count(*) FROM scored_accounts GROUP BY ALL").fetchall()
        )
        accounts, anti_icp = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_anti_icp) FROM scored_accounts"
        ).fetchone()
    context.log.info(f"scored {accounts} accounts as of {as_of}: {tiers}, {anti_icp} anti-ICP")
    yield dg.MaterializeResult(
        asset_key=ICP_PROFILE,
        metadata={
            "as_of_date": as_of.isoformat(),
            "labelled_customers": run.labelled_customers,
            "best_customers": run.best_customers,
            "worst_customers": run.worst_customers,
            "icp_segments": [segment.name for segment in run.segments],
            "learned_anti_icp_rules": [rule.reason_code for rule in run.learned_anti_icp_rules],
        },
    )
    yield dg.MaterializeResult(
        asset_key=ICP_VALIDATION,
        metadata={
            "as_of_date": as_of.isoformat(),
            **{
                measure: value
                for measure, (value, _) in validation.items()
                if value is not None and not measure.startswith("backtest_calibration")
            },
        },
    )
    yield dg.MaterializeResult(
        asset_key=FIT_SCORE_HISTORY,
        metadata={"as_of_date": as_of.isoformat(), "rows_replaced": accounts},
    )
    yield dg.MaterializeResult(
        asset_key=FIT_SCORES,
        metadata={
            "as_of_date": as_of.isoformat(),
            "score_version": config.score_version,
            "accounts_scored": accounts,
            "tier_high": tiers.get("high", 0),
            "tier_medium": tiers.get("medium", 0),
            "tier_low": tiers.get("low", 0),
            "anti_icp": anti_icp,
            "published_as_current": moved_current,
            "sources": sources,
            "outcome_labels": outcome_labels,
            "evidence": evidence,
        },
    )


def _failing_rows_check(
    name: str, description: str, failing_rows_sql: str, asset: dg.AssetKey = FIT_SCORES
):
    """A blocking check that passes when ``failing_rows_sql`` returns no rows for any as-of
    date of the run.

    The SQL may use ``$as_of`` (each as-of date of the run in turn), ``$high`` and ``$medium``
    (the tier thresholds).
    """

    @dg.asset_check(asset=asset, name=name, blocking=True, description=description)
    def _check(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        scoring_config: ScoringConfigResource,
    ):
        config = scoring_config.load()
        failing = []
        with warehouse.connect(read_only=True) as con:
            for as_of in run_dates(context):
                high, medium = _tier_thresholds(con, config, as_of)
                values = {"as_of": as_of, "high": high, "medium": medium}
                # DuckDB rejects parameters the statement does not use.
                params = {k: v for k, v in values.items() if f"${k}" in failing_rows_sql}
                failing += con.execute(failing_rows_sql, params).fetchall()
                if "$as_of" not in failing_rows_sql:
                    break
        return dg.AssetCheckResult(
            passed=not failing,
            metadata={"failing_rows": len(failing), "examples": [str(r) for r in failing[:10]]},
        )

    return _check


def _tier_thresholds(con, config, as_of) -> tuple[float, float]:
    """(high, medium) the run scored ``as_of`` with, as it published them in icp_validation
    (a data-driven high threshold is not the config's); the config's for a date published
    before the row existed."""
    row = con.execute(
        "SELECT value, threshold FROM marts.icp_validation "
        "WHERE as_of_date = $as_of AND measure = $measure",
        {"as_of": as_of, "measure": HIGH_TIER_THRESHOLD},
    ).fetchone()
    if row is None or row[0] is None:
        return config.high_threshold, config.medium_threshold
    return row[0], row[1]


# The rows this run published: its date in history (the current table is a copy of the newest
# date; a backfill of an older date publishes history only).
RUN_ROWS = "(SELECT * FROM marts.account_fit_score_history WHERE as_of_date = $as_of)"

fit_score_checks = [
    _failing_rows_check(
        "one_row_per_account",
        "Exactly one row per account of marts.dim_accounts_history of the same as-of date, and "
        "no other account.",
        f"""
        SELECT coalesce(scores.account_id, accounts.account_id), count(scores.account_id)
        FROM {RUN_ROWS} AS scores
        FULL OUTER JOIN (
            SELECT account_id FROM marts.dim_accounts_history WHERE as_of_date = $as_of
        ) AS accounts USING (account_id)
        GROUP BY ALL
        HAVING count(scores.account_id) <> 1 OR count(accounts.account_id) <> 1
        """,
    ),
    _failing_rows_check(
        "current_table_is_one_complete_version",
        "marts.account_fit_scores holds one as-of date, one score version, and exactly the "
        "history rows of that date.",
        f"""
        WITH current AS (SELECT * FROM {CURRENT_TABLE}),
        versions AS (
            SELECT count(DISTINCT as_of_date) AS dates,
                   count(DISTINCT score_version) AS score_versions,
                   max(as_of_date) AS as_of_date, count(*) AS accounts
            FROM current
        )
        SELECT * FROM versions
        WHERE dates <> 1 OR score_versions <> 1
           OR accounts <> (SELECT count(*) FROM marts.account_fit_score_history AS history
                           WHERE history.as_of_date = versions.as_of_date)
        """,
    ),
    _failing_rows_check(
        "fit_score_between_0_and_100",
        "fit_score is present and within 0-100.",
        f"SELECT account_id, fit_score FROM {RUN_ROWS} "
        "WHERE fit_score IS NULL OR fit_score < 0 OR fit_score > 100",
    ),
    _failing_rows_check(
        "tier_matches_score",
        "fit_tier follows the thresholds the run scored with (the configured ones, or a "
        "data-driven high threshold), as published in icp_validation.",
        f"""
        SELECT account_id, fit_score, fit_tier FROM {RUN_ROWS}
        WHERE fit_tier IS DISTINCT FROM CASE
            WHEN fit_score >= $high THEN 'high'
            WHEN fit_score >= $medium THEN 'medium'
            ELSE 'low' END
        """,
    ),
    _failing_rows_check(
        "reasons_present_when_flagged",
        "An anti-ICP account has at least one reason; an account with reasons is flagged.",
        f"SELECT account_id, is_anti_icp, anti_icp_reasons FROM {RUN_ROWS} "
        "WHERE is_anti_icp IS DISTINCT FROM (len(anti_icp_reasons) > 0)",
    ),
    _failing_rows_check(
        "factors_add_up_to_score",
        "The listed factor points add up exactly to fit_score.",
        f"""
        SELECT account_id, fit_score FROM {RUN_ROWS}
        WHERE fit_score <> coalesce(list_sum(list_transform(factor_points, lambda f: f.points)), 0)
        """,
    ),
    _failing_rows_check(
        "high_tier_beats_low_tier",
        "On the backtest outcome (won and retained), or in sample without a backtest, the "
        "high tier must beat the low tier.",
        f"SELECT measure, value, detail FROM marts.icp_validation WHERE measure = "
        f"'{HIGH_BEATS_LOW}' AND status = 'fail' AND as_of_date = $as_of",
        asset=ICP_VALIDATION,
    ),
    _failing_rows_check(
        "one_row_per_account_per_date",
        "History holds one row per account per as-of date.",
        "SELECT account_id, as_of_date, count(*) FROM marts.account_fit_score_history "
        "GROUP BY ALL HAVING count(*) > 1",
        asset=FIT_SCORE_HISTORY,
    ),
]


@dg.asset_check(
    asset=ICP_VALIDATION,
    name="no_validation_warnings",
    description="Warns (does not block) on drift, an ICP outside 5-15% of accounts, and the like.",
)
def validation_warnings(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        warnings = con.execute(
            "SELECT measure, value, detail FROM marts.icp_validation WHERE status = 'warn' "
            "AND as_of_date = $as_of",
            {"as_of": run_dates(context)[-1]},
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not warnings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "warnings": [
                f"{measure} = {'n/a' if value is None else format(value, '.3g')}: {detail}"
                for measure, value, detail in warnings
            ]
        },
    )


fit_score_checks.append(validation_warnings)
