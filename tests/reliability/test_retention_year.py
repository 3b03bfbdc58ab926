"""A year of nightly runs in a scratch DAGSTER_HOME (real SQLite storage from deploy/dagster.yaml),
pruned: what stays, what goes, and that the files shrink."""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from dagster_project.defs.publish.assets import PUBLISHED_MARTS
from dagster_project.operations.retention import RetentionSettings, prune
from tests.conftest import settings_for
from tests.unit.run_history import (
    DAY,
    make_templates,
    nightly_history,
    queued_run,
    replay_run,
    scratch_instance,
    sqlite_bytes,
)

# Building the year costs about a minute and a half: CI's slow pass runs it.
pytestmark = pytest.mark.slow

NIGHTS = 365


@pytest.fixture(scope="module")
def pristine_year(tmp_path_factory):
    """A scratch home with 365 nightly runs ending last night, one started run a year old and
    one queued run; built once, copied for each test."""
    home = tmp_path_factory.mktemp("year") / "dagster_home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        instance = scratch_instance(home, monkeypatch)
        templates = make_templates(instance)
        now = time.time()
        started = time.perf_counter()
        history = nightly_history(instance, templates, NIGHTS, last_night=now - DAY / 2)
        print(f"{NIGHTS} runs recorded in {time.perf_counter() - started:.1f} s")
        in_progress = replay_run(
            instance, templates, date(2025, 1, 1), now - NIGHTS * DAY, only_start=True
        )
        queued = queued_run(instance, templates, date(2025, 1, 2))
        instance.dispose()
    return home, templates, history, in_progress, queued, now


@pytest.fixture()
def year(pristine_year, tmp_path, monkeypatch):
    pristine, templates, history, in_progress, queued, now = pristine_year
    home = tmp_path / "dagster_home"
    shutil.copytree(pristine, home)
    instance = scratch_instance(home, monkeypatch)
    settings = settings_for(tmp_path / "landing", tmp_path / "warehouse.duckdb")
    yield instance, home, settings, templates, history, in_progress, queued, now
    instance.dispose()


def _compute_log_runs(home: Path) -> set[str]:
    return {path.name for path in (home / "storage").iterdir() if path.is_dir()}


def _shard_runs(home: Path) -> set[str]:
    return {path.stem for path in (home / "history" / "runs").glob("*.db")} - {"index"}


def test_a_year_of_runs_is_pruned_to_the_retention_window(year, tmp_path):
    instance, home, settings, templates, history, in_progress, queued, now = year
    template_ids = {templates.success.run_id, templates.failure.run_id}
    all_runs = {run.run_id for run in instance.get_runs()}
    assert len(all_runs) == NIGHTS + 2 + 2  # the nights, the two templates, started + queued
    db_before, home_before = (
        sqlite_bytes(home),
        sum(p.stat().st_size for p in home.rglob("*") if p.is_file()),
    )
    print(f"before: {len(all_runs)} runs, {home_before:,} bytes, SQLite {db_before:,} bytes")
    assert set(history) <= _compute_log_runs(home) and set(history) <= _shard_runs(home)

    report = prune(
        instance, settings, RetentionSettings(), now=now, dbt_target_root=tmp_path / "dbt_target"
    )

    db_after, home_after = (
        sqlite_bytes(home),
        sum(p.stat().st_size for p in home.rglob("*") if p.is_file()),
    )
    print(f"after: {len(instance.get_runs())} runs, {home_after:,} bytes, SQLite {db_after:,}")
    print(report.summary())
    remaining = {run.run_id for run in instance.get_runs()}
    # The nights of the last 90 days (last night was half a day ago) stay, and the unfinished,
    # and the two template runs (they ran just now).
    recent = set(history[-90:])
    newest_success = next(
        run_id
        for run_id in reversed(history)
        if instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
    )
    assert recent | template_ids | {in_progress, queued} == remaining
    assert newest_success in recent
    assert report.runs_deleted == len(all_runs) - len(remaining) == NIGHTS - 90
    assert report.runs_within_retention == 90 + 2 and report.runs_kept == {}
    deleted = all_runs - remaining
    # Their events, materializations and compute logs are gone with them.
    index = home / "history" / "runs" / "index.db"
    with sqlite3.connect(index) as con:
        marks = ",".join("?" * len(deleted))
        left = f"SELECT count(*) FROM event_logs WHERE run_id IN ({marks})"
        assert con.execute(left, sorted(deleted)).fetchone()[0] == 0
    assert not deleted & _compute_log_runs(home) and not deleted & _shard_runs(home)
    assert len(instance.fetch_materializations(PUBLISHED_MARTS, limit=1000).records) == 81 + 1
    assert {"run storage (runs.db)", "event log index (index.db)"} <= set(report.sqlite_compacted)
    assert db_after < db_before * 0.5
    assert report.bytes_freed == home_before - home_after
    assert home_after < home_before * 0.5

    again = prune(
        instance, settings, RetentionSettings(), now=now, dbt_target_root=tmp_path / "dbt_target"
    )
    assert not again.removed_anything and again.sqlite_compacted == []
    assert {run.run_id for run in instance.get_runs()} == remaining


def test_a_year_later_only_what_the_schedule_needs_and_unfinished_runs_remain(year, tmp_path):
    instance, home, settings, templates, history, in_progress, queued, now = year
    # An operator backfilled an old date last: the newest good run is not the newest date's.
    backfill = replay_run(instance, templates, date(2024, 6, 1), now - DAY / 4)

    report = prune(
        instance,
        settings,
        RetentionSettings(),
        now=now + 365 * DAY,
        dbt_target_root=tmp_path / "dbt_target",
    )

    newest_date_run = history[-1]  # 2025-12-31, a night that succeeded (364 % 10 != 9)
    assert instance.get_run_by_id(newest_date_run).status == DagsterRunStatus.SUCCESS
    assert {run.run_id for run in instance.get_runs()} == {
        backfill,
        newest_date_run,
        in_progress,
        queued,
    }
    assert "newest successful run" in report.runs_kept[backfill]
    assert "nightly schedule" in report.runs_kept[newest_date_run]
    # The schedule still finds the newest date published.
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PUBLISHED_MARTS, asset_partitions=["2025-12-31"]), limit=1
    ).records
    assert records and records[0].run_id == newest_date_run
    assert instance.get_run_by_id(in_progress).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(queued).status == DagsterRunStatus.QUEUED
    assert _compute_log_runs(home) == {backfill, newest_date_run}
