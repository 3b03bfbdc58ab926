"""Dead runs: a run recorded as in progress whose process is gone is found and closed, on a
real Dagster instance with runs whose start events name real processes (one that exited,
this test's own, one started after the run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus

from dagster_project.defs.jobs import FULL_RUN_JOB
from dagster_project.operations.liveness import (
    CLOSED_BY_TAG,
    close_dead_runs,
    in_progress_runs,
    run_process,
)
from dagster_project.operations.run_launcher import LivenessCheckingRunLauncher


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _started_run(
    instance: dg.DagsterInstance, pid: int, partition: str, started_at: float | None = None
) -> dg.DagsterRun:
    """A run of the full job as its process records it: STARTED, with that process's pid on
    its RUN_START event, and one step started and not ended."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name=FULL_RUN_JOB,
            status=DagsterRunStatus.NOT_STARTED,
            tags={"dagster/partition": partition},
        )
    )
    for event_type, step in (
        (DagsterEventType.RUN_START, None),
        (DagsterEventType.STEP_START, "raw__crm__accounts"),
    ):
        instance.report_dagster_event(
            DagsterEvent(event_type.value, FULL_RUN_JOB, pid=pid, step_key=step),
            run.run_id,
            timestamp=started_at,
        )
    started = instance.get_run_by_id(run.run_id)
    assert started.status == DagsterRunStatus.STARTED
    return started


@pytest.fixture()
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_a_run_whose_process_exited_is_dead_and_a_live_one_is_not(instance):
    dead = _started_run(instance, _exited_pid(), "2026-11-20")
    alive = _started_run(instance, os.getpid(), "2026-11-21")
    finished = instance.add_run(
        dg.DagsterRun(job_name=FULL_RUN_JOB, status=DagsterRunStatus.SUCCESS)
    )
    by_id = {p.run_id: p for p in in_progress_runs(instance)}
    assert finished.run_id not in by_id
    assert by_id[dead.run_id].dead and "is gone" in by_id[dead.run_id].state
    assert by_id[dead.run_id].running_step == "raw__crm__accounts"
    assert by_id[dead.run_id].dates == "2026-11-20"
    assert by_id[alive.run_id].alive and by_id[alive.run_id].pid == os.getpid()


def test_a_pid_now_held_by_a_process_started_after_the_run_is_dead(instance):
    """After a reboot the run's old pid may belong to another process: not the run."""
    run = _started_run(instance, os.getpid(), "2026-11-20", started_at=time.time() - 86_400)
    process = run_process(instance, run)
    assert process.dead and "another process started later" in process.state


def test_closing_marks_only_dead_runs_failed_and_says_why(instance):
    dead = _started_run(instance, _exited_pid(), "2026-11-20")
    alive = _started_run(instance, os.getpid(), "2026-11-21")
    closed = close_dead_runs(instance, "icp run")
    assert [p.run_id for p in closed] == [dead.run_id]
    failed = instance.get_run_by_id(dead.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[CLOSED_BY_TAG] == "icp run"
    failure = instance.get_records_for_run(
        dead.run_id, of_type=DagsterEventType.RUN_FAILURE
    ).records[0]
    message = failure.event_log_entry.dagster_event.message
    assert "raw__crm__accounts" in message and "is gone" in message and "2026-11-20" in message
    assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
    assert close_dead_runs(instance, "icp run") == []  # nothing left to close


def test_the_run_launcher_tells_run_monitoring_which_workers_died(instance):
    launcher = LivenessCheckingRunLauncher()
    launcher.register_instance(instance)
    assert launcher.supports_check_run_worker_health
    dead = _started_run(instance, _exited_pid(), "2026-11-20")
    alive = _started_run(instance, os.getpid(), "2026-11-21")
    health = launcher.check_run_worker_health(dead)
    assert health.status == dg._core.launcher.WorkerStatus.FAILED
    assert "is gone" in health.msg
    assert launcher.check_run_worker_health(alive).status.value == "RUNNING"
    assert "raw__crm__accounts" in launcher.get_run_worker_debug_info(dead)


def test_an_in_process_run_left_not_started_is_dead_after_a_while(instance, monkeypatch):
    """`icp run` killed between creating its run and starting it leaves it NOT_STARTED."""
    from dagster_project.operations import liveness

    run = instance.add_run(
        dg.DagsterRun(job_name=FULL_RUN_JOB, status=DagsterRunStatus.NOT_STARTED)
    )
    assert not run_process(instance, run).dead  # just created: its process may be starting
    monkeypatch.setattr(liveness, "_IN_PROCESS_START_SECONDS", 0)
    time.sleep(0.01)
    assert run_process(instance, run).dead
    assert [p.run_id for p in close_dead_runs(instance, "icp run")] == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
