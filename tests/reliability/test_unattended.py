"""Guarantee: a crash never wedges the schedule.

Played as an operator's night goes wrong, with the real daemon (``dagster-daemon run -w
workspace.yaml``) on a scratch ``DAGSTER_HOME`` configured by ``deploy/dagster.yaml`` (one run
at a time, run monitoring, the liveness-checking run launcher) and the nightly schedule set
to tick every minute:

1. ``icp run`` (the CLI, in its own session) is killed with SIGKILL mid-run: the instance
   records it STARTED, holding the queue's only slot.
2. The daemon starts. The dead CLI run is marked failed (by run monitoring or by whatever
   closes it first), so the queue is not blocked: the schedule's run starts.
3. The host goes down while that daemon-launched run works: the daemon, its code server, the
   run's worker and dbt all get SIGKILL, so nothing reports the run's end. When the daemon
   is back, run monitoring marks the run failed. (A worker killed alone is reported by its
   code server, Dagster's own watch.)
4. The next tick scores the date again; the run completes and publishes, and the tick after
   that skips the date, already published. No two runs of the date ever ran at once.
5. Both dead runs were posted, once each, to a webhook on loopback by the failure sensor.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster import DagsterEventType, DagsterRunStatus

from dagster_project.ingest.landing import export_dates
from dagster_project.operations.liveness import CLOSED_BY_TAG
from dagster_project.operations.run_launcher import MONITORING
from dagster_project.run import INSTANCE_CONFIG
from dagster_project.settings import PROJECT_ROOT
from tests.loopback_webhook import Webhook

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 900
POLL_SECONDS = 0.5


def _wait_for(what: str, condition, timeout: float = DEADLINE_SECONDS, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (a run's dbt child included)."""
    try:
        parent = psutil.Process(pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in victims:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def _started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
    return [r.event_log_entry.step_key for r in records]


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    (start,) = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    return start.event_log_entry.dagster_event.pid


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    return records[-1].event_log_entry.dagster_event.message if records else ""


def _run_intervals(instance: dg.DagsterInstance, partition: str) -> list[tuple[float, float]]:
    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": partition}))
    return sorted(
        (r.start_time, r.end_time or time.time()) for r in records if r.start_time is not None
    )


def _start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_killed_cli_run_and_a_killed_daemon_run_do_not_wedge_the_schedule(
    sample_landing, tmp_path
):
    webhook = Webhook()
    try:
        _play_the_night(sample_landing, tmp_path, webhook)
    finally:
        webhook.close()


def _play_the_night(sample_landing: Path, tmp_path: Path, webhook: Webhook) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing)
    newest = export_dates(landing)[-1].isoformat()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ICP_LANDING": str(landing),
        "ICP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "ICP_SCHEDULE_CRON": "* * * * *",
        "ICP_ALERT_WEBHOOK_URL": webhook.url,
        "ICP_ALERT_WEBHOOK_FORMAT": "json",
        "ICP_DAGSTER_UI_URL": "http://127.0.0.1:3000",
    }
    env.pop("ICP_AS_OF_DATE", None)
    instance = dg.DagsterInstance.from_config(str(home))

    # 1. The CLI run, killed once it is under way.
    cli_log = tmp_path / "cli.out"
    with cli_log.open("wb") as out:
        cli = subprocess.Popen(
            [sys.executable, "-m", "dagster_project.cli", "run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (cli_run,) = _wait_for(
        "the CLI run to start a step",
        lambda: [r for r in instance.get_runs() if _started_steps(instance, r.run_id)],
        timeout=300,
        log=cli_log,
    )
    os.killpg(cli.pid, signal.SIGKILL)
    cli.wait()
    assert instance.get_run_by_id(cli_run.run_id).status == DagsterRunStatus.STARTED

    daemon_log = tmp_path / "daemon.out"
    daemon = _start_daemon(env, daemon_log)
    try:
        # 2. The dead CLI run is closed and a daemon-launched run of the date starts.
        _wait_for(
            "the dead CLI run to be marked failed",
            lambda: instance.get_run_by_id(cli_run.run_id).status == DagsterRunStatus.FAILURE,
            timeout=300,
            log=daemon_log,
        )
        closed = instance.get_run_by_id(cli_run.run_id)
        assert closed.tags.get(CLOSED_BY_TAG), "closed as dead, not failed by itself"
        assert "is gone" in _failure_message(instance, cli_run.run_id)

        def daemon_runs() -> list[dg.DagsterRun]:
            return [r for r in instance.get_runs() if r.run_id != cli_run.run_id]

        (first,) = _wait_for(
            "a daemon-launched run to start a step",
            lambda: [r for r in daemon_runs() if _started_steps(instance, r.run_id)][:1],
            log=daemon_log,
        )
        assert first.tags["dagster/partition"] == newest

        # 3. The host goes down mid-run: the daemon, its code server, the run's worker and
        # its dbt child all die at once, so nothing is left to report the run's end. The
        # daemon comes back; its run monitoring finds the run's process gone.
        _kill_tree(daemon.pid)
        daemon.wait()
        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.STARTED
        daemon = _start_daemon(env, daemon_log)
        _wait_for(
            "run monitoring to mark the killed run failed",
            lambda: instance.get_run_by_id(first.run_id).status == DagsterRunStatus.FAILURE,
            timeout=300,
            log=daemon_log,
        )
        assert instance.get_run_by_id(first.run_id).tags[CLOSED_BY_TAG] == MONITORING
        assert "is gone" in _failure_message(instance, first.run_id)

        # 4. A later tick scores the date again, to the end.
        succeeded = _wait_for(
            "a run of the date to succeed",
            lambda: [r for r in daemon_runs() if r.status == DagsterRunStatus.SUCCESS],
            log=daemon_log,
        )
        assert [r.tags["dagster/partition"] for r in succeeded] == [newest]
        failed_for_real = [
            r.run_id
            for r in daemon_runs()
            if r.status == DagsterRunStatus.FAILURE and r.run_id != first.run_id
        ]
        assert failed_for_real == []
        # The tick after the success skips: the date is published and its files unchanged.
        runs_so_far = len(daemon_runs())
        time.sleep(75)
        assert len(daemon_runs()) == runs_so_far
    finally:
        _kill_tree(daemon.pid)
        daemon.wait()
    intervals = _run_intervals(instance, newest)
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert start >= end - 1, "two runs of the date overlapped"
    instance.dispose()

    # Both deaths reached a person, once each, by the daemon's failure sensor: the CLI's own
    # process could not tell anyone.
    failures = [body for body in webhook.bodies if body["level"] == "failure"]
    assert sorted(body["run_id"] for body in failures) == sorted([cli_run.run_id, first.run_id])
    for body in failures:
        assert body["dates"] == newest
        assert body["steps"], body
        assert any("is gone" in reason for reason in body["reasons"]), body
        assert body["link"] == f"http://127.0.0.1:3000/runs/{body['run_id']}"
