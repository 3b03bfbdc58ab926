"""Guarantee: crashes lose nothing.

A run killed with SIGKILL at any point (during ingest, during dbt, during scoring, during
publish) leaves the last published version intact and readable, and the next run completes
and gives the same result as an uninterrupted one.

Baseline (fixture ``baseline``): the sample landing zone's second-newest export date D1 is run
to completion, and the published copy is read by reader processes (``published_readers``: the
DuckDB file read-only, the Parquet copy through ``current``); what they see (version id, rows,
checksum of the scores, history and dim_accounts rows) is D1's fingerprint.

Crashes (fixture ``crash_chain``): the D1 warehouse folder is copied twice. On one copy the
newest date D2 runs to completion (``icp run`` in its own process, alongside the rest): the
result of an uninterrupted run. On the other, D2 is run by ``python -m dagster_project.cli run``
(the ``icp run`` command) in its own session, four times in a row; each run is watched through
the Dagster instance in its ``DAGSTER_HOME`` (the step events the run's process writes) and at
its kill point its whole process group (the CLI and a dbt child) gets SIGKILL:

=======  ==============================================  ====================================
point    killed when                                     left behind
=======  ==============================================  ====================================
ingest   a ``raw__<table>`` step has started, two        raw tables part D2, part D1
         others have loaded their table
dbt      ``dbt_models`` has materialized its first       D2 staging views and
         ``marts/*`` model and a ``dbt`` process runs    dim_accounts_history, D1 facts;
                                                         dbt's DuckDB writes cut short
scoring  ``account_fit_scores`` has run 30% of its D1    a scoring step that never finished
         duration (0.05-0.25 s), nothing materialized
publish  ``published__marts`` has built its DuckDB copy  ``icp_marts.duckdb.tmp-*`` (+ .wal),
         and is writing ``parquet/.tmp-v-*``             ``parquet/.tmp-v-*``
=======  ==============================================  ====================================

Each test checks the kill landed where intended (exactly that step started and not ended, the
run not failed, every process of the group gone, the warehouse lock free). After each kill the
readers see no error and one complete version: the very D1 version (same id, same
fingerprint). Each run starts from the warehouse the previous crash left, so the run after a
crash must finish the interrupted step without a failure or retry. Then D2 is run once more,
normally (in process, on the same Dagster instance, which still lists the four killed runs as
started): it succeeds without a retry, every table of its warehouse, its published DuckDB file
and its Parquet version equals the uninterrupted run's (``warehouse_diff``: all but the
run-time columns, floating point exactly), the crashed publish's leftovers are gone and
readers see one complete D2 version.

The four kills share one chain of runs rather than four separate recoveries, and the
uninterrupted D2 run goes alongside them, to keep the module near six minutes on two cores:
each run costs about a minute and cannot resume where the last one died.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterEventType

from dagster_project.defs.locking import WarehouseLock
from dagster_project.ingest.landing import export_dates
from dagster_project.operations.liveness import CLOSED_BY_TAG
from dagster_project.publish import (
    CURRENT_LINK,
    DB_FILE,
    PARQUET_DIR,
    current_parquet_version,
    published_dir_for,
)
from dagster_project.run import INSTANCE_CONFIG, RunSummary, run_pipeline
from dagster_project.settings import PROJECT_ROOT
from tests.conftest import settings_for
from tests.reliability.published_readers import finish_readers, is_complete, running_readers
from tests.reliability.warehouse_diff import parquet_differences, table_differences

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the run's processes in /proc (Linux)"
)


EVENT_TYPES = {
    DagsterEventType.RUN_START,
    DagsterEventType.RUN_SUCCESS,
    DagsterEventType.RUN_FAILURE,
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.ASSET_MATERIALIZATION,
}
STEP_ENDS = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_UP_FOR_RETRY,
}
PROBLEMS = {
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.RUN_FAILURE,
}
# Step keys (the uninterrupted run checks them): the dbt multi-asset, the scoring multi-asset,
# the publish asset. The ingest steps are ``raw__<table>``, one per contract in schemas/.
DBT_STEP, SCORING_STEP, PUBLISH_STEP = "dbt_models", "account_fit_scores", "published__marts"
EVENT_POLL_SECONDS = 0.05
FAST_EVENT_POLL_SECONDS = 0.01
FAST_POLL_SECONDS = 0.002
RUN_TIMEOUT_SECONDS = 900
READER_TIMEOUT_SECONDS = 60


# ---------------------------------------------------------------------------------------------
# The Dagster event log of a run another process is executing


@dataclass
class RunEvents:
    """The step events of one run, read incrementally from the instance's event log."""

    instance: dg.DagsterInstance
    run_id: str
    cursor: str | None = None
    # (event type, step key, asset key or "", timestamp), in the order they were written
    events: list[tuple[DagsterEventType, str, str, float]] = field(default_factory=list)

    def refresh(self) -> None:
        connection = self.instance.get_records_for_run(
            self.run_id, cursor=self.cursor, of_type=EVENT_TYPES
        )
        for record in connection.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            asset = event.asset_key.to_user_string() if event.asset_key else ""
            self.events.append((event.event_type, entry.step_key or "", asset, entry.timestamp))
        self.cursor = connection.cursor

    def steps(self, *types: DagsterEventType) -> list[str]:
        return [step for kind, step, _, _ in self.events if kind in types]

    def _first(self, event_type: DagsterEventType, step: str) -> float | None:
        return next((t for kind, s, _, t in self.events if (kind, s) == (event_type, step)), None)

    def started_at(self, step: str) -> float | None:
        return self._first(DagsterEventType.STEP_START, step)

    def running(self) -> list[str]:
        """Steps started and not (yet) ended, in start order."""
        ended = set(self.steps(*STEP_ENDS))
        return [s for s in self.steps(DagsterEventType.STEP_START) if s not in ended]

    def succeeded(self) -> list[str]:
        return self.steps(DagsterEventType.STEP_SUCCESS)

    def materialized(self, step: str) -> list[str]:
        return [
            a for kind, s, a, _ in self.events
            if kind == DagsterEventType.ASSET_MATERIALIZATION and s == step
        ]  # fmt: skip

    def problems(self) -> list[str]:
        """Failures and retries: a run after a crash should need neither."""
        return [f"{kind.value} {step}" for kind, step, _, _ in self.events if kind in PROBLEMS]

    def finished(self) -> bool:
        return bool(self.steps(DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE))

    def seconds(self, step: str) -> float:
        return self._first(DagsterEventType.STEP_SUCCESS, step) - self.started_at(step)


