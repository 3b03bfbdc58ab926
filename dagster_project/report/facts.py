"""The numbers behind the report, each aggregated in DuckDB from the published marts.

Every function takes the open :class:`~dagster_project.report.sources.ReportSources` and an
as-of date, runs one aggregation with bound parameters and returns a few rows: nothing here
reads accounts into Python, so the report's memory does not grow with the account base (the
score distribution is a histogram computed in SQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from dagster_project.report.sources import ReportError, ReportSources

__all__ = [
    "CUSTOMER_STAGES",
    "ICP_TIERS",
    "PSI_BUCKET_POINTS",
    "TIERS",
    "AucEstimate",
    "CalibrationBin",
    "CohortCurve",
    "ProfileValue",
    "QuarantineCount",
    "RetroComparison",
    "RunOverview",
    "ScoreBin",
    "TierOutcome",
    "ValidationRow",
    "anti_icp_reasons",
    "auc_estimates",
    "calibration",
    "cohort_attributes",
    "cohort_curves",
    "comparison_dates",
    "current_date",
    "icp_membership_moves",
    "profile_values",
    "quarantine_counts",
    "retro",
    "run_overview",
    "score_histogram",
    "score_psi",
    "scored_dates",
    "tier_outcomes",
    "validation_rows",
]

TIERS: tuple[str, ...] = ("high", "medium", "low")
#: The ICP in this report: accounts of the high tier that no anti-ICP reason disqualifies
#: (the accounts routed to the senior AEs).
ICP_TIERS: tuple[str, ...] = ("high",)
#: Lifecycle stages of accounts that became customers (docs/metrics.md: ``customers``).
CUSTOMER_STAGES: tuple[str, ...] = ("customer", "churned")
CURRENT_CUSTOMER_STAGE = "customer"
#: PSI buckets and floor as the run's own drift measure (scoring/validation.py ``_drift``),
#: so the report's PSI against the previous run equals ``score_psi_vs_previous_run``.
PSI_BUCKET_POINTS = 10
PSI_FLOOR = 1e-4
#: "About 90 days earlier": the scored date nearest to 90 days before, no later than 75 days
#: before (a nightly history has one exactly; a sparse one still gets a quarter-ago view).
RETRO_DAYS = 90
RETRO_LATEST_DAYS = 75
CALIBRATION_PREFIX = "out_of_fold_calibration_quintile_"
AUC_MEASURE = "out_of_sample_auc"
AUC_CANDIDATE_PREFIX = "out_of_sample_auc_"
_INTERVAL = re.compile(r"95% interval (\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class RunOverview:
    """One scored as-of date at a glance."""

    as_of_date: date
    accounts: int
    icp_accounts: int
    high_tier_accounts: int
    anti_icp_accounts: int
    tier_accounts: dict[str, int]
    confidence_accounts: dict[str, int]
    segment_accounts: dict[str, int]
    score_versions: list[str]

    @property
    def icp_share(self) -> float:
        """Share of all accounts in the ICP."""
        return self.icp_accounts / self.accounts if self.accounts else 0.0

    def tier_share(self, tier: str) -> float:
        """Share of all accounts in ``tier``."""
        return self.tier_accounts.get(tier, 0) / self.accounts if self.accounts else 0.0


@dataclass(frozen=True)
class ProfileValue:
    """One attribute value of ``marts.icp_profile`` with its lift interval.

    ``lift_low``/``lift_high`` are the 95% Wilson interval of the value's share among best
    customers divided by its share of all accounts (lift = share_best / share_all).
    """

    segment: str
    attribute: str
    value: str
    accounts: int
    best_customers: int
    worst_customers: int
    share_all: float
    share_best: float
    share_worst: float
    lift: float
    lift_low: float
    lift_high: float
    points: float | None
    is_low_sample: bool

    @property
    def key(self) -> tuple[str, str, str]:
        """(segment, attribute, value)."""
        return (self.segment, self.attribute, self.value)

    @property
    def label(self) -> str:
        """``attribute = value``."""
        return f"{self.attribute} = {self.value}"

    @property
    def is_icp(self) -> bool:
        """Over-represented among best customers beyond chance, and scored up.

        The interval of its share among best customers lies above its share of all accounts
        (lift interval above 1), and it earns points.
        """
        return self.lift_low > 1 and (self.points or 0) > 0 and not self.is_low_sample

    @property
    def is_anti_icp(self) -> bool:
        """Under-represented among best customers beyond chance, and scored down."""
        return self.lift_high < 1 and (self.points or 0) < 0 and not self.is_low_sample


@dataclass(frozen=True)
class TierOutcome:
    """What became of one tier's accounts (metrics of the same as-of date)."""

    tier: str
    accounts: int
    deals_won: int
    deals_closed: int
    customers: int
    current_customers: int
    customers_12_months_ago: int
    mrr_now_usd: float | None
    mrr_12_months_ago_usd: float | None

    @property
    def win_rate(self) -> float | None:
        """Won / closed deals (docs/metrics.md); None when none closed."""
        return self.deals_won / self.deals_closed if self.deals_closed else None

    @property
    def retention(self) -> float | None:
        """Share of the tier's accounts that became customers and still are."""
        return self.current_customers / self.customers if self.customers else None

    @property
    def nrr(self) -> float | None:
        """Net revenue retention over 12 months, summed over the tier's customers of then."""
        if not self.mrr_12_months_ago_usd:
            return None
        return (self.mrr_now_usd or 0.0) / self.mrr_12_months_ago_usd


