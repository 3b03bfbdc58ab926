"""Sensors that tell a person: one for failed runs, one for runs that warned.

The daemon evaluates them every 30 s over the instance's runs of this project's jobs (CLI
runs included); the alert itself is built and delivered by
:mod:`dagster_project.operations.alerts`. Settings are read from the
environment at each evaluation (the daemon's environment), not when definitions load.
"""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus

from dagster_project.defs.jobs import FULL_RUN_JOB
from dagster_project.operations.alerts import (
    AlertSettings,
    deliver,
    failure_alert,
    warning_alert,
)

__all__ = ["FAILURE_SENSOR_NAME", "WARNING_SENSOR_NAME", "build_alert_sensors"]

#: The full job, and the implicit asset job that the UI's "Materialize" launches.
PROJECT_JOBS = frozenset({FULL_RUN_JOB, "__ASSET_JOB"})
FAILURE_SENSOR_NAME = "failure_alert"
#: On its first tick the failure sensor tells the failures of this past day.
FAILURE_LOOKBACK = timedelta(days=1)
_FAILURES_PER_TICK = 100
WARNING_SENSOR_NAME = "warning_alert"


def build_alert_sensors() -> list[dg.SensorDefinition]:
    """The failure and warning alert sensors (both on by default while the daemon runs)."""

    # Not a run_failure_sensor: that one starts from "now" on its first tick, so a run that
    # died while the daemon was down, and was closed by run monitoring as the daemon came
    # back, would alert no one. This one reads the instance's run failures from a cursor of
    # its own, looking back FAILURE_LOOKBACK on its first tick (the alert log's dedupe
    # keeps a failure already told from being told again). It reads every run of the
    # instance, `icp run`'s included (they belong to no code location), and keeps those of
    # this project's jobs.
    @dg.sensor(
        name=FAILURE_SENSOR_NAME,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Logs every failed run to the alert log ($DAGSTER_HOME/alerts.log) and posts it to "
            "ICP_ALERT_WEBHOOK_URL when set: the date, the failed step, the file and why."
        ),
    )
    def failure_alert_sensor(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else None
        failures = context.instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=DagsterEventType.RUN_FAILURE,
                after_storage_id=after,
                after_timestamp=None if after else time.time() - FAILURE_LOOKBACK.total_seconds(),
            ),
            limit=_FAILURES_PER_TICK,
            ascending=True,
        ).records
        if not failures:
            return dg.SkipReason("no run failed since the last tick")
        settings = AlertSettings.from_env()
        told = 0
        for record in failures:
            run = context.instance.get_run_by_id(record.event_log_entry.run_id)
            if run is None or run.job_name not in PROJECT_JOBS:
                continue
            alert = failure_alert(context.instance, run, settings)
            context.log.info(f"{alert.text}\n{deliver(alert, settings)}")
            told += 1
        context.update_cursor(str(failures[-1].storage_id))
        return dg.SkipReason(f"alerted {told} failed run(s)")

    @dg.run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name=WARNING_SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        # Like the failure sensor: every run of the instance, this project's jobs only.
        monitor_all_code_locations=True,
        description=(
            "Logs and posts (like failure_alert) a run that succeeded with warnings: stale or "
            "incomplete landing, quarantine share, drift, ICP share. ICP_ALERT_ON_WARNINGS=off "
            "turns it off."
        ),
    )
    def warning_alert_sensor(context: dg.RunStatusSensorContext):
        if context.dagster_run.job_name not in PROJECT_JOBS:
            return dg.SkipReason(f"run of {context.dagster_run.job_name}: not this project's")
        settings = AlertSettings.from_env()
        if not settings.on_warnings:
            return dg.SkipReason("ICP_ALERT_ON_WARNINGS is off")
        alert = warning_alert(context.instance, context.dagster_run, settings)
        if alert is None:
            return dg.SkipReason(f"run {context.dagster_run.run_id} had no warnings")
        context.log.info(f"{alert.text}\n{deliver(alert, settings)}")
        return None

    return [failure_alert_sensor, warning_alert_sensor]
