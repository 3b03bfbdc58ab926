"""Alerts from real runs on a real Dagster instance, through the sensors the way the daemon
evaluates them (``build_run_status_sensor_context``), posted to a loopback webhook."""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType

from dagster_project.defs import build_definitions
from dagster_project.defs.alerting import FAILURE_SENSOR_NAME, WARNING_SENSOR_NAME
from dagster_project.operations.alerts import AlertSettings, failure_alert
from dagster_project.operations.liveness import RunProcess, dead_run_message
from dagster_project.run import run_pipeline
from tests.conftest import settings_for
from tests.loopback_webhook import Webhook

UI_URL = "http://127.0.0.1:3000"
BROKEN_FILE = "crm/opportunities.csv"
BROKEN_STEP = "raw__crm__opportunities"
FX_RATES = "reference/fx_rates"


def _newest_export(landing: Path) -> str:
    return max(p.name for p in landing.iterdir() if p.is_dir() and p.name[:2] == "20")


def _drop_column(path: Path, column: str) -> None:
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    kept = [name for name in rows[0] if name != column]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def failed_run(sample_landing, tmp_path_factory):
    """A run that fails at ingest: the newest opportunities file lost its required ``stage``."""
    root = tmp_path_factory.mktemp("failed_run")
    landing = root / "landing"
    shutil.copytree(sample_landing, landing, symlinks=True)
    newest = _newest_export(landing)
    _drop_column(landing / newest / BROKEN_FILE, "stage")
    settings = settings_for(landing, root / "warehouse.duckdb")
    instance = dg.DagsterInstance.ephemeral()
    summary = run_pipeline(settings, instance=instance)
    assert not summary.success
    return settings, instance, instance.get_run_by_id(summary.run_id), newest


@pytest.fixture()
def webhook(monkeypatch, tmp_path) -> Iterator[Webhook]:
    """The alert settings of the daemon's environment, pointed at a loopback webhook."""
    server = Webhook()
    monkeypatch.setenv("ICP_ALERT_WEBHOOK_URL", server.url)
    monkeypatch.setenv("ICP_ALERT_WEBHOOK_FORMAT", "json")
    monkeypatch.setenv("ICP_ALERT_LOG", str(tmp_path / "alerts.log"))
    monkeypatch.setenv("ICP_DAGSTER_UI_URL", UI_URL)
    yield server
    server.close()


def _evaluate(defs, sensor_name, instance, run, event_type):
    """What the daemon does when the run reaches the sensor's status."""
    if sensor_name == FAILURE_SENSOR_NAME:
        # A sensor with its own cursor: its first tick looks back a day.
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            return defs.resolve_sensor_def(sensor_name)(context)
    (entry,) = instance.all_logs(run.run_id, of_type=event_type)
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=entry.dagster_event,
    )
    return defs.resolve_sensor_def(sensor_name)(context)


def test_failure_sensor_posts_date_step_file_reason_and_link(failed_run, webhook, tmp_path):
    settings, instance, run, newest = failed_run
    defs = build_definitions(settings)
    _evaluate(defs, FAILURE_SENSOR_NAME, instance, run, DagsterEventType.RUN_FAILURE)
    (body,) = webhook.bodies
    file = f"{newest}/{BROKEN_FILE}"
    assert body["level"] == "failure"
    assert body["dates"] == newest
    assert body["steps"] == [BROKEN_STEP]
    assert body["files"] == [file]
    (reason,) = body["reasons"]
    assert reason.startswith(
        f"ingest of crm/opportunities failed: {file}: required column(s) stage missing; "
        "expected the columns of crm/opportunities"
    ), reason
    assert body["link"] == f"{UI_URL}/runs/{run.run_id}"
    assert body["text"].startswith(
        f"icp-pipeline run failed for {newest} at step {BROKEN_STEP}: ingest of "
        f"crm/opportunities failed: {file}: required column(s) stage missing"
    )
    assert body["text"].endswith(f"(run {run.run_id}) {UI_URL}/runs/{run.run_id}")

    # The CLI saw the same failure first: the sensor logs it and sends nothing.
    _evaluate(defs, FAILURE_SENSOR_NAME, instance, run, DagsterEventType.RUN_FAILURE)
    assert len(webhook.bodies) == 1
    lines = (tmp_path / "alerts.log").read_text().splitlines()
    assert len(lines) == 2 and '"duplicate": true' in lines[1]


def test_the_failure_sensor_tells_failures_from_before_its_first_tick_once(failed_run):
    """The run failed before the daemon (and so the sensor) ever ran: its first tick looks
    back and tells it; the next tick, from the cursor, finds nothing new."""
    settings, instance, run, _ = failed_run
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(FAILURE_SENSOR_NAME)
    with dg.build_sensor_context(instance=instance, definitions=defs) as context:
        first = sensor.evaluate_tick(context)
    assert "alerted 1 failed run(s)" in first.skip_message
    assert first.cursor
    with dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=first.cursor
    ) as context:
        again = sensor.evaluate_tick(context)
    assert again.skip_message == "no run failed since the last tick"


