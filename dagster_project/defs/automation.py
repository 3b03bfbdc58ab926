"""The nightly schedule and the new-export sensor: when a date gets scored without anyone asking.

Both start the full job for one as-of date partition. The schedule scores the newest complete
export folder every night (and skips, saying why, when that date is already published and its
files have not changed since); the sensor starts a run as soon as a new export folder is
complete. Runs never overlap: the instance queues them one at a time (``deploy/dagster.yaml``)
and a run holds the warehouse lock from its first step to its last.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.defs.jobs import full_run_job
from dagster_project.defs.partitions import AS_OF_PARTITIONS
from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import complete_export_dates
from dagster_project.settings import Settings

__all__ = ["build_automation", "scoreable_export_dates"]

SCHEDULE_NAME = "nightly_scoring"
SENSOR_NAME = "new_export_sensor"
TRIGGER_TAG = "icp/trigger"


def scoreable_export_dates(settings: Settings, up_to: date | None = None) -> list[date]:
    """Complete export dates (per ``settings.export_completion``) within the partition range,
    oldest first, up to ``up_to`` inclusive."""
    if not settings.landing_dir.is_dir():
        return []
    first = AS_OF_PARTITIONS.start.date()
    return [
        export_date
        for export_date in complete_export_dates(
            settings.landing_dir, load_contracts().values(), settings.export_completion
        )
        if export_date >= first and (up_to is None or export_date <= up_to)
    ]


def _newest_file_time(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0.0)


def _published_since_files_changed(
    instance: dg.DagsterInstance, export_folder: Path, partition: str
) -> bool:
    """True when the date was published after the newest file of its export folder landed."""
    from dagster_project.defs.publish.assets import PUBLISHED_MARTS

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PUBLISHED_MARTS, asset_partitions=[partition]), limit=1
    ).records
    return bool(records) and records[0].timestamp > _newest_file_time(export_folder)


def build_automation(settings: Settings) -> tuple[dg.ScheduleDefinition, dg.SensorDefinition]:
    """The nightly schedule (``settings.schedule_cron`` in ``settings.timezone``) and the sensor."""

    @dg.schedule(
        name=SCHEDULE_NAME,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.timezone,
        job=full_run_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Every night: score and publish the newest complete export date (ICP_SCHEDULE_CRON, "
            "ICP_TIMEZONE); skips when that date is already published and unchanged."
        ),
    )
    def nightly_scoring(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or datetime.now(ZoneInfo(settings.timezone))
        today = tick.astimezone(ZoneInfo(settings.timezone)).date()
        dates = scoreable_export_dates(settings, up_to=today)
        if not dates:
            return dg.SkipReason(
                f"no complete export folder dated <= {today} under {settings.landing_dir} "
                f"(completion: {settings.export_completion})"
            )
        newest = dates[-1].isoformat()
        if _published_since_files_changed(context.instance, settings.landing_dir / newest, newest):
            return dg.SkipReason(
                f"{newest} is the newest complete export and is already published; its "
                "files have not changed since"
            )
        return dg.RunRequest(partition_key=newest, tags={TRIGGER_TAG: SCHEDULE_NAME})

    @dg.sensor(
        name=SENSOR_NAME,
        job=full_run_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Starts a run for each export folder that becomes complete (ICP_EXPORT_COMPLETION: "
            "every expected file, or a _SUCCESS marker). On its first evaluation it takes the "
            "newest complete date only; older dates are for a backfill."
        ),
    )
    def new_export_sensor(context: dg.SensorEvaluationContext):
        dates = scoreable_export_dates(settings)
        if not dates:
            return dg.SkipReason(
                f"no complete export folder under {settings.landing_dir} "
                f"(completion: {settings.export_completion})"
            )
        if context.cursor:
            last = date.fromisoformat(context.cursor)
            new = [d for d in dates if d > last]
        else:
            new = dates[-1:]
        if not new:
            return dg.SkipReason(f"no export folder completed after {context.cursor}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    partition_key=d.isoformat(),
                    run_key=f"export-{d.isoformat()}",
                    tags={TRIGGER_TAG: SENSOR_NAME},
                )
                for d in new
            ],
            cursor=new[-1].isoformat(),
        )

    return nightly_scoring, new_export_sensor
