"""Tests of the sample-data generator: contract validity, determinism, deltas, planted signal."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from dagster_project.sample_data import (
    ANTI_ICP_REASONS,
    PLANTED_SEGMENTS,
    GenerationSummary,
    generate_landing_zone,
)

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
END_DATE = date(2026, 11, 20)
ENTITIES = (
    "crm/accounts",
    "crm/opportunities",
    "crm/activities",
    "billing/subscriptions",
    "billing/invoices",
    "support/tickets",
)
ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$")


def _schema(entity: str) -> dict:
    return yaml.safe_load((SCHEMAS_DIR / f"{entity}.yaml").read_text(encoding="utf-8"))


def _primary_key(entity: str) -> str:
    return _schema(entity)["metadata"]["primary_key"]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_landing_zone(
        tmp_path_factory.mktemp("landing"), accounts=1500, seed=7, end_date=END_DATE
    )


@pytest.fixture(scope="module")
def con(landing: GenerationSummary) -> duckdb.DuckDBPyConnection:
    return _open_landing(landing.out_dir)


def _open_landing(root: Path) -> duckdb.DuckDBPyConnection:
    """Views ``<source>__<entity>`` over all exports (all text, with ``export_date``) and
    ``<source>__<entity>_latest`` (the upserted state), plus ``truth``."""
    connection = duckdb.connect()
    for entity in ENTITIES:
        view = entity.replace("/", "__")
        key = _primary_key(entity)
        connection.read_csv(
            str(root / "*" / f"{entity}.csv"), all_varchar=True, filename=True, header=True
        ).create_view(f"{view}_files")
        connection.execute(
            f"""
            CREATE VIEW {view} AS
            SELECT * EXCLUDE (filename),
                   regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1)::DATE
                       AS export_date
            FROM {view}_files
            """
        )
        connection.execute(
            f"""
            CREATE VIEW {view}_latest AS
            SELECT * FROM {view}
            QUALIFY row_number() OVER (PARTITION BY {key}
                                       ORDER BY updated_at DESC, export_date DESC) = 1
            """
        )
    connection.read_csv(
        str(root / "_truth" / "planted_segments.csv"), all_varchar=True
    ).create_view("truth")
    return connection


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    return con.execute(query).fetchall()


def _scalar(con: duckdb.DuckDBPyConnection, query: str):
    return con.execute(query).fetchone()[0]


# --- layout and summary ----------------------------------------------------------------


def test_layout_and_summary(landing: GenerationSummary) -> None:
    assert landing.export_dates == [
        END_DATE - timedelta(days=2),
        END_DATE - timedelta(days=1),
        END_DATE,
    ]
    for export_date in landing.export_dates:
        for entity in ENTITIES:
            relative = f"{export_date.isoformat()}/{entity}.csv"
            assert (landing.out_dir / relative).is_file()
            assert relative in landing.rows_per_file
    assert (landing.out_dir / "fx_rates.csv").is_file()
    assert landing.rows_per_file["_truth/planted_segments.csv"] == 1500
    first = landing.export_dates[0].isoformat()
    assert landing.rows_per_file[f"{first}/crm/accounts.csv"] > 500


def test_row_counts_match_files(landing: GenerationSummary) -> None:
    for relative, rows in landing.rows_per_file.items():
        counted = duckdb.execute(
            "SELECT count(*) FROM read_csv($path, all_varchar = true, header = true)",
            {"path": str(landing.out_dir / relative)},
        ).fetchone()[0]
        assert counted == rows, relative


# --- determinism ------------------------------------------------------------------------


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate_landing_zone(tmp_path / "a", accounts=300, seed=11)
    second = generate_landing_zone(tmp_path / "b", accounts=300, seed=11, threads=1)
    assert first.rows_per_file == second.rows_per_file
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate_landing_zone(tmp_path / "a", accounts=300, seed=11)
    generate_landing_zone(tmp_path / "b", accounts=300, seed=12)
    first, second = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert first.keys() == second.keys()
    changed = [name for name in first if first[name] != second[name] and name != "fx_rates.csv"]
    assert len(changed) >= len(first) - 2


@pytest.mark.parametrize("file_format", ["csv.gz", "parquet"])
def test_other_formats_have_same_columns_and_rows(tmp_path: Path, file_format: str) -> None:
    csv_summary = generate_landing_zone(tmp_path / "csv", accounts=200, seed=3)
    other = generate_landing_zone(tmp_path / "other", accounts=200, seed=3, file_format=file_format)
    generate_landing_zone(tmp_path / "again", accounts=200, seed=3, file_format=file_format)
    assert _file_bytes(tmp_path / "other") == _file_bytes(tmp_path / "again")
    as_csv = {
        (k.removesuffix(f".{file_format}") + ".csv" if k.endswith(file_format) else k): v
        for k, v in other.rows_per_file.items()
    }
    assert as_csv == csv_summary.rows_per_file
    for entity in ENTITIES:
        path = tmp_path / "other" / END_DATE.isoformat() / f"{entity}.{file_format}"
        reader = "read_parquet" if file_format == "parquet" else "read_csv"
        columns = [
            c[0]
            for c in duckdb.execute(
                f"DESCRIBE SELECT * FROM {reader}($p)", {"p": str(path)}
            ).fetchall()
        ]
        assert columns == list(_schema(entity)["columns"]), entity


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_format"):
        generate_landing_zone(tmp_path, accounts=10, file_format="xlsx")
    with pytest.raises(ValueError, match="accounts"):
        generate_landing_zone(tmp_path, accounts=0)
    with pytest.raises(ValueError, match="export_count"):
        generate_landing_zone(tmp_path, accounts=10, export_count=0)


# --- contract validity --------------------------------------------------------------------


def test_headers_are_exactly_the_schema_columns(landing: GenerationSummary) -> None:
    for export_date in landing.export_dates:
        for entity in ENTITIES:
            path = landing.out_dir / export_date.isoformat() / f"{entity}.csv"
            header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
            assert header == list(_schema(entity)["columns"]), path
    fx_header = (landing.out_dir / "fx_rates.csv").read_text().splitlines()[0].split(",")
    assert fx_header == list(_schema("fx_rates")["columns"])


def _violations(con: duckdb.DuckDBPyConnection, view: str, name: str, rules: dict) -> list[str]:
    """Rule violations of one column, as messages (empty when the column is valid)."""
    column = f'"{name}"'
    problems: list[str] = []

    def count(condition: str) -> int:
        return _scalar(
            con, f"SELECT count(*) FROM {view} WHERE {column} IS NOT NULL AND ({condition})"
        )

    if not rules.get("nullable", True):
        nulls = _scalar(con, f"SELECT count(*) FROM {view} WHERE {column} IS NULL")
        if nulls:
            problems.append(f"{name}: {nulls} nulls")
    dtype = rules["dtype"]
    if dtype.startswith("datetime64"):
        values = [
            v
            for (v,) in _rows(
                con, f"SELECT DISTINCT {column} FROM {view} WHERE {column} IS NOT NULL"
            )
        ]
        bad = [v for v in values if not ISO_TIMESTAMP.match(v)]
        if bad:
            problems.append(f"{name}: not ISO {bad[:3]}")
        if count(f"TRY_CAST({column} AS TIMESTAMP) IS NULL"):
            problems.append(f"{name}: unparseable timestamps")
    elif dtype == "Int64" and count(f"TRY_CAST({column} AS BIGINT) IS NULL"):
        problems.append(f"{name}: not an integer")
    elif dtype == "Float64":
        if count(f"TRY_CAST({column} AS DOUBLE) IS NULL"):
            problems.append(f"{name}: not a number")
        if count(f"NOT regexp_full_match({column}, '\\d+\\.\\d{{2}}')"):
            problems.append(f"{name}: money without 2 decimals")
    elif dtype == "boolean" and count(f"{column} NOT IN ('true', 'false')"):
        problems.append(f"{name}: not a boolean")
    if "isin" in rules:
        allowed = [str(value) for value in rules["isin"]]
        bad = [
            v
            for (v,) in _rows(con, f"SELECT DISTINCT {column} FROM {view}")
            if v is not None and v not in allowed
        ]
        if bad:
            problems.append(f"{name}: values outside the set {bad}")
    for check, bound in (("greater_than_or_equal_to", ">="), ("greater_than", ">")):
        if check in rules and count(f"NOT (TRY_CAST({column} AS DOUBLE) {bound} {rules[check]})"):
            problems.append(f"{name}: violates {check} {rules[check]}")
    if "in_range" in rules:
        low, high = rules["in_range"]["min_value"], rules["in_range"]["max_value"]
        if count(f"NOT (TRY_CAST({column} AS DOUBLE) BETWEEN {low} AND {high})"):
            problems.append(f"{name}: outside {low}..{high}")
    if "str_matches" in rules:
        pattern = rules["str_matches"]
        if count(f"NOT regexp_matches({column}, '{pattern}')"):
            problems.append(f"{name}: does not match {pattern}")
    if "str_length" in rules and count(f"length({column}) < {rules['str_length']['min_value']}"):
        problems.append(f"{name}: too short")
    return problems


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_value_is_valid_per_schema(con: duckdb.DuckDBPyConnection, entity: str) -> None:
    view = entity.replace("/", "__")
    problems = [
        problem
        for name, rules in _schema(entity)["columns"].items()
        for problem in _violations(con, view, name, rules)
    ]
    assert problems == []


def test_fx_rates_are_valid(landing: GenerationSummary) -> None:
    connection = duckdb.connect()
    connection.read_csv(str(landing.out_dir / "fx_rates.csv"), all_varchar=True).create_view(
        "fx_rates"
    )
    problems = [
        problem
        for name, rules in _schema("fx_rates")["columns"].items()
        if name != "usd_per_unit"  # six decimals, not money
        for problem in _violations(connection, "fx_rates", name, rules)
    ]
    assert problems == []
    first, last, currencies = connection.execute(
        "SELECT min(date::DATE), max(date::DATE), list(DISTINCT currency ORDER BY currency) "
        "FROM fx_rates"
    ).fetchone()
    assert currencies == ["EUR", "GBP"]
    assert last == END_DATE
    assert first <= END_DATE - timedelta(days=4 * 365)
    assert _scalar(connection, "SELECT min(usd_per_unit::DOUBLE) FROM fx_rates") > 0


@pytest.mark.parametrize("entity", ENTITIES)
def test_keys_are_unique_within_each_file(con: duckdb.DuckDBPyConnection, entity: str) -> None:
    view, key = entity.replace("/", "__"), _primary_key(entity)
    duplicates = _scalar(con, f"SELECT count(*) - count(DISTINCT (export_date, {key})) FROM {view}")
    assert duplicates == 0


def test_ids_look_like_ids(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(
        con, "SELECT bool_and(regexp_full_match(account_id, 'ACC-\\d{7}')) FROM crm__accounts"
    )
    for view, column, prefix in (
        ("crm__opportunities", "opportunity_id", "OPP"),
        ("billing__invoices", "invoice_id", "INV"),
        ("billing__subscriptions", "subscription_id", "SUB"),
        ("support__tickets", "ticket_id", "TKT"),
        ("crm__activities", "activity_id", "ACT"),
    ):
        assert _scalar(con, f"SELECT bool_and(starts_with({column}, '{prefix}-')) FROM {view}")


def test_no_personal_data_in_names(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM crm__accounts WHERE account_name LIKE '%@%' "
            "OR regexp_matches(account_name, '\\d{5,}')",
        )
        == 0
    )


# --- referential integrity and time --------------------------------------------------------


@pytest.mark.parametrize("entity", [e for e in ENTITIES if e != "crm/accounts"])
def test_children_reference_accounts_known_by_their_export(
    con: duckdb.DuckDBPyConnection, entity: str
) -> None:
    view = entity.replace("/", "__")
    orphans = _scalar(
        con,
        f"""
        SELECT count(*) FROM {view} AS child
        WHERE NOT EXISTS (SELECT 1 FROM crm__accounts AS a
                          WHERE a.account_id = child.account_id
                            AND a.export_date <= child.export_date
                            AND a.is_deleted = 'false')""",
    )
    assert orphans == 0


def test_deleted_accounts_have_no_children(con: duckdb.DuckDBPyConnection) -> None:
    for entity in ENTITIES[1:]:
        view = entity.replace("/", "__")
        assert (
            _scalar(
                con,
                f"""SELECT count(*) FROM {view} WHERE account_id IN
            (SELECT account_id FROM crm__accounts WHERE is_deleted = 'true')""",
            )
            == 0
        )


def test_invoices_reference_known_subscriptions(con: duckdb.DuckDBPyConnection) -> None:
    orphans = _scalar(
        con,
        """
        SELECT count(*) FROM billing__invoices AS i
        WHERE NOT EXISTS (SELECT 1 FROM billing__subscriptions AS s
                          WHERE s.subscription_id = i.subscription_id
                            AND s.account_id = i.account_id
                            AND s.export_date <= i.export_date)""",
    )
    assert orphans == 0


@pytest.mark.parametrize("entity", ENTITIES)
def test_nothing_is_dated_after_its_export(con: duckdb.DuckDBPyConnection, entity: str) -> None:
    view = entity.replace("/", "__")
    time_columns = [
        name
        for name, rules in _schema(entity)["columns"].items()
        if rules["dtype"].startswith("datetime64")
    ]
    for column in time_columns:
        late = _scalar(
            con,
            f"SELECT count(*) FROM {view} "
            f"WHERE {column}::TIMESTAMP >= export_date + INTERVAL 1 DAY",
        )
        assert late == 0, column


def test_timestamps_are_ordered_within_rows(con: duckdb.DuckDBPyConnection) -> None:
    checks = {
        "crm__accounts": "updated_at::TIMESTAMP < created_at::TIMESTAMP",
        "crm__opportunities": "closed_at::TIMESTAMP < created_at::TIMESTAMP "
        "OR updated_at::TIMESTAMP < created_at::TIMESTAMP",
        "billing__subscriptions": "ended_at::TIMESTAMP < started_at::TIMESTAMP",
        "billing__invoices": "paid_at::TIMESTAMP < issued_at::TIMESTAMP",
        "support__tickets": "solved_at::TIMESTAMP < created_at::TIMESTAMP",
    }
    for view, condition in checks.items():
        assert _scalar(con, f"SELECT count(*) FROM {view} WHERE {condition}") == 0, view


def test_state_matches_status(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM crm__opportunities WHERE (stage = 'open') <> (closed_at IS NULL)",
        )
        == 0
    )
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM billing__subscriptions "
            "WHERE (status = 'canceled') <> (ended_at IS NOT NULL)",
        )
        == 0
    )
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM billing__invoices "
            "WHERE (status = 'paid') <> (paid_at IS NOT NULL)",
        )
        == 0
    )


# --- snapshot and deltas ---------------------------------------------------------------------


def test_deltas_update_keys_with_later_updated_at(con: duckdb.DuckDBPyConnection) -> None:
    for entity in ("crm/accounts", "billing/invoices"):
        view, key = entity.replace("/", "__"), _primary_key(entity)
        repeated, not_later = con.execute(f"""
            WITH ordered AS (
                SELECT {key}, updated_at::TIMESTAMP AS updated_at,
                       lag(updated_at::TIMESTAMP) OVER (PARTITION BY {key}
                                                        ORDER BY export_date) AS previous
                FROM {view})
            SELECT count(*) FILTER (WHERE previous IS NOT NULL),
                   count(*) FILTER (WHERE previous IS NOT NULL AND updated_at <= previous)
            FROM ordered""").fetchone()
        assert repeated > 0, entity
        assert not_later == 0, entity


def test_deltas_hold_only_changes_of_their_day(
    con: duckdb.DuckDBPyConnection, landing: GenerationSummary
) -> None:
    first = landing.export_dates[0]
    for entity in ENTITIES:
        view = entity.replace("/", "__")
        stale = _scalar(
            con,
            f"SELECT count(*) FROM {view} WHERE export_date > DATE '{first}' "
            f"AND updated_at::TIMESTAMP < export_date",
        )
        assert stale == 0, entity


def test_deltas_contain_deletions_and_changes(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM crm__accounts WHERE is_deleted = 'true'") >= 1
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM crm__accounts a JOIN crm__accounts b "
            "USING (account_id) WHERE a.export_date < b.export_date "
            "AND a.employee_count IS DISTINCT FROM b.employee_count",
        )
        >= 1
    )
    new_rows = {
        view: _scalar(
            con,
            f"SELECT count(*) FROM {view} WHERE export_date > "
            f"(SELECT min(export_date) FROM {view}) "
            f"AND {created}::DATE = export_date",
        )
        for view, created in (
            ("crm__activities", "occurred_at"),
            ("billing__invoices", "issued_at"),
        )
    }
    assert all(count >= 1 for count in new_rows.values()), new_rows
    closed_in_delta = _scalar(
        con,
        "SELECT count(*) FROM crm__opportunities a "
        "JOIN crm__opportunities b USING (opportunity_id) "
        "WHERE a.stage = 'open' AND b.stage <> 'open' "
        "AND a.export_date < b.export_date",
    )
    paid_in_delta = _scalar(
        con,
        "SELECT count(*) FROM billing__invoices a "
        "JOIN billing__invoices b USING (invoice_id) "
        "WHERE a.status = 'open' AND b.status = 'paid' "
        "AND a.export_date < b.export_date",
    )
    assert closed_in_delta + paid_in_delta >= 1


# --- planted ICP ---------------------------------------------------------------------------


def test_truth_covers_every_account(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM truth") == _scalar(
        con, "SELECT count(DISTINCT account_id) FROM crm__accounts"
    )
    segments = {s for (s,) in _rows(con, "SELECT DISTINCT planted_segment FROM truth")}
    assert segments == set(PLANTED_SEGMENTS)
    reasons = _rows(
        con, "SELECT planted_segment, anti_icp_reason, count(*) FROM truth GROUP BY ALL"
    )
    for segment, reason, _ in reasons:
        assert (reason in ANTI_ICP_REASONS) == (segment == "anti_icp")


def test_planted_rules_hold_on_the_data(con: duckdb.DuckDBPyConnection) -> None:
    icp_rule = """
        business_model = 'b2b_saas'
        AND regexp_replace(lower(industry), '[^a-z0-9]', '', 'g') IN ('software', 'fintech')
        AND employee_count::INT BETWEEN 100 AND 1000
        AND country IN ('US', 'GB', 'DE', 'NL', 'CA') AND deployment = 'cloud'
        AND regexp_matches(lower(tech_stack), 'snowflake|dbt|segment')
        AND funding_stage IN ('series_a', 'series_b', 'series_c_plus')"""
    anti_rule = "business_model = 'agency' OR employee_count::INT < 20 OR deployment = 'on_prem'"
    rows = dict(
        _rows(
            con,
            f"""
        SELECT planted_segment,
               count(*) FILTER (WHERE ({icp_rule}) IS NOT DISTINCT FROM false
                                  OR ({anti_rule}) IS NOT DISTINCT FROM true)
        FROM crm__accounts_latest JOIN truth USING (account_id)
        WHERE planted_segment = 'icp' GROUP BY 1""",
        )
    )
    assert rows == {"icp": 0}
    neutral_breaking = _scalar(
        con,
        f"""
        SELECT count(*) FROM crm__accounts_latest JOIN truth USING (account_id)
        WHERE planted_segment = 'neutral' AND (({icp_rule}) OR ({anti_rule}))""",
    )
    assert neutral_breaking == 0
    anti_without_trait = _scalar(
        con,
        f"""
        SELECT count(*) FROM crm__accounts_latest JOIN truth USING (account_id)
        WHERE planted_segment = 'anti_icp' AND ({anti_rule}) IS NOT DISTINCT FROM false""",
    )
    assert anti_without_trait == 0


def test_messiness_is_present(con: duckdb.DuckDBPyConnection) -> None:
    missing_employees, missing_industry, spellings = con.execute("""
        SELECT avg((employee_count IS NULL)::INT), avg((industry IS NULL)::INT),
               count(DISTINCT industry) FILTER (WHERE regexp_replace(lower(industry),
                   '[^a-z0-9]', '', 'g') = 'software')
        FROM crm__accounts_latest""").fetchone()
    assert 0.02 < missing_employees < 0.12
    assert 0.01 < missing_industry < 0.10
    assert spellings >= 3


def test_icp_wins_more_often(con: duckdb.DuckDBPyConnection) -> None:
    win_rate = dict(
        _rows(
            con,
            """
        SELECT planted_segment, avg((stage = 'won')::INT)
        FROM crm__opportunities_latest JOIN truth USING (account_id)
        WHERE stage <> 'open' GROUP BY 1""",
        )
    )
    assert win_rate["icp"] > 2 * win_rate["anti_icp"]
    assert win_rate["icp"] > win_rate["neutral"] > win_rate["anti_icp"]


def test_anti_icp_churns_fast_and_costs_support(con: duckdb.DuckDBPyConnection) -> None:
    churn = dict(
        _rows(
            con,
            """
        SELECT planted_segment,
               avg((status = 'canceled' AND ended_at::TIMESTAMP
                    < started_at::TIMESTAMP + INTERVAL 90 DAY)::INT)
        FROM billing__subscriptions_latest JOIN truth USING (account_id) GROUP BY 1""",
        )
    )
    assert churn["anti_icp"] > 3 * churn["icp"]
    tickets_per_dollar = dict(
        _rows(
            con,
            """
        WITH paid AS (
            SELECT account_id, sum(amount::DOUBLE) AS billed
            FROM billing__invoices_latest GROUP BY 1),
        tickets AS (SELECT account_id, count(*) AS tickets, avg(csat::INT) AS csat
                    FROM support__tickets_latest GROUP BY 1)
        SELECT planted_segment, sum(tickets) / sum(billed)
        FROM paid JOIN tickets USING (account_id) JOIN truth USING (account_id) GROUP BY 1""",
        )
    )
    assert tickets_per_dollar["anti_icp"] > 3 * tickets_per_dollar["icp"]
    csat = dict(
        _rows(
            con,
            """SELECT planted_segment, avg(csat::INT)
        FROM support__tickets_latest JOIN truth USING (account_id) GROUP BY 1""",
        )
    )
    assert csat["icp"] > csat["neutral"] > csat["anti_icp"]
    uncollectible = dict(
        _rows(
            con,
            """SELECT planted_segment,
        avg((status = 'uncollectible')::INT)
        FROM billing__invoices_latest JOIN truth USING (account_id) GROUP BY 1""",
        )
    )
    assert uncollectible["anti_icp"] > 5 * uncollectible["icp"]


def test_icp_expands_mrr(con: duckdb.DuckDBPyConnection) -> None:
    growth = dict(
        _rows(
            con,
            """
        WITH ranked AS (
            SELECT account_id, amount::DOUBLE AS amount,
                   row_number() OVER (PARTITION BY account_id ORDER BY issued_at) AS n,
                   row_number() OVER (PARTITION BY account_id ORDER BY issued_at DESC) AS m
            FROM billing__invoices_latest)
        SELECT planted_segment, sum(amount) FILTER (WHERE m = 1)
                                / sum(amount) FILTER (WHERE n = 1)
        FROM ranked JOIN truth USING (account_id) GROUP BY 1""",
        )
    )
    assert growth["icp"] > growth["neutral"] > growth["anti_icp"] >= 1.0


def test_buying_signals_go_with_winning(con: duckdb.DuckDBPyConnection) -> None:
    signal_rate = dict(
        _rows(
            con,
            """
        WITH outcome AS (
            SELECT account_id, bool_or(stage = 'won') AS has_won
            FROM crm__opportunities_latest WHERE stage <> 'open' GROUP BY 1),
        signals AS (
            SELECT account_id, count(*) FILTER (WHERE activity_type IN
                ('demo_request', 'pricing_page_visit', 'meeting')) AS signals
            FROM crm__activities_latest GROUP BY 1)
        SELECT has_won, avg(coalesce(signals, 0))
        FROM outcome LEFT JOIN signals USING (account_id) GROUP BY 1""",
        )
    )
    assert signal_rate[True] > 1.5 * signal_rate[False]
