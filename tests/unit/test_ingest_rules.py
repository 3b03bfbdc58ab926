"""Row rules, quarantine and file failures of the ingest, on hand-written landing files."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import LandingError
from dagster_project.ingest.loader import ingest_entity
from tests.landing_files import write_csv

CONTRACTS = load_contracts()
EXPORT = "2026-11-20"
ACCOUNT_HEADER = [
    "account_id",
    "account_name",
    "employee_count",
    "deployment",
    "currency",
    "created_at",
    "updated_at",
]


def _ingest(con, landing: Path, *entities: str, as_of: date | None = None):
    results = {}
    for entity in ("reference/fx_rates", *entities):
        results[entity] = ingest_entity(con, CONTRACTS[entity], landing, as_of)
    return results


@pytest.fixture()
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _quarantine(con, entity: str) -> dict[int, list[str]]:
    rows = con.execute(
        "SELECT line_number, rules_broken FROM raw.quarantined_rows WHERE entity = ? "
        "ORDER BY line_number",
        [entity],
    ).fetchall()
    return {line: list(rules) for line, rules in rows}


def test_each_row_rule_quarantines_with_reason_and_counts_reconcile(tmp_path, con):
    landing = tmp_path / "landing"
    write_csv(
        landing / "fx_rates.csv",
        ["date", "currency", "usd_per_unit"],
        [["2026-01-01", "EUR", "1.08"]],
    )
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ACCOUNT_HEADER,
        [
            ["A1", "Good Co", "120", "cloud", "USD", "2026-01-01", "2026-01-02T10:00:00Z"],  # 2
            ["A2", "Negative", "-5", "cloud", "", "2026-01-01", "2026-01-02"],  # 3
            ["A3", "Not a number", "many", "cloud", "", "2026-01-01", "2026-01-02"],  # 4
            ["A4", "Bad enum", "10", "mainframe", "", "2026-01-01", "2026-01-02"],  # 5
            ["A5", "Bad date", "10", "cloud", "", "20/01/2026", "2026-01-02"],  # 6
            ["A6", "Yen", "10", "cloud", "JPY", "2026-01-01", "2026-01-02"],  # 7
            ["", "No key", "10", "cloud", "", "2026-01-01", "2026-01-02"],  # 8
            ["A8", "Dup one", "10", "cloud", "", "2026-01-01", "2026-01-02"],  # 9
            ["A8", "Dup two", "10", "cloud", "", "2026-01-01", "2026-01-03"],  # 10
            ["A9", "Euro", "10", "Hybrid", "EUR", "2026-01-01", "2026-01-02"],  # 11
            ["A10", "x", "10", "cloud", "usd", "2026-01-01", "2026-01-02"],  # 12
        ],
    )
    write_csv(
        landing / EXPORT / "billing" / "subscriptions.csv",
        ["subscription_id", "account_id", "mrr", "started_at", "status", "updated_at"],
        [
            ["S1", "A1", "100", "2026-01-01", "active", "2026-01-01"],
            ["S2", "NOPE", "100", "2026-01-01", "active", "2026-01-01"],
            ["S3", "A1", "1e999", "2026-01-01", "active", "2026-01-01"],
        ],
    )
    results = _ingest(con, landing, "crm/accounts", "billing/subscriptions")

    accounts = _quarantine(con, "crm/accounts")
    assert accounts[3] == ["below_minimum:employee_count"]
    assert accounts[4] == ["invalid_integer:employee_count"]
    assert accounts[5] == ["value_not_allowed:deployment"]
    assert accounts[6] == ["invalid_timestamp:created_at"]
    assert accounts[7] == ["unknown_currency:currency"]
    assert accounts[8] == ["missing_required_value:account_id"]
    assert accounts[9] == accounts[10] == ["duplicate_key_in_file:account_id"]
    assert accounts[12] == ["pattern_mismatch:currency"]
    loaded = con.execute("SELECT account_id FROM raw.crm__accounts ORDER BY 1").fetchall()
    assert loaded == [("A1",), ("A9",)], "valid rows load; enum case and known fx pass"

    assert _quarantine(con, "billing/subscriptions") == {
        3: ["orphan_foreign_key:account_id"],
        4: ["non_finite_number:mrr"],
    }

    for result in results.values():
        for counts in result.files:
            assert counts.reconciles, counts
    assert results["crm/accounts"].rows_read == 11
    assert results["crm/accounts"].rows_loaded == 2
    assert results["crm/accounts"].rows_quarantined == 9


def test_range_and_boolean_rules(tmp_path, con):
    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ACCOUNT_HEADER,
        [["A1", "Acme", "10", "cloud", "", "2026-01-01", "2026-01-02"]],
    )
    write_csv(
        landing / EXPORT / "support" / "tickets.csv",
        ["ticket_id", "account_id", "created_at", "csat", "priority"],
        [
            ["T1", "A1", "2026-02-01", "5", "urgent"],
            ["T2", "A1", "2026-02-01", "7", "low"],
            ["T3", "A1", "2026-02-01", "0", "LOW"],
        ],
    )
    write_csv(
        landing / EXPORT / "crm" / "opportunities.csv",
        ["opportunity_id", "account_id", "created_at", "stage", "updated_at", "is_deleted"],
        [
            ["O1", "A1", "2026-02-01", "won", "2026-02-01", "true"],
            ["O2", "A1", "2026-02-01", "won", "2026-02-01", "maybe"],
        ],
    )
    _ingest(con, landing, "crm/accounts", "support/tickets", "crm/opportunities")
    assert _quarantine(con, "support/tickets") == {
        3: ["above_maximum:csat"],
        4: ["below_minimum:csat"],
    }
    assert _quarantine(con, "crm/opportunities") == {3: ["invalid_boolean:is_deleted"]}


def test_quarantine_keeps_raw_values_and_hostile_text_unchanged(tmp_path, con):
    landing = tmp_path / "landing"
    hostile = "'; DROP TABLE raw.crm__accounts; --"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        [*ACCOUNT_HEADER, "Loyalty Tier"],
        [
            ["A1", hostile, "10", "cloud", "", "2026-01-01", "2026-01-02", "gold"],
            ["A2", '=HYPERLINK("http://x")', "oops", "cloud", "", "2026-01-01", "2026-01-02", ""],
        ],
    )
    _ingest(con, landing, "crm/accounts")
    name, extras = con.execute(
        "SELECT account_name, _extra_columns FROM raw.crm__accounts"
    ).fetchone()
    assert name == hostile
    assert extras == '{"Loyalty Tier":"gold"}'
    raw_values = con.execute(
        "SELECT raw_values->>'account_name', raw_values->>'employee_count' "
        "FROM raw.quarantined_rows"
    ).fetchone()
    assert raw_values == ('=HYPERLINK("http://x")', "oops")


def test_header_matching_ignores_case_spaces_and_bom(tmp_path, con):
    landing = tmp_path / "landing"
    path = landing / EXPORT / "crm" / "accounts.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        "\ufeff Account_ID ,ACCOUNT_NAME,Created_At,updated_at\n"
        "A1,Acme,2026-01-01,2026-01-02\n".encode()
    )
    result = _ingest(con, landing, "crm/accounts")["crm/accounts"]
    assert result.rows_loaded == 1


def test_missing_required_column_fails_naming_file_and_column(tmp_path, con):
    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "created_at", "updated_at"],
        [["A1", "2026-01-01", "2026-01-01"]],
    )
    with pytest.raises(LandingError, match=r"2026-11-20/crm/accounts.csv.*account_name"):
        _ingest(con, landing, "crm/accounts")


def test_unreadable_file_fails_naming_the_file(tmp_path, con):
    landing = tmp_path / "landing"
    path = landing / EXPORT / "crm" / "accounts.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        gzip.compress(b"account_id,account_name,created_at,updated_at\nA1,x,2026")[:-9]
    )
    with pytest.raises(LandingError, match=r"crm/accounts.csv.gz"):
        _ingest(con, landing, "crm/accounts")


def test_symlink_out_of_landing_root_is_refused(tmp_path, con):
    outside = write_csv(tmp_path / "elsewhere.csv", ACCOUNT_HEADER, [])
    link = tmp_path / "landing" / EXPORT / "crm" / "accounts.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    with pytest.raises(LandingError, match="outside the landing root"):
        _ingest(con, tmp_path / "landing", "crm/accounts")


def test_exports_after_as_of_date_are_not_read(tmp_path, con):
    landing = tmp_path / "landing"
    for export, name in (("2026-11-19", "Old name"), ("2026-11-20", "New name")):
        write_csv(
            landing / export / "crm" / "accounts.csv",
            ACCOUNT_HEADER,
            [["A1", name, "10", "cloud", "", "2026-01-01", f"{export}"]],
        )
    _ingest(con, landing, "crm/accounts", as_of=date(2026, 11, 19))
    names = con.execute("SELECT account_name, _export_date FROM raw.crm__accounts").fetchall()
    assert names == [("Old name", date(2026, 11, 19))]


def test_parquet_and_gzip_files_are_read_like_csv(tmp_path, con):
    landing = tmp_path / "landing"
    csv_path = write_csv(
        tmp_path / "accounts.csv",
        ACCOUNT_HEADER,
        [["A1", "Acme", "10", "cloud", "", "2026-01-01", "2026-01-02"]],
    )
    (landing / "2026-11-19" / "crm").mkdir(parents=True)
    (landing / "2026-11-20" / "crm").mkdir(parents=True)
    duckdb.execute(
        "COPY (SELECT * FROM read_csv(?, all_varchar = true)) TO ? (FORMAT parquet)",
        [str(csv_path), str(landing / "2026-11-19" / "crm" / "accounts.parquet")],
    )
    (landing / "2026-11-20" / "crm" / "accounts.csv.gz").write_bytes(
        gzip.compress(csv_path.read_bytes())
    )
    result = _ingest(con, landing, "crm/accounts")["crm/accounts"]
    assert [(f.relative_path, f.rows_loaded) for f in result.files] == [
        ("2026-11-19/crm/accounts.parquet", 1),
        ("2026-11-20/crm/accounts.csv.gz", 1),
    ]


def test_freshness_warns_on_an_old_export_and_a_missing_required_file(tmp_path):
    from dagster_project.ingest.landing import freshness_findings

    landing = tmp_path / "landing"
    for export in ("2026-11-19", EXPORT):
        for entity in (
            "crm/accounts",
            "crm/opportunities",
            "billing/subscriptions",
            "billing/invoices",
            "support/tickets",
        ):
            write_csv(landing / export / f"{entity}.csv", ["x"], [])
    contracts = CONTRACTS.values()
    assert freshness_findings(landing, contracts, date(2026, 11, 21), max_age_days=2) == []
    # Tickets the previous export held are expected; activities it never held are not.
    (landing / EXPORT / "support" / "tickets.csv").unlink()
    findings = freshness_findings(landing, contracts, date(2026, 11, 25), max_age_days=2)
    assert findings == [
        "the newest export, 2026-11-20, is 5 days old (more than 2)",
        "2026-11-20/support/tickets: missing from the newest export "
        "(expected tickets.csv, .csv.gz or .parquet)",
    ]
    assert freshness_findings(tmp_path / "landing" / EXPORT, contracts, date(2026, 11, 21), 2)[
        0
    ].startswith("no export folder")


def test_absent_and_header_only_optional_entities_load_zero_rows_and_pass_the_contract(tmp_path):
    """Only crm/accounts is required: an entity with no file, or a header-only file, loads 0
    rows and its pandera contract passes (pandera's ibis backend alone fails a 0-row table)."""
    from dagster_project.ingest.raw_validation import raw_contract_failures

    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "account_name", "created_at", "updated_at"],
        [["A1", "Acme", "2026-01-01", "2026-01-01"]],
    )
    header_only = ["ticket_id", "account_id", "created_at"]
    write_csv(landing / EXPORT / "support" / "tickets.csv", header_only, [])
    con = duckdb.connect()
    results = _ingest(con, landing, "crm/accounts", "crm/opportunities", "support/tickets")
    assert results["crm/opportunities"].rows_read == 0 and results["crm/opportunities"].files == ()
    assert [(f.rows_read, f.rows_loaded) for f in results["support/tickets"].files] == [(0, 0)]
    for name in ("crm/opportunities", "support/tickets", "reference/fx_rates"):
        assert raw_contract_failures(con, CONTRACTS[name]) == [], name


