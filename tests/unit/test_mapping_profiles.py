"""Mapping profiles turn Salesforce, HubSpot, Stripe and Zendesk exports into the contract.

The fixtures (tests/fixtures/exports, see PROFILES.md there) hold one invented company's data
as each system's exporter writes it and, separately, in contract format. Ingesting a system's
files through its built-in profile must give the same raw rows (every contract column, typed)
as ingesting the contract-format files, with nothing quarantined.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import LandingError
from dagster_project.ingest.loader import ingest_entity
from dagster_project.sql import quote_identifier

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
EXPORT = "2026-05-31"
CONTRACTS = load_contracts()


def system_landing(tmp_path: Path, sources: dict[str, str]) -> Path:
    """A landing zone with each source folder copied from a system's fixture, and a
    landing.yaml naming the systems."""
    landing = tmp_path / "systems"
    for folder, system in sources.items():
        shutil.copytree(FIXTURES / system / EXPORT / folder, landing / EXPORT / folder)
    lines = ["sources:"] + [f"  {folder}: {system}" for folder, system in sources.items()]
    (landing / "landing.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy2(FIXTURES / "contract" / "fx_rates.csv", landing / "fx_rates.csv")
    return landing


def ingest(landing: Path, entities: list[str]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name in ["reference/fx_rates", "crm/accounts", *entities]:
        ingest_entity(con, CONTRACTS[name], landing, None)
    return con


def raw_rows(con, entity: str) -> list[tuple]:
    contract = CONTRACTS[entity]
    columns = ", ".join(quote_identifier(c) for c in contract.column_names)
    rows = con.execute(f"SELECT {columns} FROM raw.{quote_identifier(contract.raw_table)}")
    return sorted(rows.fetchall(), key=repr)


@pytest.mark.parametrize(
    ("sources", "contract_root", "entities"),
    [
        (
            {"crm": "salesforce", "billing": "stripe", "support": "zendesk"},
            "contract",
            ["crm/opportunities", "billing/subscriptions", "billing/invoices", "support/tickets"],
        ),
        ({"crm": "hubspot"}, "contract_hubspot", ["crm/opportunities"]),
    ],
    ids=["salesforce+stripe+zendesk", "hubspot"],
)
def test_each_profile_gives_the_raw_rows_of_the_contract_format(
    tmp_path, sources, contract_root, entities
):
    mapped = ingest(system_landing(tmp_path, sources), entities)
    contract = ingest(FIXTURES / contract_root, entities)
    for entity in ["crm/accounts", *entities]:
        assert raw_rows(mapped, entity) == raw_rows(contract, entity), entity
        assert raw_rows(mapped, entity), entity
    quarantined = mapped.execute(
        "SELECT entity, rule, column_name, count(*) FROM raw.quarantined_rows GROUP BY ALL"
    ).fetchall()
    assert quarantined == []
    # Columns of a system's file that the profile does not read are kept, as extras.
    extras = mapped.execute(
        "SELECT _extra_columns FROM raw.crm__accounts WHERE _extra_columns IS NOT NULL LIMIT 1"
    ).fetchone()
    assert extras is not None


def test_a_value_outside_the_profile_is_quarantined_not_guessed(tmp_path):
    landing = system_landing(tmp_path, {"billing": "stripe"})
    shutil.copytree(FIXTURES / "contract" / EXPORT / "crm", landing / EXPORT / "crm")
    subscriptions = landing / EXPORT / "billing" / "subscription.csv"
    text = subscriptions.read_text(encoding="utf-8")
    assert ",active," in text
    subscriptions.write_text(text.replace(",active,", ",paused,", 1), encoding="utf-8")
    con = ingest(landing, ["billing/subscriptions"])
    assert con.execute(
        "SELECT rule, column_name, json_extract_string(raw_values, 'status') "
        "FROM raw.quarantined_rows WHERE entity = 'billing/subscriptions'"
    ).fetchall() == [("value_not_allowed", "status", "paused")]


def test_a_missing_column_for_a_required_field_names_file_profile_and_column(tmp_path):
    landing = system_landing(tmp_path, {"crm": "salesforce"})
    accounts = landing / EXPORT / "crm" / "Account.csv"
    lines = accounts.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace('"Name"', '"AccountName"')
    accounts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        LandingError,
        match=r"Account\.csv: column\(s\) Name for the required "
        r"column account_name missing \(profile salesforce, crm/accounts\)",
    ):
        ingest(landing, [])


def test_a_landing_config_cannot_point_outside_the_root_or_at_an_unknown_profile(tmp_path):
    landing = system_landing(tmp_path, {"crm": "salesforce"})
    (landing / "landing.yaml").write_text("sources:\n  crm: ../../etc/profile.yaml\n")
    with pytest.raises(LandingError, match="outside the landing root"):
        ingest(landing, [])
    (landing / "landing.yaml").write_text("sources:\n  crm: pipedrive\n")
    with pytest.raises(LandingError, match="no built-in profile 'pipedrive'"):
        ingest(landing, [])


def test_a_user_written_profile_maps_an_export_of_any_system(tmp_path):
    """A company's own profile (here for a made-up CRM export) lives in the landing zone."""
    landing = tmp_path / "landing"
    (landing / EXPORT / "crm").mkdir(parents=True)
    (landing / EXPORT / "crm" / "Companies.csv").write_text(
        "Company ID,Company,Employees,Country,Created,Modified,Since epoch\n"
        "C-1,Acme,120,Deutschland,2026-01-02,2026-03-04,1767312000\n",
        encoding="utf-8",
    )
    (landing / "mappings").mkdir()
    (landing / "mappings" / "our_crm.yaml").write_text(
        "name: our_crm\n"
        "entities:\n"
        "  crm/accounts:\n"
        "    file: Companies\n"
        "    columns:\n"
        "      account_id: Company ID\n"
        "      account_name: Company\n"
        "      employee_count: Employees\n"
        "      country: Country\n"
        "      created_at: {column: Since epoch, transform: epoch_seconds}\n"
        "      updated_at: Modified\n",
        encoding="utf-8",
    )
    (landing / "landing.yaml").write_text("sources:\n  crm: mappings/our_crm.yaml\n")
    con = ingest(landing, [])
    assert con.execute(
        "SELECT account_id, account_name, employee_count, country, created_at, updated_at, "
        "_extra_columns FROM raw.crm__accounts"
    ).fetchall() == [
        (
            "C-1",
            "Acme",
            120,
            "DE",
            __import__("datetime").datetime(2026, 1, 2),
            __import__("datetime").datetime(2026, 3, 4),
            '{"Created":"2026-01-02"}',
        )
    ]


def test_a_lookup_file_symlinked_out_of_the_export_folder_is_refused(tmp_path):
    landing = system_landing(tmp_path, {"crm": "hubspot"})
    association = landing / EXPORT / "crm" / "deal_company.csv"
    outside = tmp_path / "elsewhere.csv"
    shutil.move(association, outside)
    association.symlink_to(outside)
    with pytest.raises(LandingError, match="outside its export folder"):
        ingest(landing, ["crm/opportunities"])