@dataclass(frozen=True)
class ScoreBin:
    """One bar of the score histogram, per tier."""

    low: float
    high: float
    tier: str
    accounts: int


@dataclass(frozen=True)
class CalibrationBin:
    """One fifth of the out-of-fold scores: predicted and observed best-customer share."""

    quintile: int
    predicted: float | None
    observed: float | None


@dataclass(frozen=True)
class ValidationRow:
    """One row of ``marts.icp_validation``."""

    measure: str
    value: float | None
    threshold: float | None
    status: str
    detail: str


@dataclass(frozen=True)
class AucEstimate:
    """An out-of-fold AUC with its 95% interval (from the row's detail), if stated."""

    model: str
    auc: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class CohortCurve:
    """Logo retention after 3, 6 and 12 months of one segment value, all cohorts pooled."""

    segment_value: str
    customers: int
    points: list[tuple[int, float | None, int]]  # (months, retention, customers eligible)
    is_low_sample: bool


@dataclass(frozen=True)
class QuarantineCount:
    """Rows quarantined by one rule in one file."""

    entity: str
    source_file: str
    rule: str
    rows: int


@dataclass
class RetroComparison:
    """How the ICP moved between an earlier scored date and the report's date."""

    label: str
    earlier: RunOverview
    psi: float
    accounts_entered_icp: int
    accounts_left_icp: int
    accounts_stayed_icp: int
    values_entered: list[ProfileValue] = field(default_factory=list)
    values_left: list[ProfileValue] = field(default_factory=list)
    #: (value now, points then) for the values whose points moved most.
    points_moved: list[tuple[ProfileValue, float]] = field(default_factory=list)
    earlier_histogram: list[ScoreBin] = field(default_factory=list)


