"""marts.account_fit_score_changes and the CRM files, end to end (issue 15, part 4).

Done when: "the changes table holds exactly the changed accounts between two runs (test with a
landing zone that changes three accounts)". The sample landing zone is reduced to its CRM
exports and scored with the points model of ``_RULES_CONFIG``, whose criteria and anti-ICP
rules read firmographics only: a day later, with the same exports, every score is the same.
Date 2 is a copy of date 1's exports plus three account updates, each making one kind of
change the table must report:

* ``flagged``: business model ``agency``, an anti-ICP rule -> ``anti_icp_flagged``;
* ``upgraded``: a low-tier account gets every firmographic the criteria want -> 100 points,
  ``tier_upgraded``;
* ``dropped``: a high-tier account of 85+ points moves out of the core geography, -15 points,
  still high -> ``score_decreased`` (beyond the default threshold of 10).

Then date 2 is run again (its rows are replaced by equal ones) and date 1 is backfilled after
date 2 (it compares with nothing before it, never with date 2, and date 2's rows stay).
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.landing import export_dates
from dagster_project.publish import DB_FILE, published_dir_for
from dagster_project.publish.crm import (
    CRM_DIR,
    HUBSPOT_COLUMNS,
    HUBSPOT_FILE,
    SALESFORCE_COLUMNS,
    SALESFORCE_FILE,
)
from dagster_project.publish.snapshot import PUBLISHED_DIR_ENV
from dagster_project.run import run_pipeline
from tests.conftest import settings_for

CHANGES = "marts.account_fit_score_changes"

_RULES_CONFIG = """
model: rules
base_points: 0
criteria:
  - {name: size_sweet_spot, attribute: employee_count, when: {between: [100, 1000]}, points: 30}
  - {name: target_industry, attribute: industry, when: {in: [software, fintech]}, points: 20}
  - {name: core_geography, attribute: country, when: {in: [US, GB, DE, NL, CA]}, points: 15}
  - {name: b2b_saas_business_model, attribute: business_model, when: {eq: b2b_saas}, points: 20}
  - {name: cloud_deployment, attribute: deployment, when: {eq: cloud}, points: 15}
anti_icp_rules:
  - {code: too_small, attribute: employee_count, when: {lt: 20}}
  - {code: agency, attribute: business_model, when: {eq: agency}}
  - {code: on_prem_only, attribute: deployment, when: {eq: on_prem}}
tiers: {high: 70, medium: 40}
"""
#: Each account's firmographics for 100 points under _RULES_CONFIG.
_IDEAL = {
    "employee_count": "300",
    "industry": "Software",
    "country": "US",
    "business_model": "b2b_saas",
    "deployment": "cloud",
}


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _query(path: Path, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _changes(path: Path, day: date) -> dict[str, tuple]:
    """account_id -> (change_kind, previous_fit_score, fit_score, previous tier, tier, flags)."""
    rows = _query(
        path,
        f"SELECT account_id, change_kind, previous_fit_score, fit_score, previous_fit_tier, "
        f"fit_tier, previous_is_anti_icp, is_anti_icp FROM {CHANGES} WHERE as_of_date = $d",
        {"d": day},
    )
    return {row[0]: row[1:] for row in rows}


@dataclass(frozen=True)
class Run:
    """A copy of the published folder and warehouse after one run."""

    warehouse: Path
    published: Path

    @property
    def crm(self) -> Path:
        return self.published / CRM_DIR


@dataclass(frozen=True)
class Scenario:
    d1: date
    d2: date
    accounts_d1: int
    changed: dict[str, str]  # role -> account_id
    scores_d1: dict[str, tuple]  # account_id -> (fit_score, fit_tier, is_anti_icp)
    first: Run
    second: Run
    rerun: Run
    backfill: Run


def _snapshot(warehouse: Path, target: Path) -> Run:
    target.mkdir(parents=True)
    shutil.copy2(warehouse, target / warehouse.name)
    shutil.copytree(published_dir_for(warehouse), target / "published", symlinks=True)
    return Run(target / warehouse.name, target / "published")


def _pick_changes(warehouse: Path, d1: date) -> dict[str, str]:
    """Three distinct accounts for the three changes, from date 1's scores."""
    candidates = {
        # Not b2b_saas already, so that becoming an agency moves no points: the flag alone.
        "flagged": "NOT is_anti_icp AND fit_tier <> 'low' "
        "AND coalesce(d.business_model, '') NOT IN ('b2b_saas', 'agency')",
        "upgraded": "NOT is_anti_icp AND fit_tier = 'low'",
        "dropped": "NOT is_anti_icp AND fit_score >= 85",
    }
    picked: dict[str, str] = {}
    for role, condition in candidates.items():
        rows = _query(
            warehouse,
            "SELECT account_id FROM marts.account_fit_score_history AS h "
            f"JOIN marts.dim_accounts_history AS d USING (account_id, as_of_date) "
            f"WHERE as_of_date = $d AND {condition} AND list_contains($core, d.country) "
            "AND NOT list_contains($taken, account_id) ORDER BY account_id LIMIT 1",
            {"d": d1, "core": ["US", "GB", "DE", "NL", "CA"], "taken": list(picked.values())},
        )
        assert rows, f"no account for the {role} change"
        picked[role] = rows[0][0]
    return picked