def test_contract_failures_name_values_not_expressions():
    from dagster_project.ingest.raw_validation import raw_contract_failures

    contract = CONTRACTS["support/tickets"]
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    columns = ", ".join(f'"{c.name}" {c.warehouse_type}' for c in contract.columns)
    con.execute(f"CREATE TABLE raw.support__tickets ({columns})")
    con.execute(
        "INSERT INTO raw.support__tickets (ticket_id, account_id, created_at, csat) VALUES "
        "('T1', NULL, TIMESTAMP '2026-01-01', 9), ('T2', 'A1', TIMESTAMP '2026-01-01', 4)"
    )
    assert raw_contract_failures(con, contract) == [
        "csat: less_than_or_equal_to(5.0) (value 9)",
        "account_id: not_nullable (1 NULL row(s), e.g. ticket_id='T1')",
    ]


def test_value_maps_normalise_countries_and_enum_synonyms_before_the_rules(tmp_path):
    """Built-in maps turn country names and common synonyms into contract values; the
    landing zone's own map adds to them; a value no map names is still quarantined."""
    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "account_name", "country", "deployment", "created_at", "updated_at"],
        [
            ["A1", "Acme", "United Kingdom", "On-Premise", "2026-01-01", "2026-01-01"],
            ["A2", "Beta", "deutschland", "SaaS", "2026-01-01", "2026-01-01"],
            ["A3", "Gamma", "Atlantis", "cloud", "2026-01-01", "2026-01-01"],
            ["A4", "Delta", "Nordland", "cloud", "2026-01-01", "2026-01-01"],
        ],
    )
    write_csv(
        landing / EXPORT / "support" / "tickets.csv",
        ["ticket_id", "account_id", "created_at", "priority"],
        [["T1", "A1", "2026-02-01", "Medium"], ["T2", "A2", "2026-02-01", "P5"]],
    )
    write_csv(
        landing / "value_maps" / "ours.csv",
        ["entity", "column", "value", "maps_to"],
        [["crm/accounts", "country", "Nordland", "NO"]],
    )
    con = duckdb.connect()
    _ingest(con, landing, "crm/accounts", "support/tickets")
    assert con.execute(
        "SELECT account_id, country, deployment FROM raw.crm__accounts ORDER BY 1"
    ).fetchall() == [("A1", "GB", "on_prem"), ("A2", "DE", "cloud"), ("A4", "NO", "cloud")]
    assert con.execute("SELECT ticket_id, priority FROM raw.support__tickets").fetchall() == [
        ("T1", "normal")
    ]
    quarantined = con.execute(
        "SELECT entity, rule, column_name, json_extract_string(raw_values, column_name) "
        "FROM raw.quarantined_rows ORDER BY entity"
    ).fetchall()
    assert quarantined == [
        ("crm/accounts", "pattern_mismatch", "country", "Atlantis"),
        ("support/tickets", "value_not_allowed", "priority", "P5"),
    ]


