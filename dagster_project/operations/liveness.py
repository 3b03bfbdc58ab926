"""Is a run recorded as in progress still running? Dead runs found and closed.

A run's process can die without a word: SIGKILL, the kernel's OOM killer, a host reboot.
Dagster then keeps the run STARTED for ever, and with one run at a time (deploy/dagster.yaml)
every queued run waits behind it. The process that executes a run writes the run's RUN_START
event, and Dagster records that process's pid on the event: the run is alive while that
process is, and dead when the pid is gone, a zombie, or now belongs to a process started after
the run (pid reuse after a reboot). Runs not yet started (QUEUED, STARTING) have no process to
ask; Dagster's run monitoring times out those that never start (``start_timeout_seconds``).

Used by the run launcher (the daemon's run monitoring), by each run when it takes the
warehouse lock, by the CLI before it starts a run, and by ``icp doctor``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import date

import dagster as dg
import psutil
from dagster import DagsterEventType, DagsterRunStatus

from dagster_project.run import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

__all__ = [
    "CLOSED_BY_TAG",
    "RunProcess",
    "close_dead_runs",
    "in_progress_runs",
    "run_date_range",
    "run_dates",
    "run_process",
]

#: Statuses of a run whose process should be running.
_RUNNING_STATUSES = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: The process start time from psutil is rounded by the kernel's clock: allow that much.
_START_TIME_SLACK_SECONDS = 2.0
#: An in-process run still NOT_STARTED this long after it was created lost its process.
_IN_PROCESS_START_SECONDS = 600
#: A run closed as dead carries this tag, naming who closed it.
CLOSED_BY_TAG = "icp/closed_as_dead_by"


@dataclass(frozen=True)
class RunProcess:
    """An in-progress run and what became of the process executing it."""

    run_id: str
    status: str
    #: The as-of date (``2026-11-20``) or range (``2026-10-01..2026-10-31``) of the run.
    dates: str
    pid: int | None
    started_at: float | None
    #: True while the process runs, False once it is gone; None when there is none to ask yet.
    alive: bool | None
    #: Why, in words: "running as pid 412", "process 412 is gone", ...
    state: str
    #: The step that was running (started, not ended), if any.
    running_step: str | None

    @property
    def dead(self) -> bool:
        return self.alive is False


def run_date_range(run: dg.DagsterRun) -> tuple[date, date] | None:
    """The first and last as-of date a run scores (the same for one date), from its tags."""
    tags = run.tags
    if "dagster/partition" in tags:
        day = date.fromisoformat(tags["dagster/partition"])
        return day, day
    start = tags.get(PARTITION_RANGE_START_TAG)
    end = tags.get(PARTITION_RANGE_END_TAG)
    return (date.fromisoformat(start), date.fromisoformat(end)) if start and end else None


def run_dates(run: dg.DagsterRun) -> str:
    """The as-of date or date range a run scores, in words: ``2026-11-20`` or ``A..B``."""
    dates = run_date_range(run)
    if dates is None:
        return ""
    first, last = dates
    return str(first) if first == last else f"{first}..{last}"


def _process_state(pid: int, run_started_at: float) -> tuple[bool, str]:
    try:
        process = psutil.Process(pid)
        status = process.status()
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False, f"process {pid} is gone (killed, out of memory, or the host restarted)"
    except psutil.AccessDenied:
        # Another user's process with that pid exists: it may be the run; never close it.
        return True, f"pid {pid} exists (owned by another user)"
    if status == psutil.STATUS_ZOMBIE:
        return False, f"process {pid} has exited (a zombie not yet reaped)"
    if created > run_started_at + _START_TIME_SLACK_SECONDS:
        return False, f"process {pid} is gone; pid {pid} is now another process started later"
    return True, f"running as pid {pid}"


def _running_step(instance: dg.DagsterInstance, run_id: str) -> str | None:
    records = instance.get_records_for_run(
        run_id,
        of_type={
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.STEP_UP_FOR_RETRY,
        },
    ).records
    open_steps: dict[str, None] = {}
    for record in records:
        step = record.event_log_entry.step_key
        if record.event_log_entry.dagster_event_type == DagsterEventType.STEP_START:
            open_steps[step] = None
        else:
            open_steps.pop(step, None)
    return next(reversed(open_steps), None) if open_steps else None


def _never_started_in_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A run of ``icp run`` (in process: no code location launches it) goes from NOT_STARTED
    to STARTED within a second of being created; one left NOT_STARTED lost its process
    before it began. Daemon-launched runs are never NOT_STARTED for long (QUEUED, then
    STARTING, which run monitoring times out)."""
    if run.status != DagsterRunStatus.NOT_STARTED or run.remote_job_origin is not None:
        return False
    record = instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp.timestamp() if record else None
    return created is not None and time.time() - created > _IN_PROCESS_START_SECONDS


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunProcess:
    """What became of the process executing ``run`` (a run in any status)."""
    start = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    event = start[0].event_log_entry if start else None
    pid = event.dagster_event.pid if event and event.dagster_event else None
    started_at = event.timestamp if event else None
    if _never_started_in_process(instance, run):
        alive, state = (
            False,
            (
                f"created by `icp run` in process more than {_IN_PROCESS_START_SECONDS // 60} "
                "minutes ago and never started: that process is gone"
            ),
        )
    elif run.status not in _RUNNING_STATUSES:
        alive, state = None, f"no process to check ({run.status.value})"
    elif pid is None or started_at is None:
        alive, state = None, "no process recorded yet"
    else:
        alive, state = _process_state(pid, started_at)
    return RunProcess(
        run_id=run.run_id,
        status=run.status.value,
        dates=run_dates(run),
        pid=pid,
        started_at=started_at,
        alive=alive,
        state=state,
        running_step=_running_step(instance, run.run_id),
    )


def in_progress_runs(instance: dg.DagsterInstance) -> list[RunProcess]:
    """Every run recorded as started or in progress, with what became of its process."""
    runs = instance.get_runs(
        dg.RunsFilter(
            statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED, *_RUNNING_STATUSES]
        )
    )
    return [run_process(instance, run) for run in runs]


def dead_run_message(process: RunProcess, closed_by: str) -> str:
    step = f" while step {process.running_step} was running" if process.running_step else ""
    return (
        f"The run's process died{step}: {process.state}. Marked failed by {closed_by} on "
        f"{socket.gethostname()}; the published copy is as the last good run left it. Run "
        f"{process.dates or 'the date'} again (the schedule does at its next tick)."
    )


def close_dead_runs(
    instance: dg.DagsterInstance, closed_by: str, except_run_id: str | None = None
) -> list[RunProcess]:
    """Mark failed every in-progress run whose process is gone; return them.

    ``closed_by`` names the caller in the failure message (``icp run``, ``run monitoring``).
    A run marked failed stops counting against the run queue's limit, and Dagster's run
    failure sensors see it like any other failure.
    """
    closed = []
    for process in in_progress_runs(instance):
        if not process.dead or process.run_id == except_run_id:
            continue
        run = instance.get_run_by_id(process.run_id)
        if run is None or run.is_finished:
            continue
        instance.add_run_tags(run.run_id, {CLOSED_BY_TAG: closed_by})
        instance.report_run_failed(run, dead_run_message(process, closed_by))
        closed.append(process)
    return closed