def _add_date_two(landing: Path, d1: date, d2: date, changed: dict[str, str]) -> None:
    """Date 2 = date 1's exports again, plus the three updated accounts."""
    shutil.copytree(landing / d1.isoformat(), landing / d2.isoformat())
    latest: dict[str, dict[str, str]] = {}
    for export_date in export_dates(landing, d1):
        for row in _read_rows(landing / export_date.isoformat() / "crm" / "accounts.csv"):
            latest[row["account_id"]] = row  # exports in date order: the last one wins
    updated_at = f"{d2.isoformat()}T10:00:00Z"
    updates = {
        changed["flagged"]: {"business_model": "agency"},
        changed["upgraded"]: _IDEAL,
        changed["dropped"]: {"country": "JP"},
    }
    accounts = landing / d2.isoformat() / "crm" / "accounts.csv"
    with accounts.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    with accounts.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        for account_id, values in updates.items():
            writer.writerow({**latest[account_id], **values, "updated_at": updated_at})


@pytest.fixture(scope="module")
def scenario(sample_landing, tmp_path_factory) -> Scenario:
    root = tmp_path_factory.mktemp("score_changes")
    landing = root / "landing"
    shutil.copytree(sample_landing, landing)
    for folder in landing.iterdir():
        for source in ("billing", "support", "product", "feedback"):
            if (folder / source).is_dir():
                shutil.rmtree(folder / source)
    config = root / "scoring.yaml"
    config.write_text(_RULES_CONFIG, encoding="utf-8")
    d1 = export_dates(landing)[-1]
    d2 = d1 + timedelta(days=1)
    warehouse = root / "w" / "warehouse.duckdb"
    settings = replace(settings_for(landing, warehouse), scoring_config_path=config)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(PUBLISHED_DIR_ENV, raising=False)
        summary = run_pipeline(replace(settings, as_of_date=d1))
        assert summary.success, summary.failures + summary.checks_failed
        first = _snapshot(warehouse, root / "first")
        changed = _pick_changes(warehouse, d1)
        _add_date_two(landing, d1, d2, changed)
        runs = {}
        for name, day in (("second", d2), ("rerun", d2), ("backfill", d1)):
            summary = run_pipeline(replace(settings, as_of_date=day))
            assert summary.success, (name, summary.failures + summary.checks_failed)
            runs[name] = _snapshot(warehouse, root / name)
    scores_d1 = {
        row[0]: row[1:]
        for row in _query(
            first.warehouse,
            "SELECT account_id, fit_score, fit_tier, is_anti_icp "
            "FROM marts.account_fit_score_history WHERE as_of_date = $d",
            {"d": d1},
        )
    }
    return Scenario(d1, d2, len(scores_d1), changed, scores_d1, first, **runs)


pytestmark = pytest.mark.slow


def test_date_two_holds_exactly_the_three_changed_accounts(scenario):
    changes = _changes(scenario.second.warehouse, scenario.d2)
    assert set(changes) == set(scenario.changed.values())
    flagged, upgraded, dropped = (scenario.changed[r] for r in ("flagged", "upgraded", "dropped"))
    score, tier, _ = scenario.scores_d1[flagged]
    assert changes[flagged] == ("anti_icp_flagged", score, score, tier, tier, False, True)
    score, _, _ = scenario.scores_d1[upgraded]
    assert changes[upgraded] == ("tier_upgraded", score, 100, "low", "high", False, False)
    score, _, _ = scenario.scores_d1[dropped]
    assert changes[dropped] == ("score_decreased", score, score - 15, "high", "high", False, False)


def test_the_factors_behind_each_change(scenario):
    rows = dict(
        _query(
            scenario.second.warehouse,
            f"SELECT account_id, changed_factors FROM {CHANGES} WHERE as_of_date = $d",
            {"d": scenario.d2},
        )
    )
    dropped = rows[scenario.changed["dropped"]]
    assert [(f["factor"], f["points_change"]) for f in dropped] == [("core_geography", -15)]
    assert rows[scenario.changed["flagged"]] == [], "the flag moved no points"
    upgraded = rows[scenario.changed["upgraded"]]
    assert len(upgraded) == 3, "capped at changes.factor_count"
    assert all(f["points_change"] > 0 and f["previous_points"] is None for f in upgraded)


def test_the_first_date_reports_every_account_as_new(scenario):
    changes = _changes(scenario.first.warehouse, scenario.d1)
    assert len(changes) == scenario.accounts_d1
    assert {kind for kind, *_ in changes.values()} == {"new"}


