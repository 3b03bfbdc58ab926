"""fct_account_metrics on a hand-written landing zone, every metric worked out by hand.

Two exports: a snapshot dated 2026-01-31 and a delta dated 2026-03-31. The whole pipeline
(ingest -> dbt -> scoring, through Dagster) runs as of LATE = 2026-03-31 and then, on the same
warehouse, as a backfill as of EARLY = 2026-01-31. The backfill must give the metrics as they
stood on EARLY (the later export's update, deletion and events unseen) and leave LATE's rows
as they were.

Accounts:

- STEADY: 100 USD a month since 2025-02-01, invoiced on the 1st, paid 2 days later.
- EXPAND: 100 USD from 2025-03-01, 150 USD from 2026-02-01 (the later export updates the
  subscription).
- CHURN90: 200 USD from 2025-11-01, canceled 2026-01-15 (75 days), the last invoice
  uncollectible.
- PROSPECT: one lost deal; the later export updates open roles, funding and size.
- EUR: billed 100 EUR a month from 2025-12-01; 1.1 USD per EUR, 1.2 from 2026-02-01.
- DELETED: a prospect deleted in the later export.

Month arithmetic: tenure is whole months (2025-02-01 -> 2026-03-31 is 13); "12 months ago" is
the calendar month 12 before the as-of month; the last 90 days as of D start on D - 89.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from dagster_project.run import run_pipeline
from tests.conftest import settings_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT, DELTA = "2026-01-31", "2026-03-31"
EARLY, LATE = date(2026, 1, 31), date(2026, 3, 31)


def _ts(day: str, time: str = "00:00:00") -> str:
    return f"{day}T{time}Z"


def _account(account_id: str, updated_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "account_name": account_id.title(),
        "created_at": _ts("2025-01-01"),
        "updated_at": _ts(updated_at),
        **extra,
    }


def _monthly_invoices(
    account_id: str, subscription_id: str, months: list[str], amount: float, **extra: Any
) -> list[dict[str, Any]]:
    """One invoice on the 1st of each month (YYYY-MM), paid two days later."""
    return [
        {
            "invoice_id": f"INV-{account_id}-{month}",
            "account_id": account_id,
            "subscription_id": subscription_id,
            "issued_at": _ts(f"{month}-01"),
            "amount": amount,
            "status": "paid",
            "paid_at": _ts(f"{month}-03"),
            "updated_at": _ts(f"{month}-03"),
            **extra,
        }
        for month in months
    ]


def _months(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


LANDING: dict[str, dict[str, list[dict[str, Any]]]] = {
    SNAPSHOT: {
        "crm/accounts": [
            _account("STEADY", "2025-01-01", employee_count=300, country="US"),
            _account("EXPAND", "2025-01-01", employee_count=120, country="CA"),
            _account("CHURN90", "2025-01-01", employee_count=10, country="GB"),
            _account(
                "PROSPECT",
                "2025-07-01",
                employee_count=50,
                open_roles=2,
                funding_stage="seed",
                last_funding_at="2025-06-30",
            ),
            _account(
                "EUR",
                "2025-01-01",
                employee_count=40,
                country="DE",
                annual_revenue=1_000_000,
                currency="EUR",
            ),
            _account("DELETED", "2025-01-01"),
        ],
        "crm/opportunities": [
            {
                "opportunity_id": "OPP-STEADY",
                "account_id": "STEADY",
                "created_at": _ts("2024-12-01"),
                "closed_at": _ts("2025-01-31"),
                "stage": "won",
                "amount": 1200,
                "updated_at": _ts("2025-01-31"),
            },
            {
                "opportunity_id": "OPP-CHURN90",
                "account_id": "CHURN90",
                "created_at": _ts("2025-10-01"),
                "closed_at": _ts("2025-10-31"),
                "stage": "won",
                "amount": 2400,
                "updated_at": _ts("2025-10-31"),
            },
            {
                "opportunity_id": "OPP-PROSPECT",
                "account_id": "PROSPECT",
                "created_at": _ts("2025-06-01"),
                "closed_at": _ts("2025-07-01"),
                "stage": "lost",
                "lost_reason": "price",
                "updated_at": _ts("2025-07-01"),
            },
        ],
        "crm/activities": [
            {
                "activity_id": "ACT-1",
                "account_id": "PROSPECT",
                "occurred_at": _ts("2026-01-20"),
                "activity_type": "webinar",
                "updated_at": _ts("2026-01-20"),
            },
        ],
        "billing/subscriptions": [
            {
                "subscription_id": "SUB-STEADY",
                "account_id": "STEADY",
                "mrr": 100,
                "started_at": _ts("2025-02-01"),
                "status": "active",
                "updated_at": _ts("2025-02-01"),
            },
            {
                "subscription_id": "SUB-EXPAND",
                "account_id": "EXPAND",
                "mrr": 100,
                "started_at": _ts("2025-03-01"),
                "status": "active",
                "updated_at": _ts("2025-03-01"),
            },
            {
                "subscription_id": "SUB-CHURN90",
                "account_id": "CHURN90",
                "mrr": 200,
                "started_at": _ts("2025-11-01"),
                "ended_at": _ts("2026-01-15"),
                "status": "canceled",
                "updated_at": _ts("2026-01-15"),
            },
            {
                "subscription_id": "SUB-EUR",
                "account_id": "EUR",
                "mrr": 100,
                "currency": "EUR",
                "started_at": _ts("2025-12-01"),
                "status": "active",
                "updated_at": _ts("2025-12-01"),
            },
        ],
        "billing/invoices": [
            *_monthly_invoices("STEADY", "SUB-STEADY", _months("2025-02", "2026-01"), 100),
            *_monthly_invoices("EXPAND", "SUB-EXPAND", _months("2025-03", "2026-01"), 100),
            *_monthly_invoices("CHURN90", "SUB-CHURN90", ["2025-11", "2025-12"], 200),
            {
                "invoice_id": "INV-CHURN90-2026-01",
                "account_id": "CHURN90",
                "subscription_id": "SUB-CHURN90",
                "issued_at": _ts("2026-01-01"),
                "amount": 200,
                "status": "uncollectible",
                "updated_at": _ts("2026-01-15"),
            },
            *_monthly_invoices("EUR", "SUB-EUR", ["2025-12", "2026-01"], 100, currency="EUR"),
        ],
        "support/tickets": [
            {
                "ticket_id": "TKT-STEADY-1",
                "account_id": "STEADY",
                "created_at": _ts("2025-06-01", "10:00:00"),
                "solved_at": _ts("2025-06-01", "14:00:00"),
                "priority": "normal",
                "status": "solved",
                "csat": 5,
                "updated_at": _ts("2025-06-01", "14:00:00"),
            },
            {
                "ticket_id": "TKT-CHURN90-1",
                "account_id": "CHURN90",
                "created_at": _ts("2025-12-10"),
                "priority": "urgent",
                "status": "open",
                "updated_at": _ts("2025-12-10"),
            },
        ],
    },
    DELTA: {
        "crm/accounts": [
            _account(
                "PROSPECT",
                "2026-03-01",
                employee_count=150,
                open_roles=7,
                funding_stage="series_a",
                last_funding_at="2026-02-28",
            ),
            {**_account("DELETED", "2026-03-01"), "is_deleted": "true"},
        ],
        "crm/opportunities": [],
        "crm/activities": [
            {
                "activity_id": "ACT-2",
                "account_id": "PROSPECT",
                "occurred_at": _ts("2026-03-10"),
                "activity_type": "meeting",
                "updated_at": _ts("2026-03-10"),
            },
            {
                "activity_id": "ACT-3",
                "account_id": "PROSPECT",
                "occurred_at": _ts("2026-03-31", "18:00:00"),
                "activity_type": "email_open",
                "updated_at": _ts("2026-03-31", "18:00:00"),
            },
        ],
        "billing/subscriptions": [
            {
                "subscription_id": "SUB-EXPAND",
                "account_id": "EXPAND",
                "mrr": 150,
                "started_at": _ts("2025-03-01"),
                "status": "active",
                "updated_at": _ts("2026-02-01"),
            },
        ],
        "billing/invoices": [
            *_monthly_invoices("STEADY", "SUB-STEADY", ["2026-02", "2026-03"], 100),
            *_monthly_invoices("EXPAND", "SUB-EXPAND", ["2026-02", "2026-03"], 150),
            *_monthly_invoices("EUR", "SUB-EUR", ["2026-02"], 100, currency="EUR"),
            {
                "invoice_id": "INV-EUR-2026-03",
                "account_id": "EUR",
                "subscription_id": "SUB-EUR",
                "issued_at": _ts("2026-03-01"),
                "amount": 100,
                "currency": "EUR",
                "status": "open",
                "updated_at": _ts("2026-03-01"),
            },
        ],
        "support/tickets": [
            {
                "ticket_id": "TKT-STEADY-2",
                "account_id": "STEADY",
                "created_at": _ts("2026-03-10"),
                "solved_at": _ts("2026-03-11"),
                "priority": "urgent",
                "status": "solved",
                "csat": 3,
                "updated_at": _ts("2026-03-11"),
            },
        ],
    },
}

FX_RATES = [
    {"date": "2025-01-01", "currency": "EUR", "usd_per_unit": 1.1},
    {"date": "2026-02-01", "currency": "EUR", "usd_per_unit": 1.2},
]

# What every metric is for an account with nothing: counts 0, the rest NULL.
NOTHING: dict[str, Any] = {
    "lifecycle_stage": "prospect",
    "first_won_date": None,
    "customer_since_at": None,
    "tenure_months": None,
    "current_mrr_usd": 0.0,
    "current_arr_usd": 0.0,
    "lifetime_revenue_usd": 0.0,
    "mrr_12_months_ago_usd": 0.0,
    "nrr_12m": None,
    "grr_12m": None,
    "expansion_mrr_usd": 0.0,
    "cumulative_mrr_usd": 0.0,
    "is_churned": False,
    "churned_at": None,
    "months_to_churn": None,
    "is_churned_within_90_days": False,
    "opportunities_won": 0,
    "opportunities_lost": 0,
    "opportunities_open": 0,
    "win_rate": None,
    "median_sales_cycle_days": None,
    "tickets_total": 0,
    "tickets_last_90_days": 0,
    "urgent_tickets": 0,
    "tickets_per_month": None,
    "tickets_per_1k_mrr_usd": None,
    "urgent_ticket_share": None,
    "median_resolution_hours": None,
    "avg_csat": None,
    "csat_responses": 0,
    "invoices_issued": 0,
    "invoices_failed": 0,
    "payment_failure_rate": None,
    "activities_last_30_days": 0,
    "activities_last_90_days": 0,
    "days_since_last_funding": None,
    "open_roles": None,
    # The fixture has no churn events, product usage or NPS: those facts are NULL for all.
    "churn_reason": None,
    "usage_active_days_last_30_days": None,
    "usage_active_days_last_90_days": None,
    "features_used_last_90_days": None,
    "usage_trend": None,
    "last_usage_date": None,
    "nps_responses": None,
    "avg_nps_score": None,
    "net_promoter_score": None,
}


def _steady(as_of: date) -> dict[str, Any]:
    if as_of == LATE:
        # 14 invoices of 100 (2025-02 .. 2026-03), all paid by 2026-03-03.
        # Tickets: 4 h (csat 5) and 24 h (urgent, csat 3, created 2026-03-10: in the last 90 d).
        return {
            "tenure_months": 13,  # 2025-02-01 -> 2026-03-31
            "lifetime_revenue_usd": 1400.0,
            "cumulative_mrr_usd": 1400.0,  # 14 months of 100
            "mrr_12_months_ago_usd": 100.0,  # 2025-03
            "nrr_12m": 1.0,  # 100 / 100
            "grr_12m": 1.0,
            "tickets_total": 2,
            "tickets_last_90_days": 1,
            "urgent_tickets": 1,
            "tickets_per_month": 2 / 13,
            "tickets_per_1k_mrr_usd": 1000 * 2 / 1400,
            "urgent_ticket_share": 0.5,
            "median_resolution_hours": 14.0,  # (4 + 24) / 2
            "avg_csat": 4.0,
            "csat_responses": 2,
            "invoices_issued": 14,
        }
    # As of 2026-01-31: 12 invoices (2025-02 .. 2026-01); 2025-01 had no MRR: NRR NULL.
    return {
        "tenure_months": 11,  # 2025-02-01 -> 2026-01-31
        "lifetime_revenue_usd": 1200.0,
        "cumulative_mrr_usd": 1200.0,
        "tickets_total": 1,
        "tickets_per_month": 1 / 11,
        "tickets_per_1k_mrr_usd": 1000 / 1200,
        "urgent_ticket_share": 0.0,
        "median_resolution_hours": 4.0,
        "avg_csat": 5.0,
        "csat_responses": 1,
        "invoices_issued": 12,
    }


def _expected(as_of: date) -> dict[str, dict[str, Any]]:
    late = as_of == LATE
    steady = {
        **NOTHING,
        "lifecycle_stage": "customer",
        "first_won_date": date(2025, 1, 31),
        "customer_since_at": datetime(2025, 2, 1),
        "current_mrr_usd": 100.0,
        "current_arr_usd": 1200.0,
        "opportunities_won": 1,
        "win_rate": 1.0,
        "median_sales_cycle_days": 61.0,  # 2024-12-01 -> 2025-01-31
        "payment_failure_rate": 0.0,
        **_steady(as_of),
    }
    expand = {
        **NOTHING,
        "lifecycle_stage": "customer",
        "customer_since_at": datetime(2025, 3, 1),
        "tickets_per_month": 0.0,
        "tickets_per_1k_mrr_usd": 0.0,
        "payment_failure_rate": 0.0,
        **(
            {
                # 100 a month 2025-03 .. 2026-01 (11), 150 in 2026-02 (+50) and 2026-03.
                "tenure_months": 12,
                "current_mrr_usd": 150.0,
                "current_arr_usd": 1800.0,
                "lifetime_revenue_usd": 1400.0,  # 11 * 100 + 2 * 150
                "cumulative_mrr_usd": 1400.0,
                "mrr_12_months_ago_usd": 100.0,  # 2025-03
                "nrr_12m": 1.5,
                "grr_12m": 1.0,
                "expansion_mrr_usd": 50.0,
                "invoices_issued": 13,
            }
            if late
            else {
                # The update to 150 is in the later export: still 100; 2025-01 had no MRR.
                "tenure_months": 10,  # 2025-03-01 -> 2026-01-31
                "current_mrr_usd": 100.0,
                "current_arr_usd": 1200.0,
                "lifetime_revenue_usd": 1100.0,
                "cumulative_mrr_usd": 1100.0,
                "invoices_issued": 11,
            }
        ),
    }
    churn90 = {
        **NOTHING,
        # Running at the ends of 2025-11 and 2025-12 (200 each), ended 2026-01-15: churn in
        # 2026-01. 75 days from start to end: churned within 90 days.
        "lifecycle_stage": "churned",
        "first_won_date": date(2025, 10, 31),
        "customer_since_at": datetime(2025, 11, 1),
        "tenure_months": 2,
        "lifetime_revenue_usd": 400.0,
        "cumulative_mrr_usd": 400.0,
        "is_churned": True,
        "churned_at": datetime(2026, 1, 15),
        "months_to_churn": 2,
        "is_churned_within_90_days": True,
        "opportunities_won": 1,
        "win_rate": 1.0,
        "median_sales_cycle_days": 30.0,
        "tickets_total": 1,
        "tickets_last_90_days": 0 if late else 1,  # created 2025-12-10
        "urgent_tickets": 1,
        "tickets_per_month": 0.5,  # 1 ticket / 2 months
        "tickets_per_1k_mrr_usd": 2.5,  # 1000 * 1 / 400
        "urgent_ticket_share": 1.0,
        "invoices_issued": 3,
        "invoices_failed": 1,
        "payment_failure_rate": 1 / 3,
    }
    prospect = {
        **NOTHING,
        "opportunities_lost": 1,
        "win_rate": 0.0,
        **(
            {
                "open_roles": 7,
                "days_since_last_funding": 31,  # 2026-02-28 -> 2026-03-31
                "activities_last_30_days": 2,  # 03-10, 03-31
                "activities_last_90_days": 3,  # and 01-20
            }
            if late
            else {
                "open_roles": 2,
                "days_since_last_funding": 215,  # 2025-06-30 -> 2026-01-31
                "activities_last_30_days": 1,
                "activities_last_90_days": 1,
            }
        ),
    }
    eur = {
        **NOTHING,
        "lifecycle_stage": "customer",
        "customer_since_at": datetime(2025, 12, 1),
        # The subscription converts at the rate of its updated_at (2025-12-01: 1.1).
        "current_mrr_usd": 110.0,
        "current_arr_usd": 1320.0,
        "tickets_per_month": 0.0,
        "tickets_per_1k_mrr_usd": 0.0,
        "payment_failure_rate": 0.0,
        **(
            {
                # Invoices at the rate of issued_at: 110, 110, 120 (paid), 120 (open).
                # Months: 110 (new), 110, 120 (+10: the rate moved), 110 (current MRR).
                "tenure_months": 3,
                "lifetime_revenue_usd": 340.0,
                "cumulative_mrr_usd": 450.0,
                "expansion_mrr_usd": 10.0,
                "invoices_issued": 4,
            }
            if late
            else {
                "tenure_months": 1,
                "lifetime_revenue_usd": 220.0,
                "cumulative_mrr_usd": 220.0,
                "invoices_issued": 2,
            }
        ),
    }
    expected = {
        "STEADY": steady,
        "EXPAND": expand,
        "CHURN90": churn90,
        "PROSPECT": prospect,
        "EUR": eur,
    }
    if not late:
        expected["DELETED"] = dict(NOTHING)  # deleted only in the later export
    return expected


def _write_landing(root: Path) -> None:
    for export_date, files in LANDING.items():
        for entity, rows in files.items():
            contract = yaml.safe_load((PROJECT_ROOT / "schemas" / f"{entity}.yaml").read_text())
            columns = list(contract["columns"])
            path = root / export_date / f"{entity}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
    with (root / "fx_rates.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["date", "currency", "usd_per_unit"])
        writer.writeheader()
        writer.writerows(FX_RATES)


def _rows(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _run_through_dbt(settings) -> None:
    """The whole pipeline; every step and blocking check must pass.

    Six accounts are too few to learn an ICP from, so scoring falls back to the rules model
    (and says so in icp_validation) rather than failing.
    """
    summary = run_pipeline(settings)
    assert summary.success, summary.failures
    assert summary.checks_failed == [], summary.checks_failed
    assert summary.rows_quarantined == 0
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        fallback = con.execute(
            "SELECT status, detail FROM marts.icp_validation "
            "WHERE measure = 'learned_model' AND as_of_date = ?",
            [settings.as_of_date],
        ).fetchall()
    assert fallback and fallback[0][0] == "warn" and "rules model" in fallback[0][1]


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    """The pipeline as of LATE, then a backfill as of EARLY on the same warehouse."""
    tmp = tmp_path_factory.mktemp("metrics_fixture")
    _write_landing(tmp / "landing")
    settings = settings_for(tmp / "landing", tmp / "warehouse.duckdb")
    _run_through_dbt(replace(settings, as_of_date=LATE))
    late_rows = _rows(settings.warehouse_path, "SELECT * FROM marts.fct_account_metrics")
    _run_through_dbt(replace(settings, as_of_date=EARLY))
    return settings.warehouse_path, late_rows


def _metrics(warehouse: Path, as_of: date) -> dict[str, dict[str, Any]]:
    rows = _rows(warehouse, "SELECT * FROM marts.fct_account_metrics WHERE as_of_date = ?", [as_of])
    return {row["account_id"]: row for row in rows}


@pytest.mark.parametrize("as_of", [LATE, EARLY], ids=["late", "early_backfill"])
def test_every_metric_matches_the_hand_computed_value(fixture_run, as_of):
    warehouse, _ = fixture_run
    actual = _metrics(warehouse, as_of)
    expected = _expected(as_of)
    assert sorted(actual) == sorted(expected)
    mismatches = []
    for account_id, metrics in expected.items():
        for column, value in metrics.items():
            got = actual[account_id][column]
            same = (
                got == pytest.approx(value, abs=1e-9)
                if isinstance(value, float) and got is not None
                else got == value
            )
            if not same:
                mismatches.append(f"{account_id}.{column}: expected {value!r}, got {got!r}")
    assert not mismatches, "\n".join(mismatches)


def test_expectations_cover_every_metric_column(fixture_run):
    warehouse, _ = fixture_run
    columns = set(_metrics(warehouse, LATE)["STEADY"]) - {"account_id", "as_of_date"}
    assert columns - {"first_won_at"} == set(NOTHING)


def test_backfill_keeps_the_later_date_and_sees_what_stood_then(fixture_run):
    warehouse, late_rows = fixture_run
    after = _rows(warehouse, "SELECT * FROM marts.fct_account_metrics WHERE as_of_date = ?", [LATE])
    key = lambda row: row["account_id"]  # noqa: E731
    assert sorted(after, key=key) == sorted(late_rows, key=key)
    dates = _rows(
        warehouse,
        "SELECT as_of_date, count(*) AS n FROM marts.fct_account_metrics GROUP BY 1 ORDER BY 1",
    )
    assert [(r["as_of_date"], r["n"]) for r in dates] == [(EARLY, 6), (LATE, 5)]
    # dim_accounts_history keeps each date's firmographics: the later export's update is seen
    # on LATE only, and the backfill of EARLY left LATE's rows alone.
    prospect = {
        row["as_of_date"]: (row["employee_count"], row["size_band"])
        for row in _rows(
            warehouse, "SELECT * FROM marts.dim_accounts_history WHERE account_id = 'PROSPECT'"
        )
    }
    assert prospect == {EARLY: (50, "20-99"), LATE: (150, "100-499")}
    current = _rows(warehouse, "SELECT DISTINCT as_of_date FROM marts.dim_accounts")
    assert current == [{"as_of_date": LATE}], "the backfill leaves the current state at LATE"


def test_segment_cohorts_carry_both_dates_and_reconcile(fixture_run):
    warehouse, _ = fixture_run
    cells = _rows(
        warehouse,
        "SELECT * FROM marts.fct_segment_cohorts WHERE segment_attribute = 'region' "
        "AND is_all_cohorts ORDER BY as_of_date, segment_value",
    )
    by_key = {(c["as_of_date"], c["segment_value"]): c for c in cells}
    # As of LATE: STEADY (US) and EXPAND (CA) are north_america customers, both billed in
    # 2025-03: NRR (100 + 150) / (100 + 100) = 1.25, GRR 1.0; logo retention at 12 months
    # 2/2 (EXPAND started 2025-03-01: exactly 12 whole months).
    north_america = by_key[(LATE, "north_america")]
    assert (north_america["accounts"], north_america["customers"]) == (2, 2)
    assert north_america["nrr_12m"] == pytest.approx(1.25)
    assert north_america["grr_12m"] == pytest.approx(1.0)
    assert north_america["logo_retention_12m"] == pytest.approx(1.0)
    assert north_america["median_mrr_usd"] == pytest.approx(125.0)
    assert north_america["low_sample"] is True
    # CHURN90 (GB) and EUR (DE): europe; CHURN90 churned before 3 months, EUR is 3 months in.
    europe = by_key[(LATE, "europe")]
    assert (europe["customers"], europe["customers_eligible_3m"]) == (2, 2)
    assert europe["logo_retention_3m"] == pytest.approx(0.5)
    assert europe["ltv_proxy_usd"] == pytest.approx((400 + 340) / 2)
    # PROSPECT and DELETED have no country; DELETED only as of EARLY.
    assert by_key[(LATE, "unknown")]["accounts"] == 1
    assert by_key[(EARLY, "unknown")]["accounts"] == 2
