"""Run history in a scratch ``$DAGSTER_HOME``, written through Dagster's own storage.

Executing even a one-asset job costs ~0.3 s a run, so a year of nightly runs is made from two
real runs (one that succeeds, one that fails) whose events are stored again under a new run id
and a backdated time, with the as-of date of the new run on its materialization, and whose
compute logs are copied: the storage ends up as a year of real runs would leave it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus
from dagster._core.events import StepMaterializationData
from dagster_shared.record import copy

from dagster_project.defs.publish.assets import PUBLISHED_MARTS
from dagster_project.run import dagster_instance

DAY = 86_400
_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2000-01-01")
_FAILING_DATE = "2000-01-02"


@dg.asset(key=PUBLISHED_MARTS, partitions_def=_PARTITIONS)
def _published_marts(context):
    # What a step writes to stdout and stderr lands in the compute logs.
    print(f"scoring {context.partition_key}")
    context.log.info("published")
    if context.partition_key == _FAILING_DATE:
        raise RuntimeError("ingest of crm/accounts failed: required column(s) id missing")
    return dg.MaterializeResult(metadata={"as_of_date": context.partition_key})


_DEFS = dg.Definitions(
    assets=[_published_marts], jobs=[dg.define_asset_job("icp_full_run", [_published_marts])]
)


def scratch_instance(home: Path, monkeypatch) -> dg.DagsterInstance:
    """A persistent instance in ``home`` made from deploy/dagster.yaml (DAGSTER_HOME restored
    after the test)."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dagster_instance(home)


@dataclass
class Templates:
    success: dg.DagsterRun
    failure: dg.DagsterRun
    events: dict[str, list]
    #: A run's event log shard as Dagster creates it, with no event: copied for each new run,
    #: as creating one (tables and migration stamp) is most of the time a stored run costs.
    empty_shard: Path


def make_templates(instance: dg.DagsterInstance) -> Templates:
    job = _DEFS.resolve_job_def("icp_full_run")
    runs = {}
    for name, partition in (("success", "2000-01-01"), ("failure", _FAILING_DATE)):
        result = job.execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
        runs[name] = instance.get_run_by_id(result.run_id)
    events = {run.run_id: instance.all_logs(run.run_id) for run in runs.values()}
    shard = _shard_dir(instance) / f"{runs['success'].run_id}.db"
    empty_shard = Path(instance.root_directory) / "empty_shard.db.template"
    with sqlite3.connect(shard) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(shard, empty_shard)
    with sqlite3.connect(empty_shard) as con:
        con.execute("DELETE FROM event_logs")
    return Templates(runs["success"], runs["failure"], events, empty_shard)


def _shard_dir(instance: dg.DagsterInstance) -> Path:
    return Path(instance.event_log_storage._base_dir)


def _compute_log_dir(instance: dg.DagsterInstance, run_id: str) -> Path:
    return Path(instance.compute_log_manager._base_dir) / run_id


def _retimed(entry, run_id: str, shift: float, partition: str, pid: int | None = None):
    event = entry.dagster_event
    if event is not None and event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
        old = event.event_specific_data.materialization
        materialization = dg.AssetMaterialization(
            asset_key=old.asset_key, partition=partition, metadata={"as_of_date": partition}
        )
        event = event._replace(
            event_specific_data=StepMaterializationData(materialization=materialization)
        )
    if event is not None and pid is not None:
        event = event._replace(pid=pid)
    return entry._replace(run_id=run_id, timestamp=entry.timestamp + shift, dagster_event=event)


def replay_run(
    instance: dg.DagsterInstance,
    templates: Templates,
    as_of: date,
    started_at: float,
    failed: bool = False,
    only_start: bool = False,
    pid: int | None = None,
) -> str:
    """A run of ``as_of`` that started at ``started_at``: the template's events stored again.

    ``only_start``: only the events up to the step's start (a run still in progress, or one
    whose process died), with ``pid`` recorded on them."""
    template = templates.failure if failed else templates.success
    run_id = str(uuid.uuid4())
    partition = as_of.isoformat()
    instance.add_run(
        copy(
            template,
            run_id=run_id,
            status=DagsterRunStatus.NOT_STARTED,
            tags={**template.tags, "dagster/partition": partition},
        )
    )
    shutil.copyfile(templates.empty_shard, _shard_dir(instance) / f"{run_id}.db")
    events = templates.events[template.run_id]
    shift = started_at - events[0].timestamp
    for entry in events:
        instance.handle_new_event(_retimed(entry, run_id, shift, partition, pid))
        if only_start and entry.dagster_event_type == DagsterEventType.STEP_START:
            break
    source = _compute_log_dir(instance, template.run_id)
    if source.is_dir() and not only_start:
        shutil.copytree(source, _compute_log_dir(instance, run_id))
    return run_id


def nightly_history(
    instance: dg.DagsterInstance, templates: Templates, days: int, last_night: float
) -> list[str]:
    """One run a night for ``days`` nights ending ``last_night``; every tenth one fails."""
    run_ids = []
    first_date = date(2025, 1, 1)
    for night in range(days):
        started = last_night - (days - 1 - night) * DAY
        run_ids.append(
            replay_run(
                instance,
                templates,
                first_date + timedelta(days=night),
                started,
                failed=night % 10 == 9,
            )
        )
    return run_ids


def queued_run(instance: dg.DagsterInstance, templates: Templates, as_of: date) -> str:
    """A run waiting in the run queue (a queued run names the code location to launch from)."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "icp_full_run")
    run_id = str(uuid.uuid4())
    instance.add_run(
        copy(
            templates.success,
            run_id=run_id,
            status=DagsterRunStatus.QUEUED,
            remote_job_origin=origin,
            tags={**templates.success.tags, "dagster/partition": as_of.isoformat()},
        )
    )
    return run_id


def exited_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def sqlite_bytes(home: Path) -> int:
    return sum(path.stat().st_size for path in (home / "history").rglob("*.db*"))