def test_a_dead_run_alert_names_the_step_that_was_running(failed_run):
    """A run closed by liveness.close_dead_runs has no step failure: its message says why."""
    _, instance, failed, _ = failed_run
    run = instance.create_run_for_job(
        dg.GraphDefinition(name="noop", node_defs=[]).to_job(name="icp_full_run"),
        tags={"dagster/partition": "2026-11-20"},
    )
    process = RunProcess(
        run_id=run.run_id,
        status="STARTED",
        dates="2026-11-20",
        pid=4242,
        started_at=0.0,
        alive=False,
        state="process 4242 is gone (killed, out of memory, or the host restarted)",
        running_step="dbt_models",
    )
    instance.report_run_failed(run, dead_run_message(process, "icp run"))
    alert = failure_alert(instance, instance.get_run_by_id(run.run_id), AlertSettings(Path("x")))
    assert alert.steps == ("dbt_models",)
    assert alert.dates == "2026-11-20"
    (reason,) = alert.reasons
    assert reason.startswith("The run's process died while step dbt_models was running: process")
    assert alert.text.startswith(
        "icp-pipeline run failed for 2026-11-20 at step dbt_models: The run's process died"
    )


def test_a_run_failed_by_run_monitoring_names_the_step_left_running():
    """Run monitoring's message names no step: the step started and never ended does."""
    from dagster._core.events import DagsterEvent, StepSuccessData

    instance = dg.DagsterInstance.ephemeral()
    job = dg.GraphDefinition(name="noop", node_defs=[]).to_job(name="icp_full_run")
    run = instance.create_run_for_job(job, tags={"dagster/partition": "2026-11-20"})
    for step in ("raw__crm__accounts", "dbt_models"):
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.STEP_START.value, job_name=run.job_name, step_key=step),
            run_id=run.run_id,
        )
    instance.report_dagster_event(
        DagsterEvent(
            DagsterEventType.STEP_SUCCESS.value,
            job_name=run.job_name,
            step_key="raw__crm__accounts",
            event_specific_data=StepSuccessData(duration_ms=1.0),
        ),
        run_id=run.run_id,
    )
    instance.report_run_failed(run, "Run worker failed: process 4242 is gone")
    alert = failure_alert(instance, instance.get_run_by_id(run.run_id))
    assert alert.steps == ("dbt_models",)
    assert alert.reasons == ("Run worker failed: process 4242 is gone",)


def test_warning_sensor_posts_a_stale_landing(sample_landing, webhook, tmp_path, monkeypatch):
    """A run that succeeds on a stale landing (the sample's newest export is 2026-11-20, more
    than ICP_MAX_EXPORT_AGE_DAYS ago): the freshness check warns. Only the accounts ingest
    (and the fx rates it converts with) and their checks run: the warning does not need the
    whole graph."""
    from dagster_project.defs.ingest.assets import raw_asset_key
    from dagster_project.ingest.contracts import load_contracts

    settings = settings_for(sample_landing, tmp_path / "warehouse.duckdb")
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    newest = _newest_export(sample_landing)
    contracts = load_contracts()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        partition_key=newest,
        asset_selection=[raw_asset_key(contracts[name]) for name in ("crm/accounts", FX_RATES)],
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    _evaluate(defs, WARNING_SENSOR_NAME, instance, run, DagsterEventType.RUN_SUCCESS)
    (body,) = webhook.bodies
    assert body["level"] == "warning"
    assert body["dates"] == newest
    assert body["link"] == f"{UI_URL}/runs/{run.run_id}"
    assert any(
        reason.startswith(f"raw/crm__accounts:landing_is_fresh: the newest export, {newest}, is ")
        for reason in body["reasons"]
    ), body["reasons"]
    assert body["text"].startswith(f"icp-pipeline run for {newest} finished with ")

    # Turned off, the sensor skips and sends nothing.
    webhook.bodies.clear()
    (tmp_path / "alerts.log").unlink()
    monkeypatch.setenv("ICP_ALERT_ON_WARNINGS", "off")
    skipped = _evaluate(defs, WARNING_SENSOR_NAME, instance, run, DagsterEventType.RUN_SUCCESS)
    assert isinstance(skipped, dg.SkipReason)
    assert webhook.bodies == []


def test_icp_run_delivers_the_alert_and_the_daemon_does_not_send_it_again(
    failed_run, webhook, tmp_path, monkeypatch
):
    """``icp run`` from cron, with no daemon: the CLI posts the failure itself; the daemon's
    sensor, evaluating the same run later on the same instance, finds it in the alert log."""
    from typer.testing import CliRunner

    from dagster_project.cli import app
    from dagster_project.run import dagster_instance

    settings, _, _, newest = failed_run
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("ICP_ALERT_LOG")  # the default: beside the instance's state
    result = CliRunner().invoke(
        app,
        ["run", "--landing", str(settings.landing_dir), "--warehouse", str(tmp_path / "w.duckdb")],
    )
    assert result.exit_code == 1, result.output
    # Its progress, one line per step (stdout is not a terminal): the broken step failed, with
    # the file and column; the run's last line says how it ended.
    assert re.search(
        rf"^\d\d:\d\d:\d\d  {BROKEN_STEP} +failed after \d+\.\d s: .*{newest}/{BROKEN_FILE}"
        r".*required column\(s\) stage missing",
        result.output,
        re.MULTILINE,
    ), result.output
    assert re.search(r"^\d\d:\d\d:\d\d  run +failed in \d+\.\d s \(.*1 failed", result.output, re.M)
    log = home / "alerts.log"
    assert f"alert: logged to {log}; posted to webhook 127.0.0.1 (json, HTTP 200)" in (
        result.output
    )
    (body,) = webhook.bodies
    assert body["steps"] == [BROKEN_STEP] and body["files"] == [f"{newest}/{BROKEN_FILE}"]

    instance = dagster_instance(home)
    run = instance.get_run_by_id(body["run_id"])
    defs = build_definitions(settings)
    _evaluate(defs, FAILURE_SENSOR_NAME, instance, run, DagsterEventType.RUN_FAILURE)
    assert len(webhook.bodies) == 1, "sent once"
    assert len(log.read_text().splitlines()) == 2
