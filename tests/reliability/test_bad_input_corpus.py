"""Guarantee: bad input never corrupts.

Every case of the corpus in :mod:`tests.reliability.bad_inputs` damages a copy of a valid
landing zone. The ingest then either fails with a message naming the file (and the column)
and leaves every raw table and the quarantine exactly as they were, or loads the file with
the bad rows in ``raw.quarantined_rows`` (file, line, rule) and rows read = rows loaded + rows
quarantined per file. The slow test runs the same corpus cases through the whole Dagster
pipeline and checks that the published marts do not change when a file fails.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import LandingError
from dagster_project.ingest.loader import IngestResult, ingest_entity
from tests.reliability.bad_inputs import (
    CASES,
    ENTITY_ORDER,
    PRIMARY_KEYS,
    Expected,
    Quarantined,
    write_valid_landing,
)

CONTRACTS = load_contracts()
QUARANTINE_COLUMNS = "entity, source_file, line_number, rule, column_name, rules_broken"


def _ingest_all(con, landing: Path) -> dict[str, IngestResult]:
    return {e: ingest_entity(con, CONTRACTS[e], landing, None) for e in ENTITY_ORDER}


def _snapshot(con) -> dict[str, list[tuple]]:
    """Every raw table and the quarantine (without its timestamp), in a stable order."""
    tables = {
        name: con.execute(f'SELECT * FROM raw."{name}" ORDER BY ALL').fetchall()
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' "
            "AND table_name <> 'quarantined_rows' ORDER BY 1"
        ).fetchall()
    }
    tables["quarantined_rows"] = con.execute(
        "SELECT * EXCLUDE (quarantined_at) FROM raw.quarantined_rows ORDER BY ALL"
    ).fetchall()
    return tables


def _quarantine(con) -> list[tuple]:
    return con.execute(
        f"SELECT {QUARANTINE_COLUMNS} FROM raw.quarantined_rows ORDER BY ALL"
    ).fetchall()


def _expected_quarantine(rows: tuple[Quarantined, ...], entity_of: dict[str, str]) -> list[tuple]:
    return sorted(
        (entity_of[q.file], q.file, q.line, q.rule, q.column, list(q.rules_broken)) for q in rows
    )


def _entity_of_file(file: str) -> str:
    if file == "fx_rates.csv":
        return "reference/fx_rates"
    _, source, name = file.split("/")
    return f"{source}/{name.split('.')[0]}"


def _assert_stored(con, expected: Expected) -> None:
    for entity, key, column, value in expected.stored:
        table = CONTRACTS[entity].raw_table
        rows = con.execute(
            f'SELECT CAST("{column}" AS VARCHAR) FROM raw."{table}" '
            f'WHERE "{PRIMARY_KEYS[entity]}" = ?',
            [key],
        ).fetchall()
        assert rows == [(value,)], (entity, key, column)


def _assert_failure_message(message: str, expected: Expected) -> None:
    assert expected.file in message, message
    for pattern in expected.failure:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert len(message) < 1500, "a failure message stays short (no quoted 10 MB line)"


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny valid landing zone and a warehouse holding its clean ingest."""
    root = tmp_path_factory.mktemp("tiny")
    landing = write_valid_landing(root / "landing")
    warehouse = root / "baseline.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        results = _ingest_all(con, landing)
        assert _quarantine(con) == [], "the tiny landing zone is valid"
        assert [w for r in results.values() for w in r.warnings] == [], "and warns of nothing"
    assert all(f.reconciles for r in results.values() for f in r.files)
    return landing, warehouse


def test_the_corpus_covers_the_issue_list():
    assert len(CASES) >= 80
    assert sum(1 for name in CASES if name.startswith("dates_")) >= 15
    for name in (
        "truncated_mid_record",
        "empty_file",
        "header_only",
        "semicolon_delimiter",
        "latin1_bytes",
        "utf8_bom",
        "missing_required_column",
        "extra_columns",
        "duplicate_keys",
        "negative_money",
        "non_numeric_money",
        "unknown_enum_values",
        "orphan_foreign_keys",
        "ten_mb_field",
        "formula_text",
        "sql_text",
        "dotdot_symlink",
        "symlink_out_of_root",
        "parquet_wrong_types",
        # issue 17: nothing silently changed
        "header_zero_width_space",
        "header_bom_mid_line",
        "header_synonym_employees",
        "optional_column_dropped",
        "keys_whitespace_only",
        "keys_collide_after_trim",
        "keys_case_sensitive",
        "money_overflow_after_fx",
        "number_infinity_words",
        "dates_feb_29_non_leap",
        "dates_hour_24",
        "dates_leap_second",
        "dates_offset_out_of_range",
        "dates_sentinel_low",
        "dates_sentinel_high",
        "dates_epoch_numbers",
        "dates_instants_exact",
    ):
        assert name in CASES


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_quarantined_or_fails_naming_the_file(name, tiny_baseline, tmp_path):
    baseline_landing, baseline_warehouse = tiny_baseline
    landing = tmp_path / "landing"
    shutil.copytree(baseline_landing, landing, symlinks=True)
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(baseline_warehouse, warehouse)
    expected = CASES[name].build(landing)

    with duckdb.connect(str(warehouse)) as con:
        before = _snapshot(con)
        if expected.fails:
            for entity in ENTITY_ORDER:
                if entity == expected.entity:
                    with pytest.raises(LandingError) as failure:
                        ingest_entity(con, CONTRACTS[entity], landing, None)
                    _assert_failure_message(str(failure.value), expected)
                    break
                ingest_entity(con, CONTRACTS[entity], landing, None)
            assert _snapshot(con) == before, "a failed ingest changes no table"
            return

        results = _ingest_all(con, landing)
        for result in results.values():
            for counts in result.files:
                assert counts.reconciles, counts
        counts = {f.relative_path: f for f in results[expected.entity].files}
        assert expected.file in counts, f"{expected.file} was not read"
        file_counts = counts[expected.file]
        got = (file_counts.rows_read, file_counts.rows_loaded, file_counts.rows_quarantined)
        assert got == expected.file_counts
        assert _quarantine(con) == _expected_quarantine(
            expected.quarantined, {q.file: _entity_of_file(q.file) for q in expected.quarantined}
        )
        raw_values = con.execute(
            "SELECT raw_values FROM raw.quarantined_rows WHERE json_type(raw_values) <> 'OBJECT'"
        ).fetchall()
        assert raw_values == [], "every quarantined row keeps its raw values"
        _assert_stored(con, expected)
        _assert_warnings([w for r in results.values() for w in r.warnings], expected)
        assert set(_snapshot(con)) == set(before), "no table appears or disappears"