def scored_dates(sources: ReportSources) -> list[date]:
    """Every as-of date of the score history, oldest first."""
    rows = sources.con.execute(
        f"SELECT DISTINCT as_of_date FROM {sources.table('account_fit_score_history')} ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def current_date(sources: ReportSources) -> date:
    """The as-of date of the published current scores."""
    current = sources.con.execute(
        f"SELECT max(as_of_date) FROM {sources.table('account_fit_scores')}"
    ).fetchone()[0]
    if current is None:
        raise ReportError(f"{sources.published_db} holds no scores")
    return current


def run_overview(sources: ReportSources, as_of: date) -> RunOverview:
    """Accounts, tiers, anti-ICP, confidence and segments of one scored date."""
    history = sources.table("account_fit_score_history")
    con = sources.con
    params = {"as_of": as_of, "icp_tiers": list(ICP_TIERS)}
    accounts, icp, high, anti, versions = con.execute(
        f"""
        SELECT count(*),
               count(*) FILTER (WHERE list_contains($icp_tiers, fit_tier) AND NOT is_anti_icp),
               count(*) FILTER (WHERE list_contains($icp_tiers, fit_tier)),
               count(*) FILTER (WHERE is_anti_icp),
               list(DISTINCT score_version ORDER BY score_version)
        FROM {history} WHERE as_of_date = $as_of
        """,
        params,
    ).fetchone()

    def counts(column: str) -> dict[str, int]:
        rows = con.execute(
            f"SELECT coalesce({column}, 'none'), count(*) FROM {history} "
            "WHERE as_of_date = $as_of GROUP BY ALL ORDER BY 2 DESC, 1",
            {"as_of": as_of},
        ).fetchall()
        return dict(rows)

    return RunOverview(
        as_of_date=as_of,
        accounts=accounts,
        icp_accounts=icp,
        high_tier_accounts=high,
        anti_icp_accounts=anti,
        tier_accounts=counts("fit_tier"),
        confidence_accounts=counts("fit_confidence"),
        segment_accounts=counts("icp_segment"),
        score_versions=list(versions or []),
    )


def profile_values(sources: ReportSources, as_of: date) -> list[ProfileValue]:
    """Every scored attribute value of the ICP profile of ``as_of``, highest points first."""
    rows = sources.con.execute(
        f"""
        SELECT coalesce(icp_segment, 'core'), attribute, value, accounts, best_customers,
               worst_customers, share_all, share_best, share_worst, lift,
               CASE WHEN share_all > 0 THEN share_best_ci_low / share_all END,
               CASE WHEN share_all > 0 THEN share_best_ci_high / share_all END,
               points::DOUBLE, is_low_sample
        FROM {sources.table("icp_profile")}
        -- A bin without accounts has no lift to show.
        WHERE as_of_date = $as_of AND is_scored AND share_all > 0 AND lift IS NOT NULL
        ORDER BY points DESC NULLS LAST, lift DESC, attribute, value
        """,
        {"as_of": as_of},
    ).fetchall()
    return [ProfileValue(*row) for row in rows]


def tier_outcomes(sources: ReportSources, as_of: date) -> list[TierOutcome]:
    """Deals, customers and revenue retention of each tier's accounts, as of ``as_of``."""
    rows = sources.con.execute(
        f"""
        SELECT scores.fit_tier,
               count(*),
               coalesce(sum(metrics.opportunities_won), 0),
               coalesce(sum(metrics.opportunities_won + metrics.opportunities_lost), 0),
               count(*) FILTER (WHERE list_contains($customer_stages, metrics.lifecycle_stage)),
               count(*) FILTER (WHERE metrics.lifecycle_stage = $current_stage),
               count(*) FILTER (WHERE metrics.mrr_12_months_ago_usd > 0),
               sum(metrics.current_mrr_usd) FILTER (WHERE metrics.mrr_12_months_ago_usd > 0),
               sum(metrics.mrr_12_months_ago_usd) FILTER (WHERE metrics.mrr_12_months_ago_usd > 0)
        FROM {sources.table("account_fit_score_history")} AS scores
        LEFT JOIN {sources.table("fct_account_metrics")} AS metrics
            ON metrics.account_id = scores.account_id
           AND metrics.as_of_date = scores.as_of_date
        WHERE scores.as_of_date = $as_of
        GROUP BY scores.fit_tier
        """,
        {
            "as_of": as_of,
            "customer_stages": list(CUSTOMER_STAGES),
            "current_stage": CURRENT_CUSTOMER_STAGE,
        },
    ).fetchall()
    by_tier = {row[0]: TierOutcome(*row) for row in rows}
    return [by_tier[tier] for tier in TIERS if tier in by_tier]


def anti_icp_reasons(sources: ReportSources, as_of: date) -> list[tuple[str, int]]:
    """Each anti-ICP reason and the accounts it flags (an account may have several)."""
    return sources.con.execute(
        f"""
        SELECT reason, count(*) AS accounts
        FROM (SELECT unnest(anti_icp_reasons) AS reason
              FROM {sources.table("account_fit_score_history")}
              WHERE as_of_date = $as_of AND is_anti_icp)
        GROUP BY reason ORDER BY accounts DESC, reason
        """,
        {"as_of": as_of},
    ).fetchall()


def score_histogram(sources: ReportSources, as_of: date, bin_points: int = 5) -> list[ScoreBin]:
    """Accounts per ``bin_points``-wide score bin (0-100) and tier, counted in DuckDB."""
    rows = sources.con.execute(
        f"""
        SELECT least(floor(fit_score / $width), $last_bin) AS bin, fit_tier, count(*)
        FROM {sources.table("account_fit_score_history")}
        WHERE as_of_date = $as_of
        GROUP BY ALL ORDER BY bin, fit_tier
        """,
        {"as_of": as_of, "width": bin_points, "last_bin": 100 // bin_points - 1},
    ).fetchall()
    return [
        ScoreBin(low=b * bin_points, high=(b + 1) * bin_points, tier=tier, accounts=n)
        for b, tier, n in rows
    ]


def validation_rows(sources: ReportSources, as_of: date) -> dict[str, ValidationRow]:
    """The rows of ``marts.icp_validation`` for ``as_of``, by measure."""
    rows = sources.con.execute(
        f"SELECT measure, value, threshold, status, coalesce(detail, '') "
        f"FROM {sources.table('icp_validation')} WHERE as_of_date = $as_of ORDER BY measure",
        {"as_of": as_of},
    ).fetchall()
    return {row[0]: ValidationRow(*row) for row in rows}


def calibration(validation: dict[str, ValidationRow]) -> list[CalibrationBin]:
    """The out-of-fold calibration quintiles (observed share in ``value``, mean predicted
    probability in ``threshold``)."""
    bins = [
        CalibrationBin(int(measure.removeprefix(CALIBRATION_PREFIX)), row.threshold, row.value)
        for measure, row in validation.items()
        if measure.startswith(CALIBRATION_PREFIX)
        and measure.removeprefix(CALIBRATION_PREFIX).isdigit()
    ]
    return sorted(bins, key=lambda b: b.quintile)


def auc_estimates(validation: dict[str, ValidationRow]) -> list[AucEstimate]:
    """Every candidate model's out-of-fold AUC with the interval its row states."""
    estimates = []
    for measure, row in validation.items():
        if not measure.startswith(AUC_CANDIDATE_PREFIX) or row.value is None:
            continue
        model = measure.removeprefix(AUC_CANDIDATE_PREFIX)
        if model == "baseline":  # the same as out_of_sample_auc_one_hot_logistic
            continue
        interval = _INTERVAL.search(row.detail)
        low, high = (float(interval[1]), float(interval[2])) if interval else (None, None)
        estimates.append(AucEstimate(model, row.value, low, high))
    return sorted(estimates, key=lambda e: -e.auc)


def cohort_curves(sources: ReportSources, as_of: date, attribute: str) -> list[CohortCurve]:
    """Retention curves of each value of ``attribute`` (``fct_segment_cohorts``, pooled)."""
    rows = sources.con.execute(
        f"""
        SELECT segment_value, customers,
               customers_eligible_3m, logo_retention_3m,
               customers_eligible_6m, logo_retention_6m,
               customers_eligible_12m, logo_retention_12m, low_sample
        FROM {sources.table("fct_segment_cohorts")}
        WHERE as_of_date = $as_of AND is_all_cohorts AND segment_attribute = $attribute
          AND customers > 0
        ORDER BY customers DESC, segment_value
        """,
        {"as_of": as_of, "attribute": attribute},
    ).fetchall()
    return [
        CohortCurve(
            segment_value=value,
            customers=customers,
            points=[(3, r3, e3), (6, r6, e6), (12, r12, e12)],
            is_low_sample=bool(low_sample),
        )
        for value, customers, e3, r3, e6, r6, e12, r12, low_sample in rows
    ]


def cohort_attributes(sources: ReportSources, as_of: date) -> list[str]:
    """The segment attributes ``fct_segment_cohorts`` holds for ``as_of``."""
    rows = sources.con.execute(
        f"SELECT DISTINCT segment_attribute FROM {sources.table('fct_segment_cohorts')} "
        "WHERE as_of_date = $as_of ORDER BY 1",
        {"as_of": as_of},
    ).fetchall()
    return [row[0] for row in rows]


def quarantine_counts(sources: ReportSources) -> list[QuarantineCount]:
    """Rows quarantined per file and rule (empty when the quarantine is not available)."""
    if sources.quarantine_table is None:
        return []
    rows = sources.con.execute(
        f"SELECT entity, source_file, rule, count(*) FROM {sources.quarantine_table} "
        "GROUP BY ALL ORDER BY 4 DESC, 2, 3"
    ).fetchall()
    return [QuarantineCount(*row) for row in rows]


def comparison_dates(dates: list[date], as_of: date) -> tuple[date | None, date | None]:
    """The previous scored date and the one about 90 days before ``as_of`` (None if none)."""
    earlier = [d for d in dates if d < as_of]
    previous = max(earlier, default=None)
    quarter_ago = [d for d in earlier if d <= as_of - timedelta(days=RETRO_LATEST_DAYS)]
    target = as_of - timedelta(days=RETRO_DAYS)
    about_90 = min(quarter_ago, key=lambda d: (abs((d - target).days), d), default=None)
    return previous, about_90


def score_psi(sources: ReportSources, earlier: date, later: date) -> float:
    """Population stability index of the fit-score distribution between two dates.

    Ten buckets of ten points, shares floored at 1e-4, summed in bucket order: the
    definition of the run's own ``score_psi_vs_previous_run``.
    """
    return sources.con.execute(
        f"""
        WITH bucketed AS (
            SELECT as_of_date = $later AS is_later,
                   least(floor(fit_score / $width), 100 / $width - 1) AS bucket
            FROM {sources.table("account_fit_score_history")}
            WHERE as_of_date IN ($earlier, $later)
        ),
        totals AS (
            SELECT count(*) FILTER (WHERE is_later) AS later_n,
                   count(*) FILTER (WHERE NOT is_later) AS earlier_n
            FROM bucketed
        ),
        shares AS (
            SELECT bucket,
                   greatest(count(*) FILTER (WHERE is_later) / any_value(later_n), $floor)
                       AS later_share,
                   greatest(count(*) FILTER (WHERE NOT is_later) / any_value(earlier_n), $floor)
                       AS earlier_share
            FROM bucketed CROSS JOIN totals GROUP BY bucket
        )
        SELECT coalesce(list_sum(list((later_share - earlier_share)
                                      * ln(later_share / earlier_share) ORDER BY bucket)), 0)
        FROM shares
        """,
        {"earlier": earlier, "later": later, "width": PSI_BUCKET_POINTS, "floor": PSI_FLOOR},
    ).fetchone()[0]


def icp_membership_moves(
    sources: ReportSources, earlier: date, later: date
) -> tuple[int, int, int]:
    """Accounts that entered, left and stayed in the ICP between two dates (an account new
    since ``earlier`` that is in the ICP counts as entered)."""
    history = sources.table("account_fit_score_history")
    return sources.con.execute(
        f"""
        WITH membership AS (
            SELECT account_id,
                   bool_or(as_of_date = $earlier AND is_icp) AS was_icp,
                   bool_or(as_of_date = $later AND is_icp) AS is_icp_now
            FROM (SELECT account_id, as_of_date,
                         list_contains($icp_tiers, fit_tier) AND NOT is_anti_icp AS is_icp
                  FROM {history} WHERE as_of_date IN ($earlier, $later))
            GROUP BY account_id
        )
        SELECT count(*) FILTER (WHERE is_icp_now AND NOT was_icp),
               count(*) FILTER (WHERE was_icp AND NOT is_icp_now),
               count(*) FILTER (WHERE was_icp AND is_icp_now)
        FROM membership
        """,
        {"earlier": earlier, "later": later, "icp_tiers": list(ICP_TIERS)},
    ).fetchone()


def retro(
    sources: ReportSources,
    label: str,
    earlier: date,
    later: date,
    profile_now: list[ProfileValue],
    movers: int = 8,
) -> RetroComparison:
    """How the ICP profile, tier shares and score distribution moved from ``earlier``."""
    profile_then = profile_values(sources, earlier)
    icp_now = {v.key: v for v in profile_now if v.is_icp}
    icp_then = {v.key: v for v in profile_then if v.is_icp}
    points_then = {v.key: v.points for v in profile_then if v.points is not None}
    moved = sorted(
        (
            (value, points_then[value.key])
            for value in profile_now
            if value.points is not None
            and value.key in points_then
            and abs(value.points - points_then[value.key]) >= 0.01
        ),
        key=lambda pair: -abs(pair[0].points - pair[1]),
    )
    entered, left, stayed = icp_membership_moves(sources, earlier, later)
    return RetroComparison(
        label=label,
        earlier=run_overview(sources, earlier),
        psi=score_psi(sources, earlier, later),
        accounts_entered_icp=entered,
        accounts_left_icp=left,
        accounts_stayed_icp=stayed,
        values_entered=[v for k, v in icp_now.items() if k not in icp_then],
        values_left=[v for k, v in icp_then.items() if k not in icp_now],
        points_moved=moved[:movers],
        earlier_histogram=score_histogram(sources, earlier, PSI_BUCKET_POINTS),
    )
