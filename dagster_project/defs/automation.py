"""The nightly schedule and the new-export sensor: when a date gets scored without anyone asking.

Both start the full job for one as-of date partition. The schedule scores the newest complete
export folder every night (and skips, saying why, when that date is already published and its
files have not changed since); the sensor starts a run as soon as a new export folder is
complete. Runs never overlap: the instance queues them one at a time (``deploy/dagster.yaml``)
and a run holds the warehouse lock from its first step to its last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.defs.jobs import full_run_job
from dagster_project.defs.partitions import AS_OF_PARTITIONS
from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import complete_export_dates
from dagster_project.operations.liveness import run_date_range
from dagster_project.settings import Settings

__all__ = [
    "NightlyPlan",
    "build_automation",
    "dates_being_scored",
    "plan_nightly_dates",
    "scoreable_export_dates",
]

SCHEDULE_NAME = "nightly_scoring"
SENSOR_NAME = "new_export_sensor"
TRIGGER_TAG = "icp/trigger"
#: Runs that will still do their work: a date they cover is not requested again.
_UNFINISHED_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


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


def _newest_published_date(instance: dg.DagsterInstance) -> date | None:
    from dagster_project.defs.publish.assets import PUBLISHED_MARTS

    published = instance.get_materialized_partitions(PUBLISHED_MARTS)
    return max((date.fromisoformat(p) for p in published), default=None)


def dates_being_scored(instance: dg.DagsterInstance) -> set[date]:
    """Dates a run queued or in progress will score (one date, or every date of a range)."""
    runs = instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED_STATUSES))
    dates: set[date] = set()
    for first, last in filter(None, map(run_date_range, runs)):
        dates.update(first + timedelta(days=n) for n in range((last - first).days + 1))
    return dates


@dataclass(frozen=True)
class NightlyPlan:
    """The dates a schedule tick starts runs for, oldest first, and why others are not."""

    to_score: list[date]
    notes: list[str]


def plan_nightly_dates(
    instance: dg.DagsterInstance, settings: Settings, today: date
) -> NightlyPlan:
    """Which complete export dates the nightly schedule scores when it ticks on ``today``.

    Every complete export dated after the newest published date and on or before ``today``
    (the nights the machine was down or a run failed), and the newest published date again if
    a file of it changed since. A first run ever scores only the newest date: older ones are
    history, for a backfill. At most ``settings.max_catchup_dates`` dates, the newest; older
    missed dates are named for a backfill. A date that a queued or running run already covers
    is not requested again: the sensor, a UI launch or an earlier catch-up tick started it.
    """
    complete = scoreable_export_dates(settings, up_to=today)
    if not complete:
        return NightlyPlan(
            [],
            [
                f"no complete export folder dated <= {today} under {settings.landing_dir} "
                f"(completion: {settings.export_completion})"
            ],
        )
    notes: list[str] = []
    newest_published = _newest_published_date(instance)
    if newest_published is None:
        wanted = complete[-1:]
        if len(complete) > 1:
            notes.append(
                f"first run: scoring the newest export {complete[-1]} only; for the "
                f"{len(complete) - 1} older export dates run `icp backfill --from "
                f"{complete[0]} --to {complete[-2]}`"
            )
    else:
        wanted = [
            d
            for d in complete
            if d >= newest_published
            and not _published_since_files_changed(
                instance, settings.landing_dir / d.isoformat(), d.isoformat()
            )
        ]
        if not wanted:
            notes.append(
                f"{complete[-1]} is the newest complete export and is already published; "
                "its files have not changed since"
            )
    if len(wanted) > settings.max_catchup_dates:
        left = wanted[: -settings.max_catchup_dates]
        wanted = wanted[-settings.max_catchup_dates :]
        notes.append(
            f"{len(left)} missed dates older than the newest {settings.max_catchup_dates} "
            f"(ICP_MAX_CATCHUP_DATES) are not scored by the schedule: run `icp backfill "
            f"--from {left[0]} --to {left[-1]}`"
        )
    busy = dates_being_scored(instance) & set(wanted)
    if busy:
        notes.append("already queued or running: " + ", ".join(str(d) for d in sorted(busy)))
    return NightlyPlan([d for d in wanted if d not in busy], notes)


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
        plan = plan_nightly_dates(context.instance, settings, today)
        for note in plan.notes:
            context.log.info(note)
        if not plan.to_score:
            return dg.SkipReason("; ".join(plan.notes))
        return [
            dg.RunRequest(
                partition_key=d.isoformat(),
                run_key=f"nightly-{d.isoformat()}",
                tags={TRIGGER_TAG: SCHEDULE_NAME},
            )
            for d in plan.to_score
        ]

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
        # The schedule (catching up after downtime) or a UI launch may have started one.
        busy = dates_being_scored(context.instance)
        requests = [
            dg.RunRequest(
                partition_key=d.isoformat(),
                run_key=f"export-{d.isoformat()}",
                tags={TRIGGER_TAG: SENSOR_NAME},
            )
            for d in new
            if d not in busy
        ]
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None
            if requests
            else f"already queued or running: {', '.join(str(d) for d in new)}",
            cursor=new[-1].isoformat(),
        )

    return nightly_scoring, new_export_sensor