def _instance(home: Path) -> dg.DagsterInstance:
    """The persistent instance in ``home`` (sqlite storage), configured like ``icp run``'s."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def _events_of(instance: dg.DagsterInstance, run_id: str) -> RunEvents:
    events = RunEvents(instance, run_id)
    events.refresh()
    return events


# ---------------------------------------------------------------------------------------------
# Processes


def _group_processes(pgid: int) -> dict[int, list[str]]:
    """Live (not zombie) processes of process group ``pgid``: pid -> argv."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited meanwhile
            continue
        state, _parent, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            found[int(entry.name)] = [a.decode(errors="replace") for a in argv if a]
    return found


def _dbt_processes(pgid: int) -> dict[int, list[str]]:
    """The ``dbt`` processes (``.../bin/dbt build ...``) among a process group's."""
    return {
        pid: argv
        for pid, argv in _group_processes(pgid).items()
        if any(Path(arg).name == "dbt" for arg in argv[:2])
    }


def _wait_group_gone(pgid: int, timeout: float = 15) -> dict[int, list[str]]:
    deadline = time.monotonic() + timeout
    while (left := _group_processes(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _lock_is_free(warehouse: Path) -> bool:
    lock = WarehouseLock(warehouse)
    try:
        lock.acquire("crash-test", timeout_seconds=0)
    except dg.Failure:
        return False
    lock.release()
    return True


# ---------------------------------------------------------------------------------------------
# Kill points


@dataclass
class KillContext:
    pgid: int
    published: Path
    steps: set[str]  # the step keys of this kill point
    scoring_delay: float
    seen: dict = field(default_factory=dict)  # what the trigger saw, for the record


@dataclass(frozen=True)
class KillPoint:
    """``armed`` looks at the run's events (refreshed every EVENT_POLL_SECONDS, or every
    FAST_POLL_SECONDS once ``near`` holds); once armed, ``fire`` is polled every
    FAST_POLL_SECONDS and the process group is killed when it holds. After the kill, exactly
    one step must have started and not ended: one of the point's."""

    name: str
    armed: Callable[[RunEvents, KillContext], bool]
    fire: Callable[[RunEvents, KillContext], bool]
    description: str
    near: Callable[[RunEvents, KillContext], bool] = lambda events, ctx: False


def _ingest_armed(events: RunEvents, ctx: KillContext) -> bool:
    loaded = [s for s in events.succeeded() if s in ctx.steps]
    running = [s for s in events.running() if s in ctx.steps]
    return len(loaded) >= 2 and bool(running)


def _dbt_armed(events: RunEvents, ctx: KillContext) -> bool:
    return DBT_STEP in events.running() and any(
        asset.startswith("marts/") for asset in events.materialized(DBT_STEP)
    )


def _dbt_fire(events: RunEvents, ctx: KillContext) -> bool:
    dbt = _dbt_processes(ctx.pgid)
    if dbt:
        ctx.seen["dbt_processes"] = dbt
        ctx.seen["models_materialized"] = events.materialized(DBT_STEP)
    return bool(dbt)


def _scoring_fire(events: RunEvents, ctx: KillContext) -> bool:
    started = events.started_at(SCORING_STEP)
    ctx.seen["seconds_into_step"] = round(time.time() - started, 3)
    return time.time() >= started + ctx.scoring_delay


def _publish_fire(events: RunEvents, ctx: KillContext) -> bool:
    building = sorted(p.name for p in (ctx.published / PARQUET_DIR).glob(".tmp-v-*"))
    if building:
        ctx.seen["parquet_being_written"] = building
        ctx.seen["duckdb_copy_built"] = sorted(
            p.name for p in ctx.published.glob(f"{DB_FILE}.tmp-*")
        )
    return bool(building)


KILL_POINTS = (
    KillPoint(
        "ingest",
        armed=_ingest_armed,
        fire=lambda events, ctx: True,
        description="an ingest step (raw/* asset) started after two raw tables were loaded",
        # An ingest step lasts a few tenths of a second: watch closely once ingest has begun.
        near=lambda events, ctx: any(
            s in ctx.steps for s in events.steps(DagsterEventType.STEP_START)
        ),
    ),
    KillPoint(
        "dbt",
        armed=_dbt_armed,
        fire=_dbt_fire,
        description="dbt_models materialized its first marts/* model, a dbt process is alive",
    ),
    KillPoint(
        "scoring",
        armed=lambda events, ctx: SCORING_STEP in events.running(),
        fire=_scoring_fire,
        description="account_fit_scores has run 30% of its D1 duration (0.05-0.25 s)",
    ),
    KillPoint(
        "publish",
        armed=lambda events, ctx: PUBLISH_STEP in events.running(),
        fire=_publish_fire,
        description="published__marts is writing parquet/.tmp-v-* (the DuckDB copy is built)",
    ),
)
KILL_POINT_NAMES = [point.name for point in KILL_POINTS]


@dataclass
class Crash:
    """What one killed run did and what it left behind."""

    point: str
    run_id: str
    returncode: int
    running_at_kill: list[str]
    events: RunEvents
    seen: dict
    survivors: dict[int, list[str]]
    lock_free: bool
    leftovers: list[str]
    observed: dict[str, list[dict]]
    seconds: float


def _cli_run(landing: Path, warehouse: Path, as_of: date, home: Path, out: Path):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    command = [sys.executable, "-m", "dagster_project.cli", "run", "--landing", str(landing)]
    command += ["--warehouse", str(warehouse), "--as-of", as_of.isoformat()]
    with out.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill reaches dbt too
        )


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _crash(
    point: KillPoint,
    *,
    landing: Path,
    warehouse: Path,
    as_of: date,
    home: Path,
    instance: dg.DagsterInstance,
    steps: set[str],
    scoring_delay: float,
    work: Path,
) -> Crash:
    started = time.monotonic()
    known = {run.run_id for run in instance.get_runs()}
    out = work / f"{point.name}.out"
    process = _cli_run(landing, warehouse, as_of, home, out)
    ctx = KillContext(
        pgid=process.pid,
        published=published_dir_for(warehouse),
        steps=steps,
        scoring_delay=scoring_delay,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        run_id = None
        while run_id is None:
            new = [run.run_id for run in instance.get_runs() if run.run_id not in known]
            run_id = new[0] if new else None
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the {point.name} run never started:\n{_tail(out)}")
            time.sleep(EVENT_POLL_SECONDS)
        events = RunEvents(instance, run_id)
        next_refresh = 0.0
        while True:
            now = time.monotonic()
            if now >= next_refresh:
                events.refresh()
                near = point.near(events, ctx)
                next_refresh = now + (FAST_EVENT_POLL_SECONDS if near else EVENT_POLL_SECONDS)
                if events.finished() or process.poll() is not None or now > deadline:
                    pytest.fail(
                        f"the run ended or timed out before the {point.name} kill point "
                        f"({point.description}); running {events.running()}, problems "
                        f"{events.problems()}:\n{_tail(out)}"
                    )
            if point.armed(events, ctx) and point.fire(events, ctx):
                break
            time.sleep(FAST_POLL_SECONDS)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    survivors = _wait_group_gone(process.pid)
    events.refresh()  # events written between the trigger and the kill
    published = published_dir_for(warehouse)
    return Crash(
        point=point.name,
        run_id=run_id,
        returncode=process.returncode,
        running_at_kill=events.running(),
        events=events,
        seen=ctx.seen,
        survivors=survivors,
        lock_free=_lock_is_free(warehouse),
        leftovers=_leftovers(published),
        observed=_read_published(published, work / f"readers-{point.name}"),
        seconds=round(time.monotonic() - started, 1),
    )


# ---------------------------------------------------------------------------------------------
# Reading and comparing what was published


# The DuckDB file opened read-only and the Parquet copy through ``current`` (test_readers.py
# covers pandas and polars on the same files).
READER_MODES = ("duckdb", "parquet-duckdb")


def _leftovers(published: Path) -> list[str]:
    return sorted(
        [p.name for p in published.glob(f"{DB_FILE}.tmp-*")]
        + [f"{PARQUET_DIR}/{p.name}" for p in (published / PARQUET_DIR).glob(".*")]
    )


def _read_published(published: Path, work: Path) -> dict[str, list[dict]]:
    """Every reader mode, as an outside process, reads the published copy a few times."""
    with running_readers(READER_MODES, published, work, READER_TIMEOUT_SECONDS) as readers:
        time.sleep(0.2)  # a few reads each
    return finish_readers(readers)


def _fingerprints(observed: dict[str, list[dict]]) -> dict[str, dict]:
    """Per reader mode, what it saw minus the timing (the same in every observation)."""
    prints = {}
    for mode, observations in observed.items():
        assert observations, f"{mode}: no observation"
        errors = [o["error"] for o in observations if "error" in o]
        assert not errors, f"{mode}: reader errors {errors[:3]}"
        assert all(is_complete(o) for o in observations), f"{mode}: {observations[:3]}"
        distinct = {
            json.dumps({k: v for k, v in o.items() if k not in ("t", "seconds")}, sort_keys=True)
            for o in observations
        }
        assert len(distinct) == 1, f"{mode} saw more than one version: {distinct}"
        prints[mode] = json.loads(distinct.pop())
    return prints


def _published_version(published: Path) -> tuple[str, str]:
    """The version id of the published DuckDB file and of ``parquet/current``."""
    with duckdb.connect(str(published / DB_FILE), read_only=True) as con:
        (db_version,) = con.execute("SELECT version FROM meta.publish_info").fetchone()
    return db_version, current_parquet_version(published).name


# ---------------------------------------------------------------------------------------------
# Fixtures: the uninterrupted runs, then the crashes and the run after them


@dataclass
class Baseline:
    """The uninterrupted D1 run: its warehouse folder (warehouse.duckdb + published/) is the
    starting point of every D2 run."""

    landing: Path
    d1: date
    d2: date
    d1_dir: Path
    d1_version: str
    d1_seen: dict[str, dict]  # reader mode -> what it saw of the published copy
    scoring_seconds: float
    steps: dict[str, set[str]]  # kill point -> the step keys that are that point


def _run_in_process(landing, warehouse, as_of, instance) -> tuple[RunSummary, RunEvents]:
    settings = replace(settings_for(landing, warehouse), as_of_date=as_of)
    summary = run_pipeline(settings, instance=instance)
    return summary, _events_of(instance, summary.run_id)


@pytest.fixture(scope="module")
def _no_published_dir_override():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ICP_PUBLISHED_DIR", raising=False)  # each warehouse publishes next to it
        yield


@pytest.fixture(scope="module")
def baseline(sample_landing, tmp_path_factory, _no_published_dir_override) -> Baseline:
    root = tmp_path_factory.mktemp("crash_baseline")
    d1, d2 = export_dates(sample_landing)[-2:]
    timer = time.monotonic()
    d1_dir = root / "d1"
    with _instance(root / "dagster_home") as instance:
        summary, events = _run_in_process(sample_landing, d1_dir / "warehouse.duckdb", d1, instance)
    assert summary.success, summary.failures + summary.checks_failed
    d1_version, parquet_version = _published_version(d1_dir / "published")
    assert parquet_version == d1_version
    d1_seen = _fingerprints(_read_published(d1_dir / "published", root / "readers"))
    print(f"\n[crashes] D1 {d1} uninterrupted: {time.monotonic() - timer:.0f} s")
    print(f"[crashes] its steps: {events.succeeded()}")
    from dagster_project.defs.ingest.assets import raw_asset_key
    from dagster_project.ingest.contracts import load_contracts

    steps = {
        "ingest": {"__".join(raw_asset_key(c).path) for c in load_contracts().values()},
        "dbt": {DBT_STEP},
        "scoring": {SCORING_STEP},
        "publish": {PUBLISH_STEP},
    }
    for name, keys in steps.items():
        assert keys <= set(events.succeeded()), f"{name} steps {keys} are not the run's steps"
    return Baseline(
        landing=sample_landing,
        d1=d1,
        d2=d2,
        d1_dir=d1_dir,
        d1_version=d1_version,
        d1_seen=d1_seen,
        scoring_seconds=events.seconds(SCORING_STEP),
        steps=steps,
    )


@dataclass
class CrashChain:
    crashes: dict[str, Crash]
    rerun: RunSummary
    rerun_events: RunEvents
    rerun_seen: dict[str, list[dict]]
    crashed_dir: Path  # the warehouse folder of the crashes and the run after them
    clean_dir: Path  # the warehouse folder of the uninterrupted D2 run
    clean_returncode: int
    clean_events: RunEvents
    clean_seen: dict[str, list[dict]]
    #: Status, closing tag and failure message of each killed run once the chain is over.
    killed_runs_after: dict[str, tuple[str, str, str]]


@pytest.fixture(scope="module")
def crash_chain(baseline: Baseline, tmp_path_factory) -> CrashChain:
    root = tmp_path_factory.mktemp("crash_chain")
    crashed_dir, clean_dir = root / "crashed", root / "clean"
    for folder in (crashed_dir, clean_dir):
        shutil.copytree(baseline.d1_dir, folder, symlinks=True)
    warehouse = crashed_dir / "warehouse.duckdb"
    # The uninterrupted D2 run, `icp run` in its own process and Dagster home, meanwhile: the
    # module stays near five minutes on two cores (the chain watches events, not the clock).
    clean_home = root / "clean_home"
    _instance(clean_home).dispose()
    timer = time.monotonic()
    clean = _cli_run(
        baseline.landing,
        clean_dir / "warehouse.duckdb",
        baseline.d2,
        clean_home,
        root / "clean.out",
    )
    home = root / "dagster_home"
    crashes = {}
    try:
        with _instance(home) as instance:
            for point in KILL_POINTS:
                crash = _crash(
                    point,
                    landing=baseline.landing,
                    warehouse=warehouse,
                    as_of=baseline.d2,
                    home=home,
                    instance=instance,
                    steps=baseline.steps[point.name],
                    # 30% into the step as the D1 run timed it, within 0.05-0.25 s: a kill
                    # run is never much faster than that (a loaded machine only slows it).
                    scoring_delay=min(0.25, max(0.05, 0.3 * baseline.scoring_seconds)),
                    work=root,
                )
                crashes[point.name] = crash
                print(
                    f"[crashes] killed during {point.name} after {crash.seconds} s: running "
                    f"{crash.running_at_kill}, saw {crash.seen}, left {crash.leftovers}"
                )
            rerun_timer = time.monotonic()
            rerun, rerun_events = _run_in_process(
                baseline.landing, warehouse, baseline.d2, instance
            )
            print(f"[crashes] D2 run after the crashes: {time.monotonic() - rerun_timer:.0f} s")
            killed_runs_after = {
                name: _closing_of(instance, crash.events.run_id) for name, crash in crashes.items()
            }
        clean.wait(timeout=RUN_TIMEOUT_SECONDS)
        print(f"[crashes] D2 uninterrupted, alongside: {time.monotonic() - timer:.0f} s to finish")
    finally:
        if clean.poll() is None:
            os.killpg(clean.pid, signal.SIGKILL)
            clean.wait()
    assert clean.returncode == 0, f"the uninterrupted D2 run failed:\n{_tail(root / 'clean.out')}"
    with dg.DagsterInstance.from_config(str(clean_home)) as clean_instance:
        (clean_run,) = clean_instance.get_runs()
        clean_events = _events_of(clean_instance, clean_run.run_id)
    return CrashChain(
        crashes=crashes,
        rerun=rerun,
        rerun_events=rerun_events,
        rerun_seen=_read_published(published_dir_for(warehouse), root / "readers-rerun"),
        crashed_dir=crashed_dir,
        clean_dir=clean_dir,
        clean_returncode=clean.returncode,
        clean_events=clean_events,
        clean_seen=_read_published(clean_dir / "published", root / "readers-clean"),
        killed_runs_after=killed_runs_after,
    )


def _closing_of(instance: dg.DagsterInstance, run_id: str) -> tuple[str, str, str]:
    run = instance.get_run_by_id(run_id)
    failures = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    message = failures[-1].event_log_entry.dagster_event.message if failures else ""
    return run.status.value, run.tags.get(CLOSED_BY_TAG, ""), message


# ---------------------------------------------------------------------------------------------
# The tests


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=KILL_POINT_NAMES)
def test_the_kill_lands_in_its_step(baseline, crash_chain, point):
    crash = crash_chain.crashes[point.name]
    assert crash.returncode == -signal.SIGKILL
    steps = baseline.steps[point.name]
    assert len(crash.running_at_kill) == 1 and crash.running_at_kill[0] in steps, (
        f"killed while {crash.running_at_kill} ran, not during {point.name}"
    )
    assert PUBLISH_STEP not in crash.events.succeeded() and not crash.events.finished()
    assert crash.events.problems() == [], "the run had not failed before the kill"
    assert crash.survivors == {}, "every process of the run died, dbt included"
    assert crash.lock_free, "the kernel released the warehouse lock"
    if point.name == "dbt":
        assert crash.seen["dbt_processes"], "a dbt process was killed"
    if point.name == "scoring":
        assert crash.events.materialized(SCORING_STEP) == [], "killed before it had scored"
    if point.name == "publish":
        assert crash.leftovers, "the publish was cut short after writing its temporary files"
        assert crash.seen["duckdb_copy_built"] and crash.seen["parquet_being_written"]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=KILL_POINT_NAMES)
