"""The changes table and CRM files after the session's one pipeline run (fast; the change
logic between two runs is tested in test_score_changes.py, slow, and in dbt's unit tests)."""

from __future__ import annotations

import csv

import duckdb

from dagster_project.publish import DB_FILE, current_parquet_version, published_dir_for
from dagster_project.publish.crm import (
    CRM_DIR,
    HUBSPOT_COLUMNS,
    HUBSPOT_FILE,
    SALESFORCE_COLUMNS,
    SALESFORCE_FILE,
)


def test_a_first_run_reports_every_account_as_new_everywhere(pipeline_run):
    """No earlier date: every scored account is new (the CRM's first load), in the warehouse,
    the published file and Parquet, and both CRM files, which hold one row per account."""
    settings, summary = pipeline_run
    assert summary.success, summary.failures
    published = published_dir_for(settings.warehouse_path)
    sql = (
        "SELECT as_of_date, change_kind, count(*), count(DISTINCT account_id), "
        "bool_and(previous_as_of_date IS NULL AND fit_score IS NOT NULL) "
        "FROM marts.account_fit_score_changes GROUP BY ALL"
    )
    for path in (settings.warehouse_path, published / DB_FILE):
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(sql).fetchall()
        as_of = rows[0][0]
        assert rows == [(as_of, "new", summary.accounts_scored, summary.accounts_scored, True)]
    parquet = current_parquet_version(published) / "account_fit_score_changes"
    assert [p.name for p in parquet.iterdir()] == [f"as_of_date={as_of}"]
    for name, columns, key in (
        (SALESFORCE_FILE, SALESFORCE_COLUMNS, "ICP_Account_Id__c"),
        (HUBSPOT_FILE, HUBSPOT_COLUMNS, "icp_account_id"),
    ):
        with (published / CRM_DIR / name).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        assert reader.fieldnames == list(columns)
        assert len({row[key] for row in rows}) == len(rows) == summary.accounts_scored
    assert not list((published / CRM_DIR).glob(".*tmp*")), "no temporary file left"
