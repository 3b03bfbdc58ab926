"""`icp doctor` and the housekeeping sensor on a scratch DAGSTER_HOME (deploy/dagster.yaml):
a run whose process died, a run queued behind it, a held warehouse lock, failures."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from typer.testing import CliRunner

from dagster_project.cli import app
from dagster_project.defs import build_definitions
from dagster_project.defs.housekeeping import HOUSEKEEPING_SENSOR, PRUNE_INTERVAL_SECONDS
from dagster_project.operations.doctor import diagnose
from dagster_project.operations.liveness import CLOSED_BY_TAG
from dagster_project.operations.retention import RetentionSettings
from tests.conftest import settings_for
from tests.unit.run_history import (
    DAY,
    exited_pid,
    make_templates,
    queued_run,
    replay_run,
    scratch_instance,
)


@pytest.fixture()
def deployment(tmp_path, monkeypatch):
    """A scratch home holding a good run, a run whose process died, and a queued run."""
    instance = scratch_instance(tmp_path / "dagster_home", monkeypatch)
    templates = make_templates(instance)
    now = time.time()
    dead = replay_run(
        instance, templates, date(2026, 11, 21), now - 60, only_start=True, pid=exited_pid()
    )
    queued = queued_run(instance, templates, date(2026, 11, 22))
    settings = settings_for(tmp_path / "landing", tmp_path / "warehouse.duckdb")
    (tmp_path / "landing").mkdir()
    yield instance, settings, templates, dead, queued
    instance.dispose()


_HOLD_LOCK = """
import sys
from pathlib import Path
from dagster_project.defs.locking import WarehouseLock
lock = WarehouseLock(Path(sys.argv[1]))
lock.acquire("run-holding-it", timeout_seconds=5)
print("held", flush=True)
sys.stdin.readline()
"""


def test_doctor_reports_a_dead_run_the_queue_behind_it_and_a_held_lock(deployment):
    instance, settings, templates, dead, queued = deployment
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(settings.warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        report = diagnose(instance, settings, RetentionSettings())
    finally:
        holder.communicate("release\n", timeout=60)

    process = next(p for p in report.in_progress if p.run_id == dead)
    assert process.dead and process.running_step == "published__marts"
    assert report.queued == [(queued, "2026-11-22")]
    assert report.lock_held and "run run-holding-it" in report.lock_holder
    assert f"pid {holder.pid}" in report.lock_holder
    assert report.quarantine_rows is None  # no warehouse file yet
    assert [good.dates for good in report.good_runs] == ["2000-01-01"]
    problems = "\n".join(report.problems)
    assert f"run {dead[:8]} (2026-11-21) is recorded STARTED but process" in problems
    assert "is gone" in problems and "`icp doctor --fix` marks it failed" in problems
    assert "1 run(s) queued behind a dead run" in problems
    # The newest finished run failed: since when nothing succeeded, and why it failed.
    assert "no successful run since" in problems
    failure = "published__marts: RuntimeError: ingest of crm/accounts failed: required column"
    assert failure in problems
    assert "no complete export folder" in problems
    assert not report.healthy
    # Once the holder exited, the lock is free again.
    assert not diagnose(instance, settings, RetentionSettings()).lock_held


def test_doctor_fix_closes_the_dead_run_and_the_exit_code_says_what_remains(deployment, tmp_path):
    instance, settings, templates, dead, queued = deployment
    args = ["doctor", "--landing", str(settings.landing_dir)]
    args += ["--warehouse", str(settings.warehouse_path)]
    runner = CliRunner()

    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.output
    assert "DEAD" in first.output and "icp doctor --fix" in first.output

    fixed = runner.invoke(app, [*args, "--fix"])
    assert f"fixed: marked run {dead} (2026-11-21) failed" in fixed.output
    run = instance.get_run_by_id(dead)
    assert run.status == DagsterRunStatus.FAILURE
    assert run.tags[CLOSED_BY_TAG] == "icp doctor --fix"
    assert "DEAD" not in fixed.output and "queued behind a dead run" not in fixed.output
    assert "no successful run since" in fixed.output and fixed.exit_code == 1

    # A complete, published newest export and a good run after the failure: nothing wrong.
    export = settings.landing_dir / "2000-01-01" / "crm"
    export.mkdir(parents=True)
    (export / "accounts.csv").write_text("account_id\n", encoding="utf-8")
    replay_run(instance, templates, date(2000, 1, 1), time.time())
    instance.delete_run(queued)
    healthy = runner.invoke(app, args)
    assert healthy.exit_code == 0, healthy.output
    assert "Nothing wrong." in healthy.output


def _evaluate_housekeeping(defs, instance, cursor: str | None):
    sensor = defs.resolve_sensor_def(HOUSEKEEPING_SENSOR)
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor.evaluate_tick(context)


def test_the_housekeeping_sensor_closes_dead_runs_and_prunes_once_a_day(deployment):
    instance, settings, templates, dead, queued = deployment
    defs = build_definitions(settings)
    old = replay_run(instance, templates, date(2025, 1, 1), time.time() - 200 * DAY, failed=True)

    first = _evaluate_housekeeping(defs, instance, cursor=None)
    assert not first.run_requests
    assert f"marked failed run {dead}" in first.skip_message
    assert "retention: deleted 1 run(s)" in first.skip_message
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(dead).tags[CLOSED_BY_TAG] == "the housekeeping sensor"
    assert instance.get_run_by_id(old) is None
    last_prune = float(first.cursor)

    # A minute later: nothing dead, and retention waits for its day.
    old = replay_run(instance, templates, date(2025, 1, 2), time.time() - 200 * DAY, failed=True)
    second = _evaluate_housekeeping(defs, instance, cursor=first.cursor)
    assert "no dead run" in second.skip_message and "retention next in" in second.skip_message
    assert second.cursor == first.cursor and instance.get_run_by_id(old) is not None

    # A day later it prunes again.
    a_day_ago = str(last_prune - PRUNE_INTERVAL_SECONDS)
    third = _evaluate_housekeeping(defs, instance, cursor=a_day_ago)
    assert "retention: deleted 1 run(s)" in third.skip_message
    assert instance.get_run_by_id(old) is None and float(third.cursor) > last_prune


def test_doctor_says_when_the_instance_settings_predate_run_monitoring(deployment, tmp_path):
    instance, settings, *_ = deployment
    advice = "lack run monitoring with the liveness-checking run launcher"
    assert not any(advice in p for p in diagnose(instance, settings, RetentionSettings()).problems)
    with dg.instance_for_test() as old_style:  # Dagster's defaults: no run monitoring
        problems = diagnose(old_style, settings, RetentionSettings()).problems
    assert any(advice in p and "deploy/dagster.yaml" in p for p in problems)