def test_the_last_published_version_survives_the_kill(baseline, crash_chain, point):
    crash = crash_chain.crashes[point.name]
    # Every reader: no error, one complete version, the very one D1 published.
    assert _fingerprints(crash.observed) == baseline.d1_seen
    assert {seen["version"] for seen in baseline.d1_seen.values()} == {baseline.d1_version}


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=KILL_POINT_NAMES)
def test_the_run_after_a_crash_gets_past_it(crash_chain, point):
    crash = crash_chain.crashes[point.name]
    names = list(crash_chain.crashes)
    position = names.index(point.name)
    if position + 1 < len(names):
        after = crash_chain.crashes[names[position + 1]].events
    else:
        after = crash_chain.rerun_events
    interrupted = crash.running_at_kill[0]
    assert interrupted in after.succeeded(), f"the next run did not finish {interrupted}"
    assert after.problems() == [], "the next run needed no retry"


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=KILL_POINT_NAMES)
def test_a_killed_run_is_closed_as_failed_by_the_next_run(crash_chain, point):
    """The instance does not keep a killed run STARTED (it would hold the run queue's one
    slot for ever): the next ``icp run`` marks it failed, naming the step it died in."""
    status, closed_by, message = crash_chain.killed_runs_after[point.name]
    assert status == "FAILURE"
    assert closed_by in {"icp run", "the next run"}
    assert crash_chain.crashes[point.name].running_at_kill[0] in message
    assert "is gone" in message


