"""The CRM import files: which CRM the landing zone names, and each file's rows and values."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.publish.crm import (
    HUBSPOT_FILE,
    SALESFORCE_FILE,
    crm_system,
    write_crm_exports,
)
from dagster_project.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    "landing_yaml, profile, expected",
    [
        (None, None, None),
        ("sources: {crm: salesforce}", None, "salesforce"),
        ("sources: {crm: hubspot, billing: stripe}", None, "hubspot"),
        ("sources: {billing: stripe}", None, None),
        ("sources: {crm: mappings/ours.yaml}", "name: salesforce", "salesforce"),
        ("sources: {crm: mappings/ours.yaml}", "name: pipedrive", None),
    ],
)
def test_the_crm_is_the_landing_zones_crm_profile(tmp_path, landing_yaml, profile, expected):
    if landing_yaml:
        (tmp_path / "landing.yaml").write_text(landing_yaml, encoding="utf-8")
    if profile:
        built_in = (PROJECT_ROOT / "config" / "mappings" / "salesforce.yaml").read_text()
        (tmp_path / "mappings").mkdir()
        (tmp_path / "mappings" / "ours.yaml").write_text(
            built_in.replace("name: salesforce", profile), encoding="utf-8"
        )
    assert crm_system(tmp_path) == expected


def _published(path: Path) -> Path:
    """A published file with the three tables the export reads: two dates of changes."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.account_fit_scores AS "
            "SELECT DATE '2026-11-20' AS as_of_date, 'S1' AS account_id"
        )
        con.execute(
            "CREATE TABLE marts.dim_accounts AS SELECT * FROM (VALUES "
            "('S1', 'one.example'), ('S2', 'two.example')) AS t(account_id, domain)"
        )
        factors = (
            "STRUCT(factor VARCHAR, previous_points DECIMAL(7,2), points DECIMAL(7,2), "
            "points_change DECIMAL(7,2))[]"
        )
        con.execute(
            f"""
            CREATE TABLE marts.account_fit_score_changes AS
            SELECT as_of_date::DATE AS as_of_date, account_id, change_kind,
                   previous_fit_score::DECIMAL(7,2) AS previous_fit_score,
                   fit_score::DECIMAL(7,2) AS fit_score,
                   (fit_score - previous_fit_score)::DECIMAL(7,2) AS fit_score_change,
                   previous_fit_tier, fit_tier, route, is_anti_icp,
                   anti_icp_reasons::VARCHAR[] AS anti_icp_reasons,
                   change_kind = 'removed' AS is_removed_account,
                   changed_factors::{factors} AS changed_factors,
                   TIMESTAMP '2026-11-20 06:05:12' AS scored_at
            FROM (VALUES
                ('2026-11-19', 'OLD', 'new', NULL, 50, NULL, 'medium', 'ae', false, [], []),
                ('2026-11-20', 'S1', 'anti_icp_cleared', 20, 45.5, 'low', 'medium', 'ae', false,
                 [], [{{'factor': 'size', 'previous_points': 0, 'points': 25.5,
                        'points_change': 25.5}}]),
                ('2026-11-20', 'S2', 'new', NULL, 80, NULL, 'high', 'disqualify', true,
                 ['agency', 'on_prem_only'], []),
                ('2026-11-20', 'S3', 'removed', 60, NULL, 'medium', NULL, NULL, NULL, NULL, [])
            ) AS t(as_of_date, account_id, change_kind, previous_fit_score, fit_score,
                   previous_fit_tier, fit_tier, route, is_anti_icp, anti_icp_reasons,
                   changed_factors)
            """
        )
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_files_hold_the_current_dates_rows_but_removed_ones(tmp_path):
    published = _published(tmp_path / "icp_marts.duckdb")
    result = write_crm_exports(published, tmp_path / "crm", "salesforce")
    assert (result.as_of_date, result.rows) == (date(2026, 11, 20), 2)
    salesforce = _rows(tmp_path / "crm" / SALESFORCE_FILE)
    assert [row["Id"] for row in salesforce] == ["S1", "S2"], "Id: the CRM is Salesforce"
    cleared, new = salesforce
    assert cleared["Anti_ICP__c"] == "false"
    assert cleared["Anti_ICP_Reasons__c"] == "#N/A", "a cleared list is set to null"
    assert cleared["ICP_Fit_Score_Change__c"] == "25.50"
    assert cleared["ICP_Change_Factors__c"] == "size +25.50"
    assert cleared["ICP_Scored_At__c"] == "2026-11-20T06:05:12Z"
    assert (new["ICP_Previous_Fit_Score__c"], new["ICP_Previous_Tier__c"]) == ("#N/A", "#N/A")
    assert new["Anti_ICP_Reasons__c"] == "agency;on_prem_only"
    hubspot = _rows(tmp_path / "crm" / HUBSPOT_FILE)
    assert [row["Record ID"] for row in hubspot] == ["", ""], "the CRM is not HubSpot"
    assert [row["domain"] for row in hubspot] == ["one.example", "two.example"]
    assert hubspot[1]["anti_icp_reasons"] == "agency;on_prem_only"
    assert hubspot[0]["icp_previous_fit_score"] == "20.00"


def test_a_rewrite_replaces_the_files_and_leaves_no_temporary_file(tmp_path):
    published = _published(tmp_path / "icp_marts.duckdb")
    write_crm_exports(published, tmp_path / "crm", "hubspot")
    first = (tmp_path / "crm" / HUBSPOT_FILE).read_text()
    write_crm_exports(published, tmp_path / "crm", "hubspot")
    assert (tmp_path / "crm" / HUBSPOT_FILE).read_text() == first
    assert [row["Record ID"] for row in _rows(tmp_path / "crm" / HUBSPOT_FILE)] == ["S1", "S2"]
    assert sorted(p.name for p in (tmp_path / "crm").iterdir()) == [HUBSPOT_FILE, SALESFORCE_FILE]
