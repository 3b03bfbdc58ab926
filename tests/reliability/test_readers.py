"""Guarantee: readers never break.

A consumer reading the published marts at any moment (during a full run, a backfill or a
failed run) gets no error and sees one complete version: every account once, one as_of_date,
one score_version, the history rows of that date and dim_accounts of the same size. The
pipeline's warehouse file is its working file; readers use the published copy
(``published/icp_marts.duckdb`` and ``published/parquet/current``), which
:func:`dagster_project.publish.publish_marts` replaces atomically. See docs/consumers.md.

Fast tests exercise the publish function on a tiny warehouse (with a reader process looping
over many publishes); the slow ones run real pipelines on the sample landing zone while
reader processes loop.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dagster_project.publish import (
    CURRENT_LINK,
    DB_FILE,
    PARQUET_DIR,
    PUBLISHED_TABLES,
    PublishError,
    contact_pii_columns,
    current_parquet_version,
    publish_marts,
    published_dir_for,
)
from tests.conftest import settings_for
from tests.reliability.published_readers import (
    finish_readers,
    is_complete,
    make_tiny_warehouse,
    running_readers,
)

D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
HAS_POLARS = importlib.util.find_spec("polars") is not None
READER_MODES = ["duckdb", "parquet-duckdb", "parquet-pandas"] + (
    ["parquet-polars"] if HAS_POLARS else []
)


def _publish(warehouse: Path, published: Path, **kwargs):
    with duckdb.connect(str(warehouse)) as con:
        return publish_marts(con, published, **kwargs)


def _published_scores(published: Path) -> tuple:
    with duckdb.connect(str(published / DB_FILE), read_only=True) as con:
        return con.execute(
            "SELECT (SELECT version FROM meta.publish_info), count(*), min(as_of_date), "
            "max(as_of_date) FROM marts.account_fit_scores"
        ).fetchone()


def _leftovers(published: Path) -> list[str]:
    return [p.name for p in published.glob(f"{DB_FILE}.tmp-*")] + [
        p.name for p in (published / PARQUET_DIR).glob(".*")
    ]


# ---------------------------------------------------------------------------------------------
# Fast: the publish function on a tiny warehouse


def test_publish_is_atomic_for_readers(tmp_path):
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_tiny_warehouse(warehouse, D2, accounts=5)
    first = _publish(warehouse, published)
    assert first.row_counts["account_fit_scores"] == 5
    assert first.as_of_date == D2

    # A reader holding the old file open while a new version is published.
    old_reader = duckdb.connect(str(published / DB_FILE), read_only=True)
    try:
        make_tiny_warehouse(warehouse, D3, accounts=7, score_version="v2")
        second = _publish(warehouse, published)
        assert old_reader.execute(
            "SELECT count(*), min(as_of_date), max(as_of_date) FROM marts.account_fit_scores"
        ).fetchone() == (5, D2, D2), "an open reader keeps its version"
    finally:
        old_reader.close()
    assert _published_scores(published) == (second.version, 7, D3, D3), "a new open sees v2"

    current = current_parquet_version(published)
    assert current == (published / PARQUET_DIR / second.version).resolve()
    assert (published / PARQUET_DIR / first.version).is_dir(), "the previous version stays"
    assert (published / PARQUET_DIR / CURRENT_LINK).is_symlink()
    assert sorted(p.name for p in current.iterdir() if p.is_dir()) == sorted(PUBLISHED_TABLES)
    # The documented recipes: DuckDB through the `current` link, pandas on the resolved folder.
    scores_glob = published / PARQUET_DIR / CURRENT_LINK / "account_fit_scores" / "**/*.parquet"
    with duckdb.connect() as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT as_of_date), min(as_of_date) "
            f"FROM read_parquet('{scores_glob}', hive_partitioning = true)"
        ).fetchone() == (7, 1, D3)
    history = pd.read_parquet(current / "account_fit_score_history")
    assert sorted(history["as_of_date"].astype(str).unique()) == [str(D2), str(D3)]
    dim = pd.read_parquet(current / "dim_accounts")
    assert len(dim) == 7 and set(dim["as_of_date"].astype(str)) == {str(D3)}
    assert _leftovers(published) == []


def test_a_failing_check_publishes_nothing(tmp_path):
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_tiny_warehouse(warehouse, D2, accounts=5)
    good = _publish(warehouse, published)

    make_tiny_warehouse(warehouse, D3, accounts=6, extra_dim_column=", 'a@b.c' AS contact_email")
    with pytest.raises(PublishError, match="contact_email"):
        _publish(warehouse, published)

    make_tiny_warehouse(warehouse, D3, accounts=6)
    with duckdb.connect(str(warehouse)) as con:  # two versions in the current table
        con.execute(
            "INSERT INTO marts.account_fit_scores SELECT 'ACC-X', DATE '2026-11-19', 1, "
            "'low', [], 'v1'"
        )
    with pytest.raises(PublishError, match="as_of_dates"):
        _publish(warehouse, published)

    with duckdb.connect(str(warehouse)) as con:
        con.execute("DROP TABLE marts.icp_profile")
    with pytest.raises(PublishError, match="icp_profile"):
        _publish(warehouse, published)

    assert _published_scores(published) == (good.version, 5, D2, D2)
    assert current_parquet_version(published).name == good.version
    assert _leftovers(published) == []


def test_backfill_keeps_current_state_and_old_versions_are_pruned(tmp_path):
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_tiny_warehouse(warehouse, D3, accounts=6)
    _publish(warehouse, published)
    # A crash left these behind; the next publish removes them.
    (published / f"{DB_FILE}.tmp-crashed").write_bytes(b"partial")
    (published / PARQUET_DIR / ".tmp-v-crashed" / "dim_accounts").mkdir(parents=True)

    # A backfill of D1: the run added history rows of D1 (4 accounts); the current scores and
    # dim_accounts (D3) do not move.
    make_tiny_warehouse(warehouse, D1, accounts=4)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM marts.account_fit_scores")
        con.execute(
            "INSERT INTO marts.account_fit_scores FROM marts.account_fit_score_history "
            "WHERE as_of_date = $d",
            {"d": D3},
        )
    backfill = _publish(warehouse, published)
    assert backfill.as_of_date == D3 and backfill.row_counts["dim_accounts"] == 6
    assert sorted(backfill.removed) == [f"{DB_FILE}.tmp-crashed", f"{PARQUET_DIR}/.tmp-v-crashed"]
    with duckdb.connect(str(published / DB_FILE), read_only=True) as con:
        assert con.execute(
            "SELECT as_of_date, count(*) FROM marts.account_fit_score_history GROUP BY ALL "
            "ORDER BY 1"
        ).fetchall() == [(D1, 4), (D3, 6)]
        assert con.execute(
            "SELECT as_of_date, count(*) FROM marts.dim_accounts GROUP BY ALL ORDER BY 1"
        ).fetchall() == [(D3, 6)]

    for _ in range(4):
        last = _publish(warehouse, published, keep_versions=3)
    versions = sorted(p.name for p in (published / PARQUET_DIR).glob("v-*"))
    assert len(versions) == 3 and versions[-1] == last.version
    assert _leftovers(published) == []


def test_a_reader_process_never_sees_a_partial_version(tmp_path):
    """A reader process loops over the DuckDB file and the Parquet folders while 12 versions
    of different sizes are published."""
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_tiny_warehouse(warehouse, date(2026, 10, 31), accounts=3)
    _publish(warehouse, published)
    versions = []
    with running_readers(READER_MODES[:2], published, tmp_path / "readers") as readers:
        for i in range(12):
            as_of = date(2026, 11, 1 + i)
            make_tiny_warehouse(warehouse, as_of, accounts=3 + i, score_version=f"v{i}")
            versions.append(_publish(warehouse, published).version)
            time.sleep(0.05)
        time.sleep(0.3)
    for mode, observations in finish_readers(readers).items():
        _assert_complete_versions(observations, mode)
        assert observations[-1]["version"] == versions[-1]
        assert observations[-1]["rows"] == 14


def test_contact_pii_column_names():
    flagged = contact_pii_columns(
        [
            "account_id", "account_name", "domain", "segment_value", "owner_name",
            "contact_email", "Phone", "first_name", "LastName", "mobile_number", "fax",
            "emails_opened", "full_name", "user_name",
        ]
    )  # fmt: skip
    assert flagged == [
        "owner_name", "contact_email", "Phone", "first_name", "LastName", "mobile_number",
        "fax", "emails_opened", "full_name", "user_name",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Slow: real runs with reader processes looping


def _assert_complete_versions(observations: list[dict], mode: str) -> None:
    errors = [o["error"] for o in observations if "error" in o]
    assert errors == [], f"{mode}: {len(errors)} errors, e.g. {errors[:3]}"
    partial = [o for o in observations if not is_complete(o)]
    assert partial == [], f"{mode}: {len(partial)} partial versions, e.g. {partial[:3]}"
    assert len(observations) >= 5, f"{mode}: only {len(observations)} reads"


def _run_with_readers(published: Path, work: Path, run) -> tuple[object, dict[str, list[dict]]]:
    with running_readers(READER_MODES, published, work) as readers:
        started = time.perf_counter()
        summary = run()
        seconds = time.perf_counter() - started
        time.sleep(0.5)  # a few reads after the run
    observed = finish_readers(readers)
    print(
        f"{work.name}: run {seconds:.1f} s, reads per reader "
        + ", ".join(f"{m} {len(o)}" for m, o in observed.items())
    )
    return summary, observed


def _drop_column(csv_path: Path, column: str) -> None:
    """Remove ``column`` from a CSV file (header and rows; the file may have no rows)."""
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        header, *rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(header) if name.strip().lower() != column]
    assert len(keep) == len(header) - 1, f"{column} not in {csv_path}"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([[row[i] for i in keep] for row in [header, *rows]])


@pytest.fixture(scope="module")
def reader_scenario(sample_landing, tmp_path_factory, monkeypatch_module):
    """A warehouse published as of the day before the newest export, then, each with readers
    looping: a full run (newest date), a backfill of an earlier date, a failing run."""
    from dagster_project.ingest.landing import export_dates
    from dagster_project.run import run_pipeline

    monkeypatch_module.delenv("ICP_PUBLISHED_DIR", raising=False)
    root = tmp_path_factory.mktemp("readers")
    warehouse = root / "warehouse.duckdb"
    published = published_dir_for(warehouse)
    dates = export_dates(sample_landing)
    newest, previous, backfill_date = dates[-1], dates[-2], dates[-3]
    settings = settings_for(sample_landing, warehouse)

    baseline = run_pipeline(replace(settings, as_of_date=previous))
    assert baseline.success, baseline.failures
    before_full = _published_scores(published)

    full, full_obs = _run_with_readers(published, root / "full", lambda: run_pipeline(settings))
    assert full.success, full.failures
    after_full = _published_scores(published)

    backfill, backfill_obs = _run_with_readers(
        published,
        root / "backfill",
        lambda: run_pipeline(replace(settings, as_of_date=backfill_date)),
    )
    assert backfill.success, backfill.failures
    after_backfill = _published_scores(published)

    bad_landing = root / "bad_landing"
    shutil.copytree(sample_landing, bad_landing)
    _drop_column(bad_landing / newest.isoformat() / "crm" / "accounts.csv", "account_name")
    failed, failed_obs = _run_with_readers(
        published, root / "failed", lambda: run_pipeline(settings_for(bad_landing, warehouse))
    )
    return {
        "published": published,
        "dates": (backfill_date, previous, newest),
        "accounts": {previous.isoformat(): baseline.accounts_scored},
        "runs": {"full": full, "backfill": backfill, "failed": failed},
        "observed": {"full": full_obs, "backfill": backfill_obs, "failed": failed_obs},
        "published_scores": {
            "before_full": before_full,
            "after_full": after_full,
            "after_backfill": after_backfill,
            "after_failed": _published_scores(published),
        },
    }


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow
def test_readers_during_a_full_run_see_old_then_new(reader_scenario):
    _, previous, newest = reader_scenario["dates"]
    full = reader_scenario["runs"]["full"]
    accounts = {**reader_scenario["accounts"], newest.isoformat(): full.accounts_scored}
    old_version = reader_scenario["published_scores"]["before_full"][0]
    new_version = reader_scenario["published_scores"]["after_full"][0]
    assert old_version != new_version
    for mode, observations in reader_scenario["observed"]["full"].items():
        _assert_complete_versions(observations, mode)
        assert all(o["rows"] == accounts[o["as_of_date"]] for o in observations), mode
        seen = [o["as_of_date"] for o in observations]
        assert seen[0] == previous.isoformat() and seen[-1] == newest.isoformat(), mode
        assert seen == sorted(seen), f"{mode}: a reader went back to the old version"
        assert observations[-1]["version"] == new_version, mode


@pytest.mark.slow
def test_readers_during_a_backfill_keep_the_current_scores(reader_scenario):
    backfill_date, _, newest = reader_scenario["dates"]
    full = reader_scenario["runs"]["full"]
    after_full = reader_scenario["published_scores"]["after_full"]
    after_backfill = reader_scenario["published_scores"]["after_backfill"]
    assert after_backfill[1:] == after_full[1:], "the current scores did not move"
    assert after_backfill[0] != after_full[0], "the backfilled history was published"
    for mode, observations in reader_scenario["observed"]["backfill"].items():
        _assert_complete_versions(observations, mode)
        assert {o["as_of_date"] for o in observations} == {newest.isoformat()}, mode
        assert {o["rows"] for o in observations} == {full.accounts_scored}, mode
        checksums = {o["checksum"] for o in observations if "checksum" in o}
        assert len(checksums) <= 1, f"{mode}: the current scores changed during a backfill"
        assert observations[-1]["version"] == after_backfill[0], mode
    with duckdb.connect(str(reader_scenario["published"] / DB_FILE), read_only=True) as con:
        (rows,) = con.execute(
            "SELECT count(*) FROM marts.account_fit_score_history WHERE as_of_date = $d",
            {"d": backfill_date},
        ).fetchone()
    assert rows > 0


@pytest.mark.slow
def test_readers_during_a_failed_run_keep_the_last_version(reader_scenario):
    failed = reader_scenario["runs"]["failed"]
    assert not failed.success
    assert any("crm__accounts" in f for f in failed.failures), failed.failures
    last_good = reader_scenario["published_scores"]["after_backfill"]
    assert reader_scenario["published_scores"]["after_failed"] == last_good
    for mode, observations in reader_scenario["observed"]["failed"].items():
        _assert_complete_versions(observations, mode)
        assert {o["version"] for o in observations} == {last_good[0]}, mode