def test_a_rule_quarantining_more_than_the_limit_is_named_with_examples(tmp_path):
    from dagster_project.ingest.loader import quarantine_share_findings

    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "account_name", "created_at", "updated_at"],
        [["A1", "Acme", "2026-01-01", "2026-01-01"]],
    )
    priorities = ["low"] * 15 + ["P5"] * 4 + ["???"]
    write_csv(
        landing / EXPORT / "support" / "tickets.csv",
        ["ticket_id", "account_id", "created_at", "priority"],
        [[f"T{n}", "A1", "2026-02-01", p] for n, p in enumerate(priorities)],
    )
    con = duckdb.connect()
    result = _ingest(con, landing, "crm/accounts", "support/tickets")["support/tickets"]
    assert quarantine_share_findings(con, result, max_share=0.05) == [
        f"{EXPORT}/support/tickets.csv: 25% of rows (5 of 20) quarantined by value_not_allowed "
        "on priority, e.g. '???', 'P5' (add a value map or fix the export; see "
        "raw.quarantined_rows)"
    ]
    assert quarantine_share_findings(con, result, max_share=0.3) == []


def test_header_keys_fold_unicode_invisible_characters_case_and_separators():
    from dagster_project.ingest.headers import header_key, probable_column

    for written in (
        "country\u200b",
        "\ufeffcountry",
        "ｃｏｕｎｔｒｙ",
        " Country ",
        "COUN\u00adTRY",
        "country\u2060",
    ):
        assert header_key(written) == header_key("country"), written
    for written in ("Employee Count", "employee-count", "EmployeeCount", "employee\u00a0count"):
        assert header_key(written) == header_key("employee_count"), written
    accounts = CONTRACTS["crm/accounts"]
    assert probable_column(accounts, "employees", ["employee_count", "country"]) == (
        "employee_count",
        "a known synonym",
    )
    assert probable_column(accounts, "countyr", ["country"]) == ("country", "1 edit(s) away")
    assert probable_column(accounts, "Loyalty Tier", accounts.column_names) is None
    assert probable_column(accounts, "employees", ["country"]) is None, "only missing columns"


