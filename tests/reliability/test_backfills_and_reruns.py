"""Backfills are point in time, and reruns and backfills are idempotent (issue 6).

Guarantee 3, "reruns are idempotent": running the same date twice, or backfilling a date
again, gives identical tables; history keeps one row per account per date; a backfill of D
touches only D's rows. And a three-date backfill is point in time and equals the same dates
run one by one.

The sample landing zone is copied and three hand-made changes are appended to its daily
exports D1 < D2 < D3 as extra CSV rows, so that each date differs from the one before in a
way a test can name:

* D2 adds an account, ``NEW_ACCOUNT_ID``, that no earlier export knows;
* D2 updates the employee count of an account known since before D1;
* D3 wins an opportunity that is open on D1 and D2.

Two warehouses, each run by ``run_pipeline`` through Dagster, snapshot (warehouse file and
published folder) after each step:

=================  =====================================================================
``backfill``       W1: one run over D1..D3 (what a single-run Dagster backfill launches)
``backfill_again`` W1: D1..D2 backfilled again
``singles``        W2: D1, D2 and D3 run one at a time
``rerun``          W2: D3 run again
=================  =====================================================================

"Identical" compares every row of every table (``warehouse_diff``), floating point exactly,
except the run-time columns (``RUN_TIME_COLUMNS``); "untouched" compares those too.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest

from dagster_project.ingest.landing import export_dates
from dagster_project.publish import DB_FILE, current_parquet_version, published_dir_for
from dagster_project.publish.snapshot import PUBLISHED_DIR_ENV
from dagster_project.run import RunSummary, run_pipeline
from tests.conftest import settings_for
from tests.reliability.warehouse_diff import (
    RUN_TIME_COLUMNS,
    RUN_TIME_MANIFEST_KEYS,
    as_of_dates,
    copy_database,
    parquet_differences,
    query,
    table_differences,
)

pytestmark = pytest.mark.slow

NEW_ACCOUNT_ID = "ACC-9000001"

#: Marts with one set of rows per as_of_date (dbt incremental or replaced per date by scoring).
PER_DATE_TABLES = (
    "marts.dim_accounts_history",
    "marts.fct_account_metrics",
    "marts.fct_segment_cohorts",
    "marts.account_fit_score_history",
    "marts.icp_profile",
    "marts.icp_validation",
    "marts.account_fit_score_changes",
)
#: Marts that hold the current state: the newest as_of_date only.
CURRENT_TABLES = ("marts.dim_accounts", "marts.account_fit_scores")
#: Marts with one row per account per as_of_date.
PER_ACCOUNT_TABLES = (
    "marts.dim_accounts_history",
    "marts.fct_account_metrics",
    "marts.account_fit_score_history",
)
STEPS = ("backfill", "backfill_again", "singles", "rerun")


@dataclass(frozen=True)
class LandingChanges:
    """The hand-made rows appended to the generated daily exports."""

    dates: tuple[date, date, date]
    changed_account_id: str
    employees_before: int
    employees_after: int
    won_opportunity_id: str
    won_account_id: str


@dataclass(frozen=True)
class Snapshot:
    """What a step left: its summary (the last run's) and copies of the warehouse file and
    of the published folder (later runs replace and prune both)."""

    summary: RunSummary
    warehouse: Path
    published: Path

    @property
    def published_db(self) -> Path:
        return self.published / DB_FILE


@dataclass(frozen=True)
class Scenario:
    landing: Path
    changes: LandingChanges
    backfill: Snapshot
    backfill_again: Snapshot
    singles: Snapshot
    rerun: Snapshot

    @property
    def steps(self) -> dict[str, Snapshot]:
        return {step: getattr(self, step) for step in STEPS}


# ---------------------------------------------------------------------------------------------
# The landing zone


def _ts(day: date, time: str) -> str:
    return f"{day.isoformat()}T{time}Z"


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _append_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Append rows to an export CSV in its own column order (missing values empty)."""
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    if not path.read_bytes().endswith(b"\n"):
        raise AssertionError(f"{path} does not end with a newline")
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writerows({column: row.get(column, "") for column in header} for row in rows)


def _latest(landing: Path, entity: str, key: str, as_of: date) -> dict[str, dict[str, str]]:
    """Each key's latest row among the exports dated <= ``as_of`` (latest ``updated_at``, ties
    to the later export), deletions included, values as written."""
    latest: dict[str, tuple[tuple[str, date], dict[str, str]]] = {}
    for export_date in export_dates(landing, as_of):
        for row in _read_rows(landing / export_date.isoformat() / f"{entity}.csv"):
            rank = (row["updated_at"], export_date)
            if row[key] not in latest or rank >= latest[row[key]][0]:
                latest[row[key]] = (rank, row)
    return {row_key: row for row_key, (_, row) in latest.items()}


def _keys_in_export(landing: Path, day: date, entity: str, key: str) -> set[str]:
    return {row[key] for row in _read_rows(landing / day.isoformat() / f"{entity}.csv")}


def _landing_with_changes(sample: Path, landing: Path) -> LandingChanges:
    """Copy ``sample`` to ``landing`` and append the three hand-made changes."""
    shutil.copytree(sample, landing)
    d1, d2, d3 = export_dates(landing)[-3:]
    touched_later = _keys_in_export(landing, d2, "crm/accounts", "account_id") | _keys_in_export(
        landing, d3, "crm/accounts", "account_id"
    )
    accounts_d1 = _latest(landing, "crm/accounts", "account_id", d1)

    # D2: a new account. Firmographics of the planted ICP; any valid values would do.
    _append_rows(
        landing / d2.isoformat() / "crm" / "accounts.csv",
        [
            {
                "account_id": NEW_ACCOUNT_ID,
                "account_name": "Backfill Test Analytics Inc.",
                "domain": "backfill-test.example",
                "industry": "Software",
                "employee_count": "240",
                "annual_revenue": "18000000.00",
                "currency": "USD",
                "country": "US",
                "business_model": "b2b_saas",
                "deployment": "cloud",
                "tech_stack": "snowflake; dbt; looker",
                "funding_stage": "series_b",
                "last_funding_at": _ts(d2.replace(month=6, day=1), "00:00:00"),
                "open_roles": "12",
                "created_at": _ts(d2, "08:00:00"),
                "updated_at": _ts(d2, "08:00:00"),
                "is_deleted": "false",
            }
        ],
    )

    # D2: an existing account, untouched by the generated D2 and D3 exports, grows.
    changed = next(
        row
        for account_id, row in sorted(accounts_d1.items())
        if row["is_deleted"] != "true" and row["employee_count"] and account_id not in touched_later
    )
    before = int(changed["employee_count"])
    after = before + 5000
    _append_rows(
        landing / d2.isoformat() / "crm" / "accounts.csv",
        [{**changed, "employee_count": str(after), "updated_at": _ts(d2, "10:00:00")}],
    )

    # D3: an opportunity open on D1 and D2 is won. Its account is alive on D3 and none of its
    # opportunities change in the generated D2 and D3 exports, so the win is the only change.
    accounts_d3 = _latest(landing, "crm/accounts", "account_id", d3)
    opportunities_d1 = _latest(landing, "crm/opportunities", "opportunity_id", d1)
    busy_accounts = {
        row["account_id"]
        for day in (d2, d3)
        for row in _read_rows(landing / day.isoformat() / "crm" / "opportunities.csv")
    }
    won = next(
        row
        for _, row in sorted(opportunities_d1.items())
        if row["stage"] == "open"
        and row["is_deleted"] != "true"
        and row["account_id"] in accounts_d3
        and accounts_d3[row["account_id"]]["is_deleted"] != "true"
        and row["account_id"] not in busy_accounts | {changed["account_id"], NEW_ACCOUNT_ID}
    )
    _append_rows(
        landing / d3.isoformat() / "crm" / "opportunities.csv",
        [
            {
                **won,
                "stage": "won",
                "closed_at": _ts(d3, "09:00:00"),
                "lost_reason": "",
                "updated_at": _ts(d3, "09:00:00"),
            }
        ],
    )
    return LandingChanges(
        dates=(d1, d2, d3),
        changed_account_id=changed["account_id"],
        employees_before=before,
        employees_after=after,
        won_opportunity_id=won["opportunity_id"],
        won_account_id=won["account_id"],
    )


# ---------------------------------------------------------------------------------------------
# The runs


def _snapshot(summary: RunSummary, warehouse: Path, target: Path) -> Snapshot:
    assert summary.success, (target.name, summary.failures + summary.checks_failed)
    copy = copy_database(warehouse, target / warehouse.name)
    published = target / "published"
    shutil.copytree(published_dir_for(warehouse), published, symlinks=True)
    return Snapshot(summary, copy, published)


@pytest.fixture(scope="module")
def scenario(sample_landing, tmp_path_factory) -> Scenario:
    root = tmp_path_factory.mktemp("backfills_and_reruns")
    landing = root / "landing"
    changes = _landing_with_changes(sample_landing, landing)
    d1, d2, d3 = changes.dates
    w1, w2 = root / "w1" / "warehouse.duckdb", root / "w2" / "warehouse.duckdb"
    on_w1, on_w2 = settings_for(landing, w1), settings_for(landing, w2)
    steps = {}
    with pytest.MonkeyPatch.context() as patch:
        # Each warehouse publishes next to itself.
        patch.delenv(PUBLISHED_DIR_ENV, raising=False)
        summary = run_pipeline(on_w1, date_range=(d1, d3))
        steps["backfill"] = _snapshot(summary, w1, root / "backfill")
        summary = run_pipeline(on_w1, date_range=(d1, d2))
        steps["backfill_again"] = _snapshot(summary, w1, root / "backfill_again")
        for day in (d1, d2, d3):
            summary = run_pipeline(replace(on_w2, as_of_date=day))
            assert summary.success, (day, summary.failures)
        steps["singles"] = _snapshot(summary, w2, root / "singles")
        summary = run_pipeline(replace(on_w2, as_of_date=d3))
        steps["rerun"] = _snapshot(summary, w2, root / "rerun")
    return Scenario(landing, changes, **steps)


def _alive_accounts(landing: Path, as_of: date) -> int:
    """How many accounts the exports dated <= ``as_of`` know and have not deleted."""
    latest = _latest(landing, "crm/accounts", "account_id", as_of)
    return sum(row["is_deleted"] != "true" for row in latest.values())


def _scored_at(path: Path, table: str) -> dict[date, tuple]:
    """as_of_date -> (earliest, latest) scored_at of ``table``."""
    sql = f"SELECT as_of_date, min(scored_at), max(scored_at) FROM {table} GROUP BY 1"
    return {day: (low, high) for day, low, high in query(path, sql)}


# ---------------------------------------------------------------------------------------------
# One backfill run = three single-date runs


def test_every_run_succeeds_without_failed_checks(scenario):
    d1, d2, d3 = scenario.changes.dates
    for name, snapshot in scenario.steps.items():
        assert snapshot.summary.checks_failed == [], name
    # A run's summary describes the newest date it scored.
    assert scenario.backfill.summary.as_of_date == d3.isoformat()
    assert scenario.backfill_again.summary.as_of_date == d2.isoformat()
    assert scenario.singles.summary.accounts_scored == scenario.backfill.summary.accounts_scored


def test_history_holds_one_row_per_account_per_date(scenario):
    """Every date the backfill scored has one row per account alive on that date (the landing
    zone says how many), in every per-account mart."""
    dates = scenario.changes.dates
    warehouse = scenario.backfill.warehouse
    assert as_of_dates(warehouse, "marts.account_fit_score_history") == list(dates)
    expected = {day: _alive_accounts(scenario.landing, day) for day in dates}
    assert expected[dates[0]] != expected[dates[1]], "the new account makes the dates differ"
    for table in PER_ACCOUNT_TABLES:
        counts = {
            day: (rows, accounts)
            for day, rows, accounts in query(
                warehouse,
                f"SELECT as_of_date, count(*), count(DISTINCT account_id) FROM {table} "
                "WHERE list_contains($dates, as_of_date) GROUP BY 1",
                {"dates": list(dates)},
            )
        }
        assert counts == {day: (n, n) for day, n in expected.items()}, table


def test_one_backfill_run_equals_single_date_runs(scenario):
    """Every table of W1 after the backfill equals W2 after D1, D2 and D3 one at a time: the
    marts of every date (the facts of the backtest dates included), the current marts and
    the raw tables (both ingested every export up to D3)."""
    backfill, singles = scenario.backfill, scenario.singles
    assert table_differences(singles.warehouse, backfill.warehouse) == []
    assert table_differences(singles.published_db, backfill.published_db) == []
    assert parquet_differences(singles.published, backfill.published) == []


def test_current_scores_are_the_history_of_the_newest_date(scenario):
    d3 = scenario.changes.dates[-1]
    warehouse = scenario.backfill.warehouse
    assert as_of_dates(warehouse, "marts.account_fit_scores") == [d3]
    assert as_of_dates(warehouse, "marts.dim_accounts") == [d3]
    [(missing, extra)] = query(
        warehouse,
        "SELECT (SELECT count(*) FROM (SELECT * FROM marts.account_fit_score_history "
        "WHERE as_of_date = $d EXCEPT ALL SELECT * FROM marts.account_fit_scores)), "
        "(SELECT count(*) FROM (SELECT * FROM marts.account_fit_scores EXCEPT ALL "
        "SELECT * FROM marts.account_fit_score_history WHERE as_of_date = $d))",
        {"d": d3},
    )
    assert (missing, extra) == (0, 0)


# ---------------------------------------------------------------------------------------------
# Point in time


def test_an_account_added_on_d2_is_absent_from_d1(scenario):
    d1, d2, d3 = scenario.changes.dates
    warehouse = scenario.backfill.warehouse
    for table in PER_ACCOUNT_TABLES:
        dates = [
            d
            for (d,) in query(
                warehouse,
                f"SELECT as_of_date FROM {table} WHERE account_id = $id "
                "AND as_of_date IN ($d1, $d2, $d3) ORDER BY 1",
                {"id": NEW_ACCOUNT_ID, "d1": d1, "d2": d2, "d3": d3},
            )
        ]
        assert dates == [d2, d3], table


def test_an_employee_count_update_shows_from_its_export_on(scenario):
    changes = scenario.changes
    d1, d2, d3 = changes.dates
    employees = dict(
        query(
            scenario.backfill.warehouse,
            "SELECT as_of_date, employee_count FROM marts.dim_accounts_history "
            "WHERE account_id = $id AND as_of_date IN ($d1, $d2, $d3)",
            {"id": changes.changed_account_id, "d1": d1, "d2": d2, "d3": d3},
        )
    )
    assert employees == {
        d1: changes.employees_before,
        d2: changes.employees_after,
        d3: changes.employees_after,
    }


def test_a_win_on_d3_shows_only_in_d3_facts(scenario):
    changes = scenario.changes
    d1, d2, d3 = changes.dates
    facts = {
        day: (won, open_, first_won_date)
        for day, won, open_, first_won_date in query(
            scenario.backfill.warehouse,
            "SELECT as_of_date, opportunities_won, opportunities_open, first_won_date "
            "FROM marts.fct_account_metrics WHERE account_id = $id "
            "AND as_of_date IN ($d1, $d2, $d3)",
            {"id": changes.won_account_id, "d1": d1, "d2": d2, "d3": d3},
        )
    }
    assert set(facts) == {d1, d2, d3}
    assert facts[d1] == facts[d2], "nothing changed for the account between D1 and D2"
    won, open_, first_won_date = facts[d2]
    assert open_ >= 1, f"{changes.won_opportunity_id} is open on D2"
    assert facts[d3][:2] == (won + 1, open_ - 1)
    if won == 0:
        assert first_won_date is None and facts[d3][2] == d3


# ---------------------------------------------------------------------------------------------
# A backfill of D touches only D's rows


def test_backfilling_again_leaves_other_dates_untouched(scenario):
    """Backfilling D1..D2 after D3 leaves every other date's rows byte for byte as they were,
    ``scored_at`` included, and the current marts (D3's) too, in the warehouse and in the
    published copy. The dbt step also rebuilds the facts of each date's backtest date (D -
    ``validation.backtest_days``, docs/metrics.md); those rows are compared here too."""
    d1, d2, _ = scenario.changes.dates
    before, after = scenario.backfill, scenario.backfill_again
    other_dates = {"where": "NOT list_contains($dates, as_of_date)", "params": {"dates": [d1, d2]}}
    in_warehouse = table_differences(
        before.warehouse,
        after.warehouse,
        tables=PER_DATE_TABLES + CURRENT_TABLES,
        keep_run_time=True,
        **other_dates,
    )
    assert in_warehouse == []
    in_published_copy = table_differences(
        before.published_db,
        after.published_db,
        schemas=("marts",),
        keep_run_time=True,
        **other_dates,
    )
    assert in_published_copy == []


def test_backfilling_again_recomputes_its_dates_identically(scenario):
    d1, d2, _ = scenario.changes.dates
    assert (
        table_differences(
            scenario.backfill.warehouse,
            scenario.backfill_again.warehouse,
            tables=PER_DATE_TABLES,
            where="list_contains($dates, as_of_date)",
            params={"dates": [d1, d2]},
        )
        == []
    )


def test_backfilling_again_rescored_only_its_own_dates(scenario):
    """``scored_at`` tells which history rows the second backfill wrote: D1 and D2's."""
    d1, d2, d3 = scenario.changes.dates
    table = "marts.account_fit_score_history"
    before = _scored_at(scenario.backfill.warehouse, table)
    after = _scored_at(scenario.backfill_again.warehouse, table)
    assert after[d3] == before[d3]
    for day in (d1, d2):
        assert after[day][0] > before[d3][1], f"{day} was scored again after D3's first scoring"


def test_the_published_current_scores_stay_the_newest_date(scenario):
    d3 = scenario.changes.dates[-1]
    published = scenario.backfill_again.published_db
    assert as_of_dates(published, "marts.account_fit_scores") == [d3]
    assert as_of_dates(published, "marts.account_fit_score_history") == list(scenario.changes.dates)
    assert (
        table_differences(
            scenario.backfill_again.warehouse,
            published,
            tables=("marts.account_fit_scores", "marts.account_fit_score_history"),
            keep_run_time=True,
        )
        == []
    )


# ---------------------------------------------------------------------------------------------
# The same date twice


def test_running_a_date_twice_gives_identical_tables(scenario):
    first, second = scenario.singles, scenario.rerun
    assert table_differences(first.warehouse, second.warehouse) == []


def test_running_a_date_twice_rescored_and_republished_it(scenario):
    """The second run replaced the scores and published a new version (so the comparisons of
    the two are not vacuous)."""
    first, second = scenario.singles, scenario.rerun
    for table in ("marts.account_fit_score_history", "marts.account_fit_scores"):
        d3 = scenario.changes.dates[-1]
        assert (
            _scored_at(second.warehouse, table)[d3][0] > _scored_at(first.warehouse, table)[d3][1]
        )
    versions = [
        (query(s.published_db, "SELECT version FROM meta.publish_info")[0][0],
         current_parquet_version(s.published).name)
        for s in (first, second)
    ]  # fmt: skip
    assert versions[0][0] == versions[0][1] != versions[1][0] == versions[1][1]


def test_running_a_date_twice_publishes_identical_tables(scenario):
    first, second = scenario.singles, scenario.rerun
    assert table_differences(first.published_db, second.published_db) == []
    assert parquet_differences(first.published, second.published) == []


def test_every_run_time_column_exists(scenario):
    """The exclusions name real columns (a renamed one would silently compare less)."""
    present = set()
    for path in (scenario.rerun.warehouse, scenario.rerun.published_db):
        present |= set(
            query(path, "SELECT schema_name, table_name, column_name FROM duckdb_columns()")
        )
    assert set(RUN_TIME_COLUMNS) <= present, set(RUN_TIME_COLUMNS) - present
    manifest = current_parquet_version(scenario.rerun.published) / "_manifest.json"
    assert set(RUN_TIME_MANIFEST_KEYS) <= set(json.loads(manifest.read_text()))