def test_the_published_table_and_parquet_hold_the_changes(scenario):
    published = scenario.second.published
    in_warehouse = _query(scenario.second.warehouse, f"SELECT count(*) FROM {CHANGES}")
    assert _query(published / DB_FILE, f"SELECT count(*) FROM {CHANGES}") == in_warehouse
    parquet = published / "parquet" / "current" / "account_fit_score_changes"
    assert sorted(p.name for p in parquet.iterdir()) == [
        f"as_of_date={scenario.d1}",
        f"as_of_date={scenario.d2}",
    ]


def test_the_crm_files_hold_the_changed_rows_in_each_format(scenario):
    crm = scenario.second.crm
    salesforce = _read_rows(crm / SALESFORCE_FILE)
    hubspot = _read_rows(crm / HUBSPOT_FILE)
    assert list(salesforce[0]) == list(SALESFORCE_COLUMNS)
    assert list(hubspot[0]) == list(HUBSPOT_COLUMNS)
    assert list(SALESFORCE_COLUMNS)[:3] == ["Id", "ICP_Account_Id__c", "ICP_Fit_Score__c"]
    assert list(HUBSPOT_COLUMNS)[:4] == ["Record ID", "domain", "icp_account_id", "icp_fit_score"]
    changed = sorted(scenario.changed.values())
    assert [row["ICP_Account_Id__c"] for row in salesforce] == changed
    assert [row["icp_account_id"] for row in hubspot] == changed
    # The contract-format landing zone names no CRM: no record ids, the matching keys instead.
    assert {row["Id"] for row in salesforce} == {row["Record ID"] for row in hubspot} == {""}
    assert all(row["domain"] for row in hubspot)
    by_id = {row["ICP_Account_Id__c"]: row for row in salesforce}
    flagged = by_id[scenario.changed["flagged"]]
    assert (flagged["Anti_ICP__c"], flagged["Anti_ICP_Reasons__c"]) == ("true", "agency")
    assert flagged["ICP_Route__c"] == "disqualify"
    assert flagged["ICP_Change_Kind__c"] == "anti_icp_flagged"
    dropped = by_id[scenario.changed["dropped"]]
    assert dropped["ICP_Fit_Score_Change__c"] == "-15.00"
    assert dropped["ICP_Change_Factors__c"] == "core_geography -15.00"
    assert dropped["Anti_ICP_Reasons__c"] == "#N/A", "the Bulk API's null"
    assert dropped["ICP_As_Of_Date__c"] == scenario.d2.isoformat()
    assert dropped["ICP_Scored_At__c"].endswith("Z")
    upgraded = {row["icp_account_id"]: row for row in hubspot}[scenario.changed["upgraded"]]
    assert (upgraded["icp_tier"], upgraded["icp_previous_tier"]) == ("high", "low")
    assert (upgraded["icp_fit_score"], upgraded["anti_icp"]) == ("100.00", "false")


def test_rerunning_date_two_replaces_its_rows_with_equal_ones(scenario):
    columns = "* EXCLUDE (scored_at)"
    sql = f"SELECT {columns} FROM {CHANGES} ORDER BY as_of_date, account_id"
    assert _query(scenario.rerun.warehouse, sql) == _query(scenario.second.warehouse, sql)
    scored_at = f"SELECT max(scored_at) FROM {CHANGES} WHERE as_of_date = $d"
    params = {"d": scenario.d2}
    assert _query(scenario.rerun.warehouse, scored_at, params) > _query(
        scenario.second.warehouse, scored_at, params
    ), "the rerun rebuilt the rows"
    for name in (SALESFORCE_FILE, HUBSPOT_FILE):
        before, after = (
            _read_rows(scenario.second.crm / name),
            _read_rows(scenario.rerun.crm / name),
        )
        strip = {"ICP_Scored_At__c", "icp_scored_at"}
        assert [{k: v for k, v in r.items() if k not in strip} for r in after] == [
            {k: v for k, v in r.items() if k not in strip} for r in before
        ]


def test_a_backfill_of_date_one_compares_with_its_past_only(scenario):
    """Backfilled after date 2, date 1 still has no earlier date: every account new, as on
    the first run (never compared with the later date 2); date 2's rows are untouched,
    scored_at included, and the CRM files stay date 2's."""
    after, before = scenario.backfill.warehouse, scenario.rerun.warehouse
    assert _changes(after, scenario.d1) == _changes(scenario.first.warehouse, scenario.d1)
    date_two = f"SELECT * FROM {CHANGES} WHERE as_of_date = $d ORDER BY account_id"
    params = {"d": scenario.d2}
    assert _query(after, date_two, params) == _query(before, date_two, params)
    for name in (SALESFORCE_FILE, HUBSPOT_FILE):
        assert _read_rows(scenario.backfill.crm / name) == _read_rows(scenario.rerun.crm / name)