def test_sentinel_dates_follow_the_configured_range(tmp_path, con):
    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "account_name", "created_at", "updated_at"],
        [
            ["A1", "Old", "1950-06-01", "2026-01-01"],
            ["A2", "Fine", "2001-01-01", "2026-01-01"],
            ["A3", "Future", "2026-01-01", "2031-01-01T00:00:00Z"],
        ],
    )
    ingest_entity(con, CONTRACTS["reference/fx_rates"], landing, None)
    ingest_entity(con, CONTRACTS["crm/accounts"], landing, None)
    assert _quarantine(con, "crm/accounts") == {}, "1900-01-01 .. 2100-12-31 by default"
    ingest_entity(
        con, CONTRACTS["crm/accounts"], landing, None, (date(2000, 1, 1), date(2030, 12, 31))
    )
    assert _quarantine(con, "crm/accounts") == {
        2: ["sentinel_date:created_at"],
        4: ["sentinel_date:updated_at"],
    }


def test_valid_date_range_comes_from_the_environment(monkeypatch):
    from dagster_project.defs.resources import build_resources
    from dagster_project.settings import Settings

    monkeypatch.setenv("ICP_MIN_VALID_DATE", "1990-01-01")
    monkeypatch.setenv("ICP_MAX_VALID_DATE", "2050-12-31")
    settings = Settings.from_env()
    assert (settings.min_valid_date, settings.max_valid_date) == (
        date(1990, 1, 1),
        date(2050, 12, 31),
    )
    landing = build_resources(settings)["landing"]
    assert landing.valid_dates == (date(1990, 1, 1), date(2050, 12, 31))


