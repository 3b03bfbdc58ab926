"""CRM import files of the current date's score changes, written from the published copy.

``<published>/crm/salesforce_account_updates.csv`` (Salesforce Data Loader / Bulk API 2.0: API
field names as headers) and ``<published>/crm/hubspot_company_updates.csv`` (HubSpot company
import: ``Record ID`` and property internal names) hold the rows of
``marts.account_fit_score_changes`` for the published ``account_fit_scores``' as_of_date, except
removed accounts (the CRM deleted them; an update would fail). Each file is written by DuckDB
``COPY ... TO`` next to its final name and renamed over it, so an import never reads half a
file. docs/consumers.md documents the fields.

The CRM account id is ``account_id``: the ingest's mapping profile maps Salesforce ``Id`` and
HubSpot ``id`` to it. ``Id`` / ``Record ID`` are therefore filled only when the landing's CRM is
that system (``landing.yaml`` ``sources.crm``, by the profile's ``name``); otherwise they are
empty and the files carry keys the system matches on instead: ``ICP_Account_Id__c`` (an
External ID field for a Salesforce upsert) and the company ``domain`` (HubSpot's company
de-duplication key).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import yaml

from dagster_project.ingest.mapping import load_landing_config
from dagster_project.sql import string_literal

__all__ = [
    "CRM_DIR",
    "CRM_SYSTEMS",
    "CrmExportResult",
    "HUBSPOT_COLUMNS",
    "HUBSPOT_FILE",
    "SALESFORCE_COLUMNS",
    "SALESFORCE_FILE",
    "crm_system",
    "write_crm_exports",
]

CRM_DIR = "crm"
SALESFORCE_FILE = "salesforce_account_updates.csv"
HUBSPOT_FILE = "hubspot_company_updates.csv"
CRM_SYSTEMS = ("salesforce", "hubspot")
CHANGES = "account_fit_score_changes"
_PUBLISHED = "published_marts"

# The Bulk API (and Data Loader with it) leaves a field as it is for an empty value and sets it
# to null for #N/A: a cleared anti-ICP reason list or a new account's previous score is #N/A.
_SALESFORCE_NULL = "'#N/A'"

#: Salesforce field (API name) -> SQL over the changes row ``c`` and its account ``a``; every
#: value is text, formatted as the Bulk API reads it (ISO 8601 UTC date-times, true/false, ';'
#: between multi-select picklist values).
SALESFORCE_COLUMNS: Mapping[str, str] = {
    "Id": "CASE WHEN $crm = 'salesforce' THEN c.account_id END",
    "ICP_Account_Id__c": "c.account_id",
    "ICP_Fit_Score__c": "CAST(c.fit_score AS VARCHAR)",
    "ICP_Previous_Fit_Score__c": (
        f"coalesce(CAST(c.previous_fit_score AS VARCHAR), {_SALESFORCE_NULL})"
    ),
    "ICP_Fit_Score_Change__c": (
        f"coalesce(CAST(c.fit_score_change AS VARCHAR), {_SALESFORCE_NULL})"
    ),
    "ICP_Tier__c": "c.fit_tier",
    "ICP_Previous_Tier__c": f"coalesce(c.previous_fit_tier, {_SALESFORCE_NULL})",
    "ICP_Route__c": "c.route",
    "Anti_ICP__c": "CAST(c.is_anti_icp AS VARCHAR)",
    "Anti_ICP_Reasons__c": (
        f"coalesce(nullif(array_to_string(c.anti_icp_reasons, ';'), ''), {_SALESFORCE_NULL})"
    ),
    "ICP_Change_Kind__c": "c.change_kind",
    "ICP_Change_Factors__c": f"coalesce(nullif({{factors}}, ''), {_SALESFORCE_NULL})",
    "ICP_As_Of_Date__c": "strftime(c.as_of_date, '%Y-%m-%d')",
    "ICP_Scored_At__c": "strftime(c.scored_at, '%Y-%m-%dT%H:%M:%SZ')",
}

#: HubSpot import column (``Record ID``, else a company property's internal name) -> SQL.
#: An empty cell leaves a HubSpot property as it is; ``anti_icp`` says whether reasons apply.
HUBSPOT_COLUMNS: Mapping[str, str] = {
    "Record ID": "CASE WHEN $crm = 'hubspot' THEN c.account_id END",
    "domain": "a.domain",
    "icp_account_id": "c.account_id",
    "icp_fit_score": "CAST(c.fit_score AS VARCHAR)",
    "icp_previous_fit_score": "CAST(c.previous_fit_score AS VARCHAR)",
    "icp_fit_score_change": "CAST(c.fit_score_change AS VARCHAR)",
    "icp_tier": "c.fit_tier",
    "icp_previous_tier": "c.previous_fit_tier",
    "icp_route": "c.route",
    "anti_icp": "CAST(c.is_anti_icp AS VARCHAR)",
    "anti_icp_reasons": "array_to_string(c.anti_icp_reasons, ';')",
    "icp_change_kind": "c.change_kind",
    "icp_change_factors": "{factors}",
    "icp_as_of_date": "strftime(c.as_of_date, '%Y-%m-%d')",
    "icp_scored_at": "strftime(c.scored_at, '%Y-%m-%dT%H:%M:%SZ')",
}

# "employee_count=100-499 +12.00; industry=software -15.00": the factors behind the change.
_FACTORS = (
    "array_to_string(list_transform(c.changed_factors, "
    "lambda f: f.factor || ' ' || printf('%+.2f', f.points_change)), '; ')"
)


@dataclass(frozen=True)
class CrmExportResult:
    """What one export wrote: the date, the CRM named by the landing zone, rows per file."""

    as_of_date: date
    crm_system: str | None
    files: dict[str, Path]
    rows: int


def crm_system(landing_root: Path | str) -> str | None:
    """``salesforce`` or ``hubspot`` when the landing zone's CRM profile is that system's (the
    built-in profile, or a copy keeping its ``name``), else None (account ids of another
    system or of the contract format)."""
    profile = load_landing_config(Path(landing_root)).get("crm")
    if profile is None:
        return None
    document = yaml.safe_load(profile.read_text(encoding="utf-8")) or {}
    name = str(document.get("name") or profile.stem) if isinstance(document, dict) else ""
    return name if name in CRM_SYSTEMS else None


def _select(columns: Mapping[str, str]) -> str:
    items = ", ".join(
        f'{sql.format(factors=_FACTORS)} AS "{header}"' for header, sql in columns.items()
    )
    return (
        f"SELECT {items} FROM {_PUBLISHED}.marts.{CHANGES} AS c "
        f"LEFT JOIN {_PUBLISHED}.marts.dim_accounts AS a ON a.account_id = c.account_id "
        "WHERE c.as_of_date = $as_of AND NOT c.is_removed_account ORDER BY c.account_id"
    )


def _copy_atomically(
    con: duckdb.DuckDBPyConnection, select: str, params: dict[str, object], target: Path
) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        con.execute(f"COPY ({select}) TO {string_literal(tmp)} (FORMAT csv, HEADER true)", params)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_crm_exports(
    published_db: Path | str, out_dir: Path | str, system: str | None
) -> CrmExportResult:
    """Write both CRM files for the published current date into ``out_dir`` (created) from the
    published DuckDB file ``published_db`` (opened read-only); each file replaced atomically.

    Args:
        published_db: ``<published>/icp_marts.duckdb``.
        out_dir: ``<published>/crm``.
        system: the landing zone's CRM (:func:`crm_system`): fills ``Id`` or ``Record ID``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"ATTACH {string_literal(Path(published_db))} AS {_PUBLISHED} (READ_ONLY)")
        (as_of,) = con.execute(
            f"SELECT max(as_of_date) FROM {_PUBLISHED}.marts.account_fit_scores"
        ).fetchone()
        if as_of is None:
            raise ValueError(f"{published_db}: marts.account_fit_scores is empty")
        params = {"as_of": as_of, "crm": system}
        files = {SALESFORCE_FILE: SALESFORCE_COLUMNS, HUBSPOT_FILE: HUBSPOT_COLUMNS}
        for name, columns in files.items():
            _copy_atomically(con, _select(columns), params, out_dir / name)
        (rows,) = con.execute(
            f"SELECT count(*) FROM {_PUBLISHED}.marts.{CHANGES} "
            "WHERE as_of_date = $as_of AND NOT is_removed_account",
            {"as_of": as_of},
        ).fetchone()
    return CrmExportResult(
        as_of_date=as_of,
        crm_system=system,
        files={name: out_dir / name for name in files},
        rows=rows,
    )
