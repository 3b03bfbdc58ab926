"""The dbt project on a hand-written raw layer: upserts, deletions, point in time, USD, metrics.

The raw tables are created from the contracts in ``schemas/`` (the same columns, order and
types the ingest writes, plus its lineage columns), filled with a few rows whose outcome is
worked out by hand below, and ``dbt build`` (models, unit tests and data tests) runs twice:
as of 2026-01-15 (only the first export seen) and as of 2026-03-31 (both exports).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from tests.dbt_invocation import project_arguments

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

EARLY = "2026-01-15"
LATE = "2026-03-31"
SNAPSHOT = "2026-01-10"
DELTA = "2026-02-15"

_WAREHOUSE_TYPES = {
    "str": "VARCHAR",
    "Int64": "BIGINT",
    "Float64": "DOUBLE",
    "boolean": "BOOLEAN",
    "datetime64[ns, UTC]": "TIMESTAMP",
}
_LINEAGE = {
    "_export_date": "DATE",
    "_source_file": "VARCHAR",
    "_line_number": "BIGINT",
    "_extra_columns": "VARCHAR",
}


def _raw_columns() -> dict[str, dict[str, str]]:
    """raw table -> {column: warehouse type}, from the contracts, lineage columns last."""
    tables = {}
    for path in sorted(SCHEMAS_DIR.rglob("*.yaml")):
        contract = yaml.safe_load(path.read_text())
        columns = {
            name: _WAREHOUSE_TYPES[spec["dtype"]] for name, spec in contract["columns"].items()
        }
        tables[contract["name"].removeprefix("reference__")] = columns | _LINEAGE
    return tables


def _rows(export_date: str | None, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**row, "_export_date": export_date, "_line_number": line}
        for line, row in enumerate(rows, 1)
    ]


def _ts(value: str) -> str:
    return value if " " in value else f"{value} 00:00:00"


def _account(account_id: str, name: str, updated_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "account_name": name,
        "created_at": _ts("2025-05-01"),
        "updated_at": _ts(updated_at),
        **extra,
    }


# Each comment states what the row should do to the marts.
RAW_ROWS: dict[str, list[dict[str, Any]]] = {
    "crm__accounts": _rows(
        SNAPSHOT,
        _account(
            "A1",
            "Acme",
            "2026-01-09",
            industry=" software",
            employee_count=50,
            country="us",
            tech_stack=" Snowflake ;dbt ;",
            business_model="B2B SaaS",
        ),
        _account("A2", "Beta", "2026-01-09", industry="SOFTWARE"),  # deleted in the delta
        _account(
            "A3",
            "Gamma GmbH",
            "2026-01-09",
            industry="Fin Tech",
            annual_revenue=1000.0,
            currency="EUR",
            country="DE",
        ),
        _account("A4", "Delta", "2026-01-09", employee_count=2000),
        _account("A5", "Epsilon", "2026-01-09", deployment="Cloud", funding_stage="Series_A"),
        _account("A6", "Zeta", "2026-01-09", last_funding_at=_ts("2025-12-31")),
    )
    + _rows(
        DELTA,
        # A later version: the update wins as of LATE, not as of EARLY.
        _account(
            "A1",
            "Acme Corp",
            "2026-02-14",
            industry="Fin-Tech",
            employee_count=250,
            country="us",
            tech_stack=" Snowflake ;dbt ;",
            business_model="B2B SaaS",
        ),
        _account("A2", "Beta", "2026-02-14", is_deleted=True),
        # An account created after LATE in an export before it: not there yet.
        {**_account("A7", "Eta", "2026-02-14"), "created_at": _ts("2026-04-02")},
    ),
    "crm__opportunities": _rows(
        SNAPSHOT,
        {
            "opportunity_id": "O1",
            "account_id": "A1",
            "created_at": _ts("2025-12-01"),
            "stage": "open",
            "updated_at": _ts("2026-01-05"),
        },
        {
            "opportunity_id": "O2",
            "account_id": "A2",
            "created_at": _ts("2025-12-01"),
            "stage": "Open",
            "updated_at": _ts("2026-01-05"),
        },
    )
    + _rows(
        DELTA,
        {
            "opportunity_id": "O1",
            "account_id": "A1",
            "created_at": _ts("2025-12-01"),
            "closed_at": _ts("2026-01-20"),
            "stage": "Won",
            "amount": 6000.0,
            "updated_at": _ts("2026-01-20"),
        },
        # Won, but closed after LATE: still open as of LATE.
        {
            "opportunity_id": "O5",
            "account_id": "A5",
            "created_at": _ts("2026-02-01"),
            "closed_at": _ts("2026-04-15"),
            "stage": "won",
            "updated_at": _ts("2026-02-10"),
        },
        {
            "opportunity_id": "O6",
            "account_id": "A6",
            "created_at": _ts("2026-02-01"),
            "closed_at": _ts("2026-02-05"),
            "stage": "lost",
            "lost_reason": " price ",
            "updated_at": _ts("2026-02-05"),
        },
    ),
    "crm__activities": _rows(
        DELTA,
        {
            "activity_id": "E1",
            "account_id": "A6",
            "occurred_at": _ts("2026-01-05"),
            "activity_type": "webinar",
        },
        {
            "activity_id": "E2",
            "account_id": "A6",
            "occurred_at": _ts("2026-03-20"),
            "activity_type": "Email_Open",
        },
        {
            "activity_id": "E3",
            "account_id": "A6",
            "occurred_at": _ts("2026-03-31 23:30:00"),
            "activity_type": "meeting",
        },
        {
            "activity_id": "E4",
            "account_id": "A6",
            "occurred_at": _ts("2026-04-01"),
            "activity_type": "meeting",
        },  # after LATE: not counted
    ),
    "billing__subscriptions": _rows(
        SNAPSHOT,
        {
            "subscription_id": "S3",
            "account_id": "A3",
            "mrr": 100.0,
            "currency": "EUR",
            "started_at": _ts("2025-12-01"),
            "status": "active",
            "updated_at": _ts("2026-02-10"),
        },
        {
            "subscription_id": "S4",
            "account_id": "A4",
            "mrr": 300.0,
            "started_at": _ts("2025-06-01"),
            "status": "active",
            "updated_at": _ts("2025-06-01"),
        },
    )
    + _rows(
        DELTA,
        {
            "subscription_id": "S1",
            "account_id": "A1",
            "mrr": 500.0,
            "started_at": _ts("2026-02-01"),
            "status": "active",
            "updated_at": _ts("2026-02-01"),
        },
        {
            "subscription_id": "S4",
            "account_id": "A4",
            "mrr": 300.0,
            "started_at": _ts("2025-06-01"),
            "ended_at": _ts("2026-02-01"),
            "status": "canceled",
            "updated_at": _ts("2026-02-01"),
        },
    ),
    "billing__invoices": _rows(
        DELTA,
        # 1000 EUR at the rate of 2026-02-01 (1.2), the latest on or before issued_at.
        {
            "invoice_id": "I1",
            "account_id": "A3",
            "subscription_id": "S3",
            "issued_at": _ts("2026-02-10"),
            "amount": 1000.0,
            "currency": "eur",
            "status": "paid",
            "paid_at": _ts("2026-02-12"),
        },
        # Paid after LATE: not revenue yet.
        {
            "invoice_id": "I2",
            "account_id": "A3",
            "subscription_id": "S3",
            "issued_at": _ts("2026-03-10"),
            "amount": 1000.0,
            "currency": "EUR",
            "status": "paid",
            "paid_at": _ts("2026-04-03"),
        },
        {
            "invoice_id": "I3",
            "account_id": "A4",
            "subscription_id": "S4",
            "issued_at": _ts("2025-07-01"),
            "amount": 300.0,
            "status": "paid",
            "paid_at": _ts("2025-07-02"),
        },
    ),
    "support__tickets": _rows(
        DELTA,
        {
            "ticket_id": "T1",
            "account_id": "A6",
            "created_at": _ts("2025-11-01"),
            "priority": "low",
            "csat": 2,
        },
        {
            "ticket_id": "T2",
            "account_id": "A6",
            "created_at": _ts("2026-03-01"),
            "solved_at": _ts("2026-04-05"),
            "priority": "URGENT",
            "csat": 4,
        },
    ),
    "fx_rates": _rows(
        None,
        {"date": _ts("2026-01-01"), "currency": "EUR", "usd_per_unit": 1.1},
        {"date": _ts("2026-02-01"), "currency": "EUR", "usd_per_unit": 1.2},
        {"date": _ts("2026-03-01"), "currency": "EUR", "usd_per_unit": 1.3},
    ),
}


def _create_raw_layer(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA raw")
        for table, columns in _raw_columns().items():
            column_sql = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
            con.execute(f"CREATE TABLE raw.{table} ({column_sql})")
            for row in RAW_ROWS.get(table, []):
                unknown = set(row) - set(columns)
                assert not unknown, f"{table}: {unknown} not in the contract"
                quoted = ", ".join(f'"{name}"' for name in row)
                placeholders = ", ".join("?" for _ in row)
                con.execute(
                    f"INSERT INTO raw.{table} ({quoted}, _source_file) VALUES ({placeholders}, ?)",
                    [*row.values(), f"{row['_export_date']}/{table}.csv"],
                )


def _dbt_build(as_of: str, target_path: Path, log_path: Path):
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            "build",
            *project_arguments(target_path, log_path),
            "--vars",
            json.dumps({"as_of_date": as_of}),
            # It reads the score history the Python scoring step writes (CHANGES_MODEL in
            # defs/transform/dbt.py, built after scoring); this warehouse has a raw layer only.
            "--exclude",
            "account_fit_score_changes",
        ]
    )
    if result.exception is not None:
        raise result.exception
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in result.result
        if str(r.status) in {"error", "fail"}
    ]
    assert result.success, "dbt build failed:\n" + "\n".join(failures)
    return {r.node.unique_id: str(r.status) for r in result.result}


def _read_marts(warehouse: Path, as_of: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The dim_accounts and fct_account_metrics rows of ``as_of`` by account (both tables keep
    every date built)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = {}
        for table in ("dim_accounts", "fct_account_metrics"):
            cursor = con.execute(
                f"SELECT * FROM marts.{table} WHERE as_of_date = $as_of ORDER BY account_id",
                {"as_of": as_of},
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            marts[table] = {row["account_id"]: row for row in rows}
    return marts


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """dbt build as of EARLY then LATE on one warehouse; the marts and statuses of each."""
    tmp = tmp_path_factory.mktemp("dbt_project")
    warehouse = tmp / "warehouse.duckdb"
    _create_raw_layer(warehouse)
    results = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ICP_WAREHOUSE", str(warehouse))
        for as_of in (EARLY, LATE):
            statuses = _dbt_build(as_of, tmp / f"target_{as_of}", tmp / "logs")
            results[as_of] = {"statuses": statuses, **_read_marts(warehouse, as_of)}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in ("fct_account_metrics", "dim_accounts_history", "dim_accounts"):
            results[f"{table}_rows_per_date"] = dict(
                con.execute(
                    f"SELECT strftime(as_of_date, '%Y-%m-%d'), count(*) FROM marts.{table} "
                    "GROUP BY 1"
                ).fetchall()
            )
    return results


def test_build_runs_unit_tests_and_data_tests(builds):
    statuses = builds[LATE]["statuses"]
    assert any(uid.startswith("unit_test.") for uid in statuses)
    assert sum(uid.startswith("test.") for uid in statuses) >= 50
    # O2 belongs to the deleted account A2: the staging relationship test warns, not fails.
    warned = [uid for uid, status in statuses.items() if status == "warn"]
    assert any("relationships_stg_crm__opportunities" in uid for uid in warned), warned


def test_later_update_wins_and_deleted_account_is_gone(builds):
    accounts = builds[LATE]["dim_accounts"]
    assert sorted(accounts) == ["A1", "A3", "A4", "A5", "A6"]  # A2 deleted, A7 not created yet
    acme = accounts["A1"]
    assert acme["account_name"] == "Acme Corp"
    assert acme["industry"] == "fintech"
    assert acme["employee_count"] == 250
    assert acme["size_band"] == "100-499"
    assert acme["country"] == "US"
    assert acme["tech_stack"] == "snowflake;dbt"
    assert acme["business_model"] == "b2b_saas"
    assert accounts["A4"]["size_band"] == "1000+"
    assert accounts["A6"]["size_band"] == "unknown"
    assert accounts["A5"]["deployment"] == "cloud"
    assert accounts["A5"]["funding_stage"] == "series_a"
    # 1000 EUR at the rate of updated_at 2026-01-09: 1.1 (the latest on or before it).
    assert accounts["A3"]["annual_revenue_usd"] == pytest.approx(1100.0)
    assert accounts["A3"]["industry"] == "fintech"


def test_earlier_as_of_sees_earlier_versions(builds):
    accounts = builds[EARLY]["dim_accounts"]
    assert sorted(accounts) == ["A1", "A2", "A3", "A4", "A5", "A6"]
    assert accounts["A1"]["account_name"] == "Acme"
    assert accounts["A1"]["industry"] == "software"
    assert accounts["A1"]["size_band"] == "20-99"
    assert accounts["A2"]["industry"] == "software"

    metrics = builds[EARLY]["fct_account_metrics"]
    assert metrics["A1"]["lifecycle_stage"] == "open_pipeline"  # won only in the later export
    assert metrics["A1"]["current_mrr_usd"] == 0
    assert metrics["A4"]["lifecycle_stage"] == "customer"  # canceled only in the later export
    assert metrics["A4"]["current_mrr_usd"] == pytest.approx(300.0)
    assert metrics["A6"]["days_since_last_funding"] == 15


def test_both_dates_are_kept_in_the_metrics_and_the_accounts(builds):
    # The EARLY build's rows survive the LATE build (incremental by as_of_date).
    assert builds["fct_account_metrics_rows_per_date"] == {EARLY: 6, LATE: 5}
    assert builds["dim_accounts_history_rows_per_date"] == {EARLY: 6, LATE: 5}
    assert builds["dim_accounts_rows_per_date"] == {LATE: 5}, "the current state is LATE's"


def test_metrics_as_of_late(builds):
    metrics = builds[LATE]["fct_account_metrics"]
    assert sorted(metrics) == sorted(builds[LATE]["dim_accounts"])
    assert {m["as_of_date"].isoformat() for m in metrics.values()} == {LATE}

    acme = metrics["A1"]
    assert acme["lifecycle_stage"] == "customer"
    assert acme["current_mrr_usd"] == pytest.approx(500.0)
    assert acme["opportunities_won"] == 1
    assert acme["opportunities_open"] == 0
    assert acme["first_won_at"].isoformat() == "2026-01-20T00:00:00"
    assert acme["tenure_months"] == 1  # 2026-02-01 -> 2026-03-31

    gamma = metrics["A3"]
    assert gamma["lifecycle_stage"] == "customer"
    assert gamma["current_mrr_usd"] == pytest.approx(120.0)  # 100 EUR at 1.2 (2026-02-10)
    assert gamma["lifetime_revenue_usd"] == pytest.approx(1200.0)  # I2 is paid after LATE

    delta = metrics["A4"]
    assert delta["lifecycle_stage"] == "churned"
    assert delta["is_churned"] is True
    assert delta["churned_at"].isoformat() == "2026-02-01T00:00:00"
    assert delta["current_mrr_usd"] == 0
    assert delta["tenure_months"] == 8  # 2025-06-01 -> churn 2026-02-01
    assert delta["lifetime_revenue_usd"] == pytest.approx(300.0)

    epsilon = metrics["A5"]
    assert epsilon["lifecycle_stage"] == "open_pipeline"  # won, but closed after LATE
    assert (epsilon["opportunities_won"], epsilon["opportunities_open"]) == (0, 1)
    assert epsilon["tenure_months"] is None

    zeta = metrics["A6"]
    assert zeta["lifecycle_stage"] == "prospect"
    assert zeta["opportunities_lost"] == 1
    assert zeta["is_churned"] is False
    assert (zeta["activities_last_30_days"], zeta["activities_last_90_days"]) == (2, 3)
    assert (zeta["tickets_total"], zeta["tickets_last_90_days"], zeta["urgent_tickets"]) == (
        2,
        1,
        1,
    )
    assert zeta["avg_csat"] == pytest.approx(3.0)
    assert zeta["days_since_last_funding"] == 90

    # Counts are zeros, never NULL, for an account with nothing.
    for column in ("tickets_total", "activities_last_30_days", "opportunities_won"):
        assert metrics["A4"][column] == 0
