"""Great Expectations on the published tables (schemas/expectations/).

Guarantees: the suites pass on a real pipeline run and its Data Docs are written; a broken
score fails the blocking check ``published_tables_meet_expectations``, the run fails naming
the expectation, and readers still see the previous version; validating in chunks gives the
verdict of one batch, including a duplicate key split across chunks.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_project.defs.publish.assets import EXPECTATIONS_CHECK, published_marts
from dagster_project.defs.resources import ScoringConfigResource, WarehouseResource
from dagster_project.publish import DB_FILE, current_parquet_version, published_dir_for
from dagster_project.publish.quality import (
    QUALITY_DOCS_DIR,
    VALIDATED_TABLES,
    load_suite_document,
    suite_parameters,
    validate_published_tables,
)
from dagster_project.scoring.config import load_scoring_config
from dagster_project.sql import string_literal

SCORES = "account_fit_scores"


def _parameters(settings, as_of: date) -> dict:
    return suite_parameters(as_of, load_scoring_config(settings.scoring_config_path).routes)


def _published_version(published: Path) -> tuple[str, str]:
    with duckdb.connect(str(published / DB_FILE), read_only=True) as con:
        db_version = con.execute("SELECT version FROM meta.publish_info").fetchone()[0]
    return db_version, current_parquet_version(published).name


def _as_of(version_dir: Path) -> date:
    with duckdb.connect() as con:
        return con.execute(
            "SELECT max(as_of_date) FROM read_parquet("
            f"{string_literal(version_dir / SCORES / '**' / '*.parquet')}, "
            "hive_partitioning = true)"
        ).fetchone()[0]


def test_suites_pass_on_the_pipeline_run_and_data_docs_are_written(pipeline_run, tmp_path):
    settings, summary = pipeline_run
    assert summary.success, summary.failures
    assert EXPECTATIONS_CHECK not in " ".join(summary.checks_failed)
    published = published_dir_for(settings.warehouse_path)
    index = published / QUALITY_DOCS_DIR / "index.html"
    assert index.is_file(), "the run wrote Data Docs"
    assert (published / QUALITY_DOCS_DIR).is_symlink(), "swapped in through a symlink"
    html = index.read_text(encoding="utf-8")
    version = current_parquet_version(published)
    assert version.name in html, "the docs name the published version"
    for table in VALIDATED_TABLES:
        # Plain links (no CDN script needed offline) to each table's page, which exists.
        link = re.search(rf'<a href="(validations/{table}/[^"]+\.html)">{table}</a>: passed', html)
        assert link, table
        assert (published / QUALITY_DOCS_DIR / link.group(1)).is_file()

    report = validate_published_tables(
        version, version=version.name, parameters=_parameters(settings, _as_of(version))
    )
    assert report.success, report.failure_lines()
    for outcome in report.tables:
        assert outcome.rows > 0
        assert len(outcome.outcomes) == len(load_suite_document(outcome.table)["expectations"])


def _broken_copy(version: Path, tmp_path: Path) -> Path:
    """A copy of a published version whose scores break three expectations: a fit_score of
    150, a NULL fit_tier, and the first account duplicated as the very last row (so in chunks
    the two rows land in different chunks)."""
    copy = tmp_path / "broken"
    shutil.copytree(version, copy)
    folder = copy / SCORES
    source = string_literal(version / SCORES / "**" / "*.parquet")
    shutil.rmtree(folder)
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE scores AS SELECT * FROM "
            f"read_parquet({source}, hive_partitioning = true) ORDER BY account_id"
        )
        first, second = con.execute(
            "SELECT account_id FROM scores ORDER BY account_id LIMIT 2"
        ).fetchall()
        con.execute("UPDATE scores SET fit_score = 150 WHERE account_id = $id", {"id": first[0]})
        con.execute("UPDATE scores SET fit_tier = NULL WHERE account_id = $id", {"id": second[0]})
        con.execute(
            "CREATE TABLE broken AS SELECT * FROM (SELECT *, 0 AS _order FROM scores UNION ALL "
            "SELECT *, 1 FROM scores WHERE account_id = $id) ORDER BY _order, account_id",
            {"id": second[0]},
        )
        (as_of,) = con.execute("SELECT DISTINCT as_of_date FROM broken").fetchone()
        con.execute("ALTER TABLE broken DROP COLUMN _order")
        con.execute("ALTER TABLE broken DROP COLUMN as_of_date")
        partition = folder / f"as_of_date={as_of.isoformat()}"
        partition.mkdir(parents=True)
        # One file, rows in insertion order: the duplicate stays last.
        con.execute(
            f"COPY broken TO {string_literal(partition / 'part_0.parquet')} (FORMAT parquet)"
        )
    return copy


def _verdicts(report) -> dict[tuple[str, str], tuple[bool, int | None]]:
    return {
        (t.table, o.label): (o.success, o.unexpected_count)
        for t in report.tables
        for o in t.outcomes
    }


def test_chunked_validation_gives_the_verdict_of_one_batch(pipeline_run, tmp_path):
    settings, _ = pipeline_run
    version = current_parquet_version(published_dir_for(settings.warehouse_path))
    parameters = _parameters(settings, _as_of(version))
    broken = _broken_copy(version, tmp_path)

    for folder in (version, broken):
        whole = validate_published_tables(
            folder, version=folder.name, parameters=parameters, chunk_rows=10_000_000
        )
        chunked = validate_published_tables(
            folder, version=folder.name, parameters=parameters, chunk_rows=97
        )
        assert all(t.chunks == 1 for t in whole.tables)
        assert next(t for t in chunked.tables if t.table == SCORES).chunks > 1
        assert _verdicts(chunked) == _verdicts(whole)
        assert chunked.success is whole.success is (folder == version)

    failed = {
        (o.expectation_type, o.kwargs.get("column")): o for t in chunked.tables for o in t.failures
    }
    assert failed[("expect_column_values_to_be_between", "fit_score")].examples == (150.0,)
    assert failed[("expect_column_values_to_not_be_null", "fit_tier")].unexpected_count == 2
    unique = failed[("expect_column_values_to_be_unique", "account_id")]
    assert unique.unexpected_count == 2 and unique.evaluated_by == "duckdb"
    by_ge = next(
        o
        for t in whole.tables
        for o in t.failures
        if o.expectation_type == "expect_column_values_to_be_unique"
    )
    assert by_ge.evaluated_by == "great_expectations" and by_ge.unexpected_count == 2


def _materialize_publish(warehouse: Path, settings, as_of: date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [published_marts],
        partition_key=as_of.isoformat(),
        resources={
            "warehouse": WarehouseResource(path=str(warehouse)),
            "scoring_config": ScoringConfigResource(path=str(settings.scoring_config_path)),
        },
        raise_on_error=False,
    )


def _check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == EXPECTATIONS_CHECK
    ]


def test_a_broken_score_fails_the_check_and_publishes_nothing(pipeline_run, tmp_path, monkeypatch):
    monkeypatch.delenv("ICP_PUBLISHED_DIR", raising=False)
    settings, _ = pipeline_run
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(settings.warehouse_path, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        as_of = con.execute(f"SELECT max(as_of_date) FROM marts.{SCORES}").fetchone()[0]
    published = published_dir_for(warehouse)

    good = _materialize_publish(warehouse, settings, as_of)
    assert good.success
    (passed,) = _check_evaluations(good)
    assert passed.passed and passed.metadata["expectations_evaluated"].value > 60
    before = _published_version(published)
    docs_before = (published / QUALITY_DOCS_DIR).resolve()

    with duckdb.connect(str(warehouse)) as con:
        account = con.execute(f"SELECT min(account_id) FROM marts.{SCORES}").fetchone()[0]
        for table in (SCORES, "account_fit_score_history"):
            con.execute(
                f"UPDATE marts.{table} SET fit_score = 150 "
                "WHERE account_id = $id AND as_of_date = $as_of",
                {"id": account, "as_of": as_of},
            )

    broken = _materialize_publish(warehouse, settings, as_of)
    assert not broken.success
    (failed,) = _check_evaluations(broken)
    assert not failed.passed
    assert "fit_score" in failed.description and "150" in failed.description
    (failure,) = [e for e in broken.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "expect_column_values_to_be_between" in message and "fit_score" in message
    assert _published_version(published) == before, "readers still see the previous version"
    with duckdb.connect(str(published / DB_FILE), read_only=True) as con:
        assert con.execute(f"SELECT max(fit_score) FROM marts.{SCORES}").fetchone()[0] <= 100
    assert not list((published / "parquet").glob(".tmp-*")), "no leftovers"
    # The Data Docs show the rejected version's failures (why nothing was published).
    docs_now = (published / QUALITY_DOCS_DIR).resolve()
    assert docs_now != docs_before and (docs_now / "index.html").is_file()


def test_an_empty_profile_passes_and_an_empty_score_table_fails(pipeline_run, tmp_path):
    # A run whose data support no learned ICP publishes icp_profile with no rows (and so no
    # Parquet file): that is valid. Scores with no rows are not.
    settings, _ = pipeline_run
    version = current_parquet_version(published_dir_for(settings.warehouse_path))
    copy = tmp_path / "empty"
    shutil.copytree(version, copy)
    for table in ("icp_profile", SCORES):
        shutil.rmtree(copy / table)
        (copy / table).mkdir()
    report = validate_published_tables(
        copy, version=copy.name, parameters=_parameters(settings, _as_of(version))
    )
    by_table = {t.table: t for t in report.tables}
    assert by_table["icp_profile"].success, by_table["icp_profile"].failures
    assert [o.expectation_type for o in by_table[SCORES].failures] == [
        "expect_table_row_count_to_be_between"
    ]


def test_a_missing_column_fails_with_its_error(pipeline_run, tmp_path):
    settings, _ = pipeline_run
    version = current_parquet_version(published_dir_for(settings.warehouse_path))
    copy = tmp_path / "no_route"
    shutil.copytree(version, copy)
    source = string_literal(version / SCORES / "**" / "*.parquet")
    shutil.rmtree(copy / SCORES)
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT * EXCLUDE (route) FROM "
            f"read_parquet({source}, hive_partitioning = true)) "
            f"TO {string_literal(copy / SCORES)} (FORMAT parquet, PARTITION_BY (as_of_date))"
        )
    report = validate_published_tables(
        copy, version=copy.name, parameters=_parameters(settings, _as_of(version))
    )
    failed = [o for t in report.tables for o in t.failures]
    errored = [o for o in failed if o.error]
    assert len(errored) == 5, [o.label for o in errored]  # four on route, one pair with it
    assert all("route" in (o.kwargs.get("column"), o.kwargs.get("column_B")) for o in errored)
    assert any(o.expectation_type == "expect_table_columns_to_match_set" for o in failed)


def test_a_suite_with_an_expectation_not_exact_in_chunks_is_refused(tmp_path):
    # A mean over chunks is not the mean of the table: refused rather than misjudged.
    (tmp_path / "t.json").write_text(
        '{"name": "t", "expectations": [{"type": "expect_column_mean_to_be_between", '
        '"kwargs": {"column": "fit_score", "min_value": 0}}]}',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="expect_column_mean_to_be_between"):
        load_suite_document("t", tmp_path)
    for table in VALIDATED_TABLES:
        assert load_suite_document(table)["name"] == table