def test_keys_are_trimmed_and_case_sensitive(tmp_path, con):
    """Keys are trimmed of Unicode spaces and zero-width characters; case is kept and
    distinguishes keys (Salesforce ids are case-sensitive), with a warning."""
    landing = tmp_path / "landing"
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ["account_id", "account_name", "created_at", "updated_at"],
        [
            ["001A000001abcDE", "Upper", "2026-01-01", "2026-01-01"],
            ["001A000001abcde", "Lower", "2026-01-01", "2026-01-01"],
            ["\u200bACC-5\u00a0", "Padded", "2026-01-01", "2026-01-01"],
            ["ACC-5", "Same key", "2026-01-01", "2026-01-01"],
            ["\u3000", "Blank", "2026-01-01", "2026-01-01"],
        ],
    )
    result = _ingest(con, landing, "crm/accounts")["crm/accounts"]
    assert _quarantine(con, "crm/accounts") == {
        4: ["duplicate_key_in_file:account_id"],
        5: ["duplicate_key_in_file:account_id"],
        6: ["missing_required_value:account_id"],
    }
    loaded = con.execute("SELECT account_id FROM raw.crm__accounts ORDER BY 1").fetchall()
    assert loaded == [("001A000001abcDE",), ("001A000001abcde",)]
    assert result.warnings == (
        f"{EXPORT}/crm/accounts.csv: 1 account_id value(s) differ from another only by case "
        "(e.g. '001A000001abcDE' / '001A000001abcde'); keys are case-sensitive, so they are "
        "separate rows",
    )


