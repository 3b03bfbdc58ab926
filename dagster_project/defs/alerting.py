"""Run status sensors that tell a person: one for failed runs, one for runs that warned.

The daemon evaluates them after each run of this code location ends; the alert itself is
built and delivered by :mod:`dagster_project.operations.alerts`. Settings are read from the
environment at each evaluation (the daemon's environment), not when definitions load.
"""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus

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
WARNING_SENSOR_NAME = "warning_alert"


def build_alert_sensors() -> list[dg.SensorDefinition]:
    """The failure and warning alert sensors (both on by default while the daemon runs)."""

    # Runs of `icp run` / `icp backfill` execute in the CLI's process and belong to no code
    # location; a sensor watching only this one would miss them (a killed CLI run closed
    # later by run monitoring would alert no one). So watch every run of the instance and keep
    # those of this project's jobs.
    @dg.run_failure_sensor(
        name=FAILURE_SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=True,
        description=(
            "Logs every failed run to the alert log ($DAGSTER_HOME/alerts.log) and posts it to "
            "ICP_ALERT_WEBHOOK_URL when set: the date, the failed step, the file and why."
        ),
    )
    def failure_alert_sensor(context: dg.RunFailureSensorContext):
        if context.dagster_run.job_name not in PROJECT_JOBS:
            return dg.SkipReason(f"run of {context.dagster_run.job_name}: not this project's")
        settings = AlertSettings.from_env()
        alert = failure_alert(context.instance, context.dagster_run, settings)
        context.log.info(f"{alert.text}\n{deliver(alert, settings)}")
        return None

    @dg.run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name=WARNING_SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
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
