"""A load that reads only what changed gives the raw tables a rebuild gives.

Each step changes the landing zone the way a company's does (a new nightly export, a
backfill of an earlier date, a re-sent file, a new fx rate, a value map added) and compares
the warehouse loaded step by step with one loaded from nothing on the same landing zone:
every raw table in its stored order, the quarantine, the per-file counts and the warnings."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.ledger import LEDGER_TABLE, STATE_TABLE
from dagster_project.ingest.loader import QUARANTINE_TABLE, ingest_entity
from tests.landing_files import write_csv

CONTRACTS = load_contracts()
ENTITIES = ("reference/fx_rates", "crm/accounts", "crm/activities", "billing/subscriptions")
DAY_1, DAY_2, DAY_3 = "2026-11-01", "2026-11-02", "2026-11-03"
ACCOUNT_HEADER = ["account_id", "account_name", "employee_count", "created_at", "updated_at"]
ACTIVITY_HEADER = [
    "activity_id",
    "account_id",
    "occurred_at",
    "activity_type",
    "note",
    "updated_at",
]
SUBSCRIPTION_HEADER = [
    "subscription_id",
    "account_id",
    "mrr",
    "currency",
    "started_at",
    "status",
    "updated_at",
]


def _account(account_id: str, name: str, day: str) -> list[str]:
    return [account_id, name, "40", "2026-01-01", f"{day}T08:00:00Z"]


def _first_export(landing: Path) -> None:
    write_csv(
        landing / "fx_rates.csv",
        ["date", "currency", "usd_per_unit"],
        [["2026-01-01", "EUR", "1.10"]],
    )
    write_csv(
        landing / DAY_1 / "crm" / "accounts.csv",
        ACCOUNT_HEADER,
        [
            _account("A1", "One", DAY_1),
            _account("A2", "Two", DAY_1),
            ["A3", "Bad size", "many", "2026-01-01", "2026-11-01"],
        ],
    )
    write_csv(
        landing / DAY_1 / "crm" / "activities.csv",
        ACTIVITY_HEADER,
        [
            ["T1", "A1", "2026-10-30", "webinar", "kept", "2026-11-01"],
            ["T2", "A9", "2026-10-30", "meeting", "orphan until A9 is exported", ""],
            ["T3", "A2", "2026-10-30", "mainframe", "bad enum", "2026-11-01"],
            ["T4", "A9", "2026-10-31", "meeting", "duplicate key and an orphan", ""],
            ["T4", "A1", "2026-10-31", "meeting", "duplicate key", "2026-11-01"],
            ["T5", "A2", "2026-10-31", "demo_request", "kept", "2026-11-01"],
        ],
    )
    write_csv(
        landing / DAY_1 / "billing" / "subscriptions.csv",
        SUBSCRIPTION_HEADER,
        [
            ["S1", "A1", "100", "EUR", "2026-02-01", "active", DAY_1],
            ["S2", "A9", "50", "USD", "2026-03-01", "active", DAY_1],
        ],
    )


def _second_export(landing: Path) -> None:
    """A9 arrives: its orphan activity and subscription of day 1 now have a parent."""
    write_csv(
        landing / DAY_2 / "crm" / "accounts.csv",
        ACCOUNT_HEADER,
        [_account("A9", "Nine", DAY_2), _account("A2", "Two renamed", DAY_2)],
    )
    write_csv(
        landing / DAY_2 / "crm" / "activities.csv",
        ACTIVITY_HEADER,
        [["T6", "A9", "2026-11-02", "email_open", "new", "2026-11-02"]],
    )


def _third_export(landing: Path) -> None:
    """An export without the optional column ``updated_at`` (nor the extra ``note``)."""
    write_csv(
        landing / DAY_3 / "crm" / "activities.csv",
        ACTIVITY_HEADER[:4],
        [["T7", "A1", "2026-11-03", "meeting"]],
    )


def _ingest(warehouse: Path, landing: Path, as_of: str) -> dict:
    with duckdb.connect(str(warehouse)) as con:
        return {
            name: ingest_entity(con, CONTRACTS[name], landing, date.fromisoformat(as_of))
            for name in ENTITIES
        }


def _snapshot(warehouse: Path) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {
            name: con.execute(f"SELECT * FROM raw.{CONTRACTS[name].raw_table}").fetchall()
            for name in ENTITIES
        }
        tables["quarantine"] = con.execute(
            f"SELECT * EXCLUDE (quarantined_at) FROM {QUARANTINE_TABLE} ORDER BY ALL"
        ).fetchall()
    return tables


def _outcome(results: dict) -> dict:
    return {
        name: (result.files, dict(result.quarantined_by_rule), result.warnings)
        for name, result in results.items()
    }


def _assert_same_as_a_rebuild(
    tmp_path: Path, warehouse: Path, landing: Path, as_of: str, results: dict
) -> None:
    fresh = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}.duckdb"
    fresh_results = _ingest(fresh, landing, as_of)
    assert _snapshot(warehouse) == _snapshot(fresh)
    assert _outcome(results) == _outcome(fresh_results)
    for result in results.values():
        assert all(f.reconciles for f in result.files)


@pytest.fixture()
def landing(tmp_path):
    root = tmp_path / "landing"
    _first_export(root)
    return root


def test_each_night_reads_only_new_exports_and_matches_a_rebuild(tmp_path, landing):
    warehouse = tmp_path / "warehouse.duckdb"
    first = _ingest(warehouse, landing, DAY_1)
    assert all(result.plan.rebuild for result in first.values())
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_1, first)

    again = _ingest(warehouse, landing, DAY_1)
    assert not any(result.plan.changes_anything for result in again.values())
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_1, again)

    _second_export(landing)
    second = _ingest(warehouse, landing, DAY_2)
    accounts, activities = second["crm/accounts"].plan, second["crm/activities"].plan
    assert (accounts.rebuild, accounts.read) == (False, (f"{DAY_2}/crm/accounts.csv",))
    assert activities.read == (f"{DAY_2}/crm/activities.csv",)
    assert activities.recheck == (f"{DAY_1}/crm/activities.csv",)
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_2, second)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # T2 found its parent; T4 stays quarantined as a duplicate key within its file.
        loaded = con.execute("SELECT activity_id FROM raw.crm__activities ORDER BY 1").fetchall()
        assert [row[0] for row in loaded] == ["T1", "T2", "T5", "T6"]

    _third_export(landing)
    third = _ingest(warehouse, landing, DAY_3)
    assert any(
        "optional column(s) updated_at missing" in w for w in third["crm/activities"].warnings
    )
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_3, third)


def test_a_backfill_of_an_earlier_date_and_a_resent_file_match_a_rebuild(tmp_path, landing):
    warehouse = tmp_path / "warehouse.duckdb"
    _second_export(landing)
    _ingest(warehouse, landing, DAY_2)

    backfill = _ingest(warehouse, landing, DAY_1)
    # Accounts lost the day-2 file: its children are rebuilt, not patched.
    assert backfill["crm/accounts"].plan.drop == (f"{DAY_2}/crm/accounts.csv",)
    assert backfill["crm/activities"].plan.rebuild
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_1, backfill)

    forward = _ingest(warehouse, landing, DAY_2)
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_2, forward)

    # The day-1 activities are sent again with a row fixed, in place.
    resent = landing / DAY_1 / "crm" / "activities.csv"
    resent.write_text(resent.read_text().replace("mainframe", "meeting"))
    os.utime(resent, ns=(resent.stat().st_atime_ns, resent.stat().st_mtime_ns + 1_000_000_000))
    after_resend = _ingest(warehouse, landing, DAY_2)
    plan = after_resend["crm/activities"].plan
    assert f"{DAY_1}/crm/activities.csv" in plan.read and not plan.rebuild
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_2, after_resend)


def test_a_new_fx_rate_or_value_map_reloads_what_it_changes(tmp_path, landing):
    warehouse = tmp_path / "warehouse.duckdb"
    _ingest(warehouse, landing, DAY_1)

    write_csv(
        landing / "fx_rates.csv",
        ["date", "currency", "usd_per_unit"],
        [["2026-01-01", "EUR", "1.10"], ["2026-06-01", "EUR", "1.20"]],
    )
    after_fx = _ingest(warehouse, landing, DAY_1)
    # Amounts in a currency convert with the new rate: whoever has a currency is rebuilt.
    assert after_fx["billing/subscriptions"].plan.rebuild
    assert after_fx["crm/accounts"].plan.rebuild
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_1, after_fx)

    write_csv(
        landing / "value_maps" / "activity_types.csv",
        ["entity", "column", "value", "maps_to"],
        [["crm/activities", "activity_type", "mainframe", "meeting"]],
    )
    after_map = _ingest(warehouse, landing, DAY_1)
    assert after_map["crm/activities"].plan.rebuild
    assert not after_map["crm/accounts"].plan.changes_anything
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_1, after_map)


def test_a_failed_load_leaves_the_ledger_as_it_was(tmp_path, landing):
    warehouse = tmp_path / "warehouse.duckdb"
    _ingest(warehouse, landing, DAY_1)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        before = con.execute(f"SELECT * FROM {LEDGER_TABLE} ORDER BY ALL").fetchall()
        states = con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY ALL").fetchall()
    _second_export(landing)
    (landing / DAY_2 / "crm" / "activities.csv").write_text("activity_id,occurred_at\nT9,x\n")
    with pytest.raises(Exception, match="account_id"):
        _ingest(warehouse, landing, DAY_2)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(
            f"SELECT * FROM {LEDGER_TABLE} WHERE entity <> 'crm/accounts' ORDER BY ALL"
        ).fetchall() == [row for row in before if row[0] != "crm/accounts"]
        assert len(con.execute(f"SELECT * FROM {STATE_TABLE}").fetchall()) == len(states)
    (landing / DAY_2 / "crm" / "activities.csv").unlink()
    _second_export(landing)
    recovered = _ingest(warehouse, landing, DAY_2)
    _assert_same_as_a_rebuild(tmp_path, warehouse, landing, DAY_2, recovered)