@pytest.mark.slow
def test_the_run_after_the_crashes_equals_an_uninterrupted_run(baseline, crash_chain):
    rerun = crash_chain.rerun
    assert rerun.success, rerun.failures + rerun.checks_failed
    assert crash_chain.rerun_events.problems() == [], "no retry either"
    assert crash_chain.clean_returncode == 0 and crash_chain.clean_events.problems() == []
    # Every table of the warehouse, of the published DuckDB file and of the Parquet version.
    crashed, clean = crash_chain.crashed_dir, crash_chain.clean_dir
    warehouse_diff = table_differences(crashed / "warehouse.duckdb", clean / "warehouse.duckdb")
    assert warehouse_diff == []
    published, clean_published = crashed / "published", clean / "published"
    published_diff = table_differences(published / DB_FILE, clean_published / DB_FILE)
    assert published_diff == []
    assert parquet_differences(published, clean_published) == []

    # Readers see one complete D2 version, the one this run published, with the uninterrupted
    # run's scores; the crashed publish's temporary files are gone.
    version, parquet_version = _published_version(published)
    assert version == parquet_version != baseline.d1_version
    seen = _fingerprints(crash_chain.rerun_seen)
    assert {s["version"] for s in seen.values()} == {version}
    assert {s["as_of_date"] for s in seen.values()} == {baseline.d2.isoformat()}

    def without_version(prints: dict[str, dict]) -> dict[str, dict]:
        return {m: {k: v for k, v in p.items() if k != "version"} for m, p in prints.items()}

    assert without_version(seen) == without_version(_fingerprints(crash_chain.clean_seen))
    assert _leftovers(published) == []
    assert (published / PARQUET_DIR / CURRENT_LINK).is_symlink()