def _assert_warnings(warnings: list[str], expected: Expected) -> None:
    """Exactly the expected warnings, each matched by its own pattern."""
    assert len(warnings) == len(expected.warnings), warnings
    for pattern, warning in zip(sorted(expected.warnings), sorted(warnings), strict=True):
        assert re.search(pattern, warning), f"{pattern!r} does not match {warning!r}"


# ----------------------------------------------------------------------------------------------
# The whole pipeline: published marts survive a failed ingest

PUBLISHED = ("marts.account_fit_scores", "marts.account_fit_score_history")
#: File-level failures run through the pipeline, one ingest asset each.
PIPELINE_FAILURES = ("missing_required_column", "latin1_bytes", "symlink_out_of_root")


def _published(warehouse: Path) -> dict[str, tuple[list[tuple], list[tuple]]]:
    """Column types and every row of the published score tables."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            table: (
                con.execute(f"DESCRIBE {table}").fetchall(),
                con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall(),
            )
            for table in PUBLISHED
        }


def _null_countries(warehouse: Path) -> tuple[int, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT count(*) FILTER (WHERE country IS NULL), count(*) FROM marts.dim_accounts"
        ).fetchone()


@pytest.mark.slow
def test_pipeline_fails_naming_the_file_and_keeps_published_scores(sample_landing, tmp_path):
    from dagster_project.run import run_pipeline
    from tests.conftest import settings_for

    warehouse = tmp_path / "warehouse.duckdb"

    def landing_for(name: str) -> tuple[Path, Expected | None]:
        landing = tmp_path / name / "landing"
        shutil.copytree(sample_landing, landing, symlinks=True)
        return landing, (CASES[name].build(landing) if name in CASES else None)

    landing, _ = landing_for("valid")
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, summary.failures
    assert summary.rows_quarantined == 0
    published = _published(warehouse)
    assert published["marts.account_fit_scores"][1], "the valid run publishes scores"

    for name in PIPELINE_FAILURES:
        landing, expected = landing_for(name)
        summary = run_pipeline(settings_for(landing, warehouse))
        assert not summary.success, name
        failure = "\n".join(summary.failures)
        _assert_failure_message(failure, expected)
        assert CONTRACTS[expected.entity].raw_table in failure, failure
        assert _published(warehouse) == published, f"{name} changed the published scores"

    # Nothing silently changed (issue 17): a header with a zero-width space is still its
    # column in the marts, a synonym is a warning of the run summary, an amount infinite in
    # USD is quarantined and never published.
    countries = _null_countries(warehouse)
    landing, _ = landing_for("header_zero_width_space")
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, summary.failures
    assert _null_countries(warehouse) == countries, "country is read, not NULL"

    landing, expected = landing_for("header_synonym_employees")
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, summary.failures
    assert "raw/crm__accounts:headers_and_keys_as_expected" in summary.checks_warned
    assert any(re.search(expected.warnings[0], w) for w in summary.warnings), summary.warnings

    landing, expected = landing_for("money_overflow_after_fx")
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, summary.failures
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rules = con.execute("SELECT DISTINCT rule FROM raw.quarantined_rows").fetchall()
        infinite = con.execute(
            "SELECT count(*) FROM marts.dim_accounts WHERE NOT isfinite(annual_revenue_usd)"
        ).fetchone()[0]
    assert rules == [("non_finite_number",)]
    assert infinite == 0

    landing, expected = landing_for("orphan_foreign_keys")
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, summary.failures
    # Ingest checks (per-file reconciliation, pandera contract) are the blocking guards here;
    # drift warnings of later stages are not about bad input.
    ingest_checks_failed = [c for c in summary.checks_failed if c.startswith("raw/")]
    assert ingest_checks_failed == [], "every file reconciles, every contract check passes"
    assert summary.rows_quarantined == len(expected.quarantined)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _quarantine(con) == _expected_quarantine(
            expected.quarantined, {q.file: _entity_of_file(q.file) for q in expected.quarantined}
        )
