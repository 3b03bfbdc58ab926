"""The housekeeping sensor: dead runs closed every minute, retention applied once a day.

It runs in the daemon beside the schedule and requests no runs. Closing dead runs here as well
as in run monitoring means a dead ``icp run`` never holds the run queue, even on a deployment
that turned run monitoring off. Retention (:mod:`dagster_project.operations.retention`) runs
once a day; the sensor's cursor keeps the time it last ran, so a daemon restart does not
prune again.
"""

from __future__ import annotations

import time

import dagster as dg

from dagster_project.operations.liveness import close_dead_runs
from dagster_project.settings import Settings

__all__ = ["HOUSEKEEPING_SENSOR", "PRUNE_INTERVAL_SECONDS", "build_housekeeping_sensor"]

HOUSEKEEPING_SENSOR = "housekeeping"
PRUNE_INTERVAL_SECONDS = 86_400
CLOSED_BY = "the housekeeping sensor"


def _last_prune(cursor: str | None) -> float | None:
    try:
        return float(cursor) if cursor else None
    except ValueError:
        return None


def build_housekeeping_sensor(settings: Settings) -> dg.SensorDefinition:
    """The sensor for ``settings`` (its warehouse tells where the published copy is)."""

    @dg.sensor(
        name=HOUSEKEEPING_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Every minute: marks failed the runs whose process died, so they do not hold the "
            "queue. Once a day: deletes runs older than ICP_RETAIN_RUNS_DAYS with their logs, "
            "compacts Dagster's SQLite files and applies the other retention (README, "
            "Operations). Requests no runs."
        ),
    )
    def housekeeping(context: dg.SensorEvaluationContext):
        from dagster_project.operations.retention import RetentionSettings, prune

        closed = close_dead_runs(context.instance, CLOSED_BY)
        did = [
            f"marked failed run {process.run_id} ({process.dates or 'no date'}): {process.state}"
            for process in closed
        ] or ["no dead run"]
        now = time.time()
        last = _last_prune(context.cursor)
        cursor = context.cursor
        if last is None or now - last >= PRUNE_INTERVAL_SECONDS:
            report = prune(context.instance, settings, RetentionSettings.from_env(), now=now)
            context.log.info(f"retention: {report.summary()}")
            did.append(f"retention: {report.summary()}")
            cursor = str(now)
        else:
            hours = (PRUNE_INTERVAL_SECONDS - (now - last)) / 3600
            did.append(f"retention next in {hours:.1f} h")
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(did)), cursor=cursor)

    return housekeeping