def test_the_trim_fast_path_gives_what_the_character_set_trim_gives():
    """trim_expression skips ``trim`` with a character set for values whose ends are
    printable ASCII; every kind of value must come out as the plain character-set trim."""
    from dagster_project.ingest.contracts import ColumnContract
    from dagster_project.ingest.row_rules import TRIM_CHARACTERS, trim_expression
    from dagster_project.sql import string_literal

    values = [
        None,
        "",
        " ",
        "a",
        "ab",
        " a",
        "a ",
        "\ta\n",
        "\u00a0ACC-1\u00a0",
        "\u200bx",
        "x\ufeff",
        "\ufeff",
        "é",
        "é ",
        " é",
        "ACC 5",
        "!~",
        "~",
        "\u3000\u3000",
        "a\u2060b",
        "日本",
        "😀x",
        "x😀",
        "\u2028y\u2029",
        "1,000",
        "'quoted'",
    ]
    column = ColumnContract(name="value", dtype="string", nullable=True, required=False)
    fast = trim_expression(column)
    plain = f"nullif(trim(landing.value, {string_literal(TRIM_CHARACTERS)}), '')"
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE landing AS SELECT unnest($values::VARCHAR[]) AS value", {"values": values}
    )
    rows = con.execute(f"SELECT value, {fast}, {plain} FROM landing").fetchall()
    assert len(rows) == len(values)
    assert [(value, expected) for value, _, expected in rows] == [
        (value, got) for value, got, _ in rows
    ]


def test_each_timestamp_rule_reads_the_part_it_checks(tmp_path, con):
    """Hours, minutes, seconds, the offset and the fraction each decide their own rule (the
    parts are extracted once per row: a part read from the wrong group passes bad rows)."""
    landing = tmp_path / "landing"
    write_csv(landing / "fx_rates.csv", ["date", "currency", "usd_per_unit"], [])
    updated_at = {
        2: "2026-01-02T10:20:30+05:30",
        3: "2026-01-02T24:00:00Z",
        4: "2026-01-02T10:60:00Z",
        5: "2026-01-02T10:20:60Z",
        6: "2026-01-02T10:20:30+05:75",
        7: "2026-01-02T10:20:30+15:00",
        8: "2026-01-02T10:20:30.1234567Z",
        9: "2026-01-02T10:20:30.123456000Z",
        10: "2026-02-30",
        11: "0001-01-01",
        12: "2026-01-02 23:59:59-14:00",
    }
    write_csv(
        landing / EXPORT / "crm" / "accounts.csv",
        ACCOUNT_HEADER,
        [
            [f"A{line}", "Co", "10", "cloud", "", "2026-01-01", value]
            for line, value in updated_at.items()
        ],
    )
    _ingest(con, landing, "crm/accounts")
    assert _quarantine(con, "crm/accounts") == {
        3: ["impossible_timestamp:updated_at"],
        4: ["impossible_timestamp:updated_at"],
        5: ["impossible_timestamp:updated_at"],
        6: ["offset_out_of_range:updated_at"],
        7: ["offset_out_of_range:updated_at"],
        8: ["timestamp_precision_loss:updated_at"],
        10: ["impossible_timestamp:updated_at"],
        11: ["sentinel_date:updated_at"],
    }
    loaded = dict(con.execute("SELECT account_id, updated_at FROM raw.crm__accounts").fetchall())
    assert str(loaded["A2"]) == "2026-01-02 04:50:30", "the offset is honoured"
    assert str(loaded["A12"]) == "2026-01-03 13:59:59"
    assert set(loaded) == {"A2", "A9", "A12"}
