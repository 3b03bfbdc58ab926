"""The nightly schedule, the new-export sensor and the warehouse lock, evaluated the way the
Dagster daemon evaluates them (``build_schedule_context`` / ``build_sensor_context`` on a real
instance), on landing folders made file by file."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dagster_project.defs import build_definitions
from dagster_project.defs.automation import (
    SCHEDULE_NAME,
    SENSOR_NAME,
    TRIGGER_TAG,
    plan_nightly_dates,
)
from dagster_project.defs.jobs import FULL_RUN_JOB, WAREHOUSE_TAG
from dagster_project.defs.locking import WarehouseLock
from dagster_project.defs.partitions import AS_OF_PARTITIONS, SINGLE_RUN, TRANSIENT_RETRY
from dagster_project.defs.publish.assets import PUBLISHED_MARTS
from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import SUCCESS_MARKER, complete_export_dates
from dagster_project.run import INSTANCE_CONFIG
from tests.conftest import settings_for

REQUIRED = ["crm/accounts", "crm/opportunities", "billing/subscriptions", "billing/invoices",
            "support/tickets"]  # fmt: skip


def _export(landing: Path, day: str, entities=REQUIRED, marker: bool = False) -> Path:
    folder = landing / day
    for name in entities:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.csv").write_text("id\n", encoding="utf-8")
    if marker:
        (folder / SUCCESS_MARKER).write_text("", encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("automation")


@pytest.fixture()
def landing(module_dir) -> Path:
    """An empty landing folder, the same path for every test (so definitions can be shared)."""
    root = module_dir / "landing"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    return root


@pytest.fixture(scope="module")
def default_defs(module_dir) -> dg.Definitions:
    return _defs(module_dir / "landing", module_dir)


def _defs(landing: Path, tmp_path: Path, **overrides) -> dg.Definitions:
    settings = replace(settings_for(landing, tmp_path / "warehouse.duckdb"), **overrides)
    return build_definitions(settings)


def _evaluate_schedule(defs, instance, when: datetime):
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
        return schedule.evaluate_tick(context)


def _evaluate_sensor(defs, instance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        return sensor.evaluate_tick(context)


def test_the_required_files_or_the_marker_make_a_folder_complete(landing):
    contracts = load_contracts().values()
    _export(landing, "2026-11-20")
    _export(landing, "2026-11-21", entities=REQUIRED[:-1])  # tickets not there yet
    _export(landing, "2026-11-22", entities=REQUIRED[:1], marker=True)
    (landing / "2026-11-23").mkdir()
    assert complete_export_dates(landing, contracts, "files") == [date(2026, 11, 20)]
    assert complete_export_dates(landing, contracts, "marker") == [date(2026, 11, 22)]
    with pytest.raises(ValueError, match="not one of"):
        complete_export_dates(landing, contracts, "any")


def test_a_company_without_some_sources_has_complete_folders(tmp_path):
    """Sources are optional: accounts alone make a first folder complete; later folders are
    expected to hold what the one before held, and nothing more."""
    contracts = load_contracts().values()
    crm_only = ["crm/accounts", "crm/opportunities"]
    _export(tmp_path, "2026-11-19", entities=crm_only[:1])
    _export(tmp_path, "2026-11-20", entities=crm_only)
    _export(tmp_path, "2026-11-21", entities=crm_only[:1])  # opportunities not landed yet
    _export(tmp_path, "2026-11-22", entities=crm_only)
    assert complete_export_dates(tmp_path, contracts, "files") == [
        date(2026, 11, 19),
        date(2026, 11, 20),
        date(2026, 11, 22),
    ]


def test_schedule_scores_the_newest_complete_export_of_the_night(landing, module_dir):
    defs = _defs(landing, module_dir, schedule_cron="30 1 * * *", timezone="Europe/Berlin")
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *", "Europe/Berlin")
    assert schedule.job_name == FULL_RUN_JOB
    _export(landing, "2026-11-19")
    _export(landing, "2026-11-20")
    _export(landing, "2026-11-21", entities=REQUIRED[:2])  # still landing: not complete
    _export(landing, "2026-11-22")  # dated after the tick: not yet
    with dg.instance_for_test() as instance:
        tick = datetime(2026, 11, 21, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
        result = _evaluate_schedule(defs, instance, tick)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-20"]
    assert result.run_requests[0].tags[TRIGGER_TAG] == SCHEDULE_NAME


def test_schedule_skips_when_nothing_is_complete(landing, default_defs):
    defs = default_defs
    _export(landing, "2026-11-20", entities=REQUIRED[1:])  # no crm/accounts
    with dg.instance_for_test() as instance:
        result = _evaluate_schedule(
            defs, instance, datetime(2026, 11, 21, 2, tzinfo=ZoneInfo("UTC"))
        )
    assert not result.run_requests
    assert "no complete export folder" in result.skip_message


def test_schedule_skips_a_date_already_published_unless_its_files_changed(landing, default_defs):
    defs = default_defs
    folder = _export(landing, "2026-11-20")
    old = time.time() - 3600
    for path in folder.rglob("*"):
        os.utime(path, (old, old))
    tick = datetime(2026, 11, 21, 2, tzinfo=ZoneInfo("UTC"))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=PUBLISHED_MARTS, partition="2026-11-20")
        )
        skipped = _evaluate_schedule(defs, instance, tick)
        assert not skipped.run_requests and "already published" in skipped.skip_message
        # A corrected file lands after the publish: score the date again.
        (folder / "crm" / "accounts.csv").write_text("id\nfixed\n", encoding="utf-8")
        again = _evaluate_schedule(defs, instance, tick)
    assert [r.partition_key for r in again.run_requests] == ["2026-11-20"]


def _published(instance, landing: Path, day: str) -> None:
    """``day`` published after its files landed."""
    old = time.time() - 3600
    for path in (landing / day).rglob("*"):
        os.utime(path, (old, old))
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=PUBLISHED_MARTS, partition=day)
    )


def _run_in_progress(instance, tags: dict[str, str]) -> None:
    instance.add_run(
        dg.DagsterRun(job_name=FULL_RUN_JOB, status=dg.DagsterRunStatus.STARTED, tags=tags)
    )


def _five_nightly_exports(landing: Path) -> datetime:
    """Complete exports of 2026-11-17 to 21; returns the schedule's tick of the 21st."""
    for day in ("2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21"):
        _export(landing, day)
    return datetime(2026, 11, 21, 2, tzinfo=ZoneInfo("UTC"))


def test_after_downtime_the_schedule_scores_every_missed_date_once(landing, module_dir):
    """The machine was down for the nights of the 19th and 20th: the tick of the 21st scores
    all three dates after the newest published one, oldest first, and a date another run is
    already scoring (the sensor's, a catch-up tick's, a backfill's) is not requested twice."""
    defs = _defs(landing, module_dir)
    tick = _five_nightly_exports(landing)
    with dg.instance_for_test() as instance:
        _published(instance, landing, "2026-11-18")
        missed = _evaluate_schedule(defs, instance, tick)
        assert [r.partition_key for r in missed.run_requests] == [
            "2026-11-19",
            "2026-11-20",
            "2026-11-21",
        ]
        _run_in_progress(instance, {"dagster/partition": "2026-11-20"})
        rest = _evaluate_schedule(defs, instance, tick)
        assert [r.partition_key for r in rest.run_requests] == ["2026-11-19", "2026-11-21"]
        _run_in_progress(
            instance,
            {
                "dagster/asset_partition_range_start": "2026-11-19",
                "dagster/asset_partition_range_end": "2026-11-21",
            },
        )
        covered = _evaluate_schedule(defs, instance, tick)
    assert not covered.run_requests
    assert "already queued or running: 2026-11-19, 2026-11-20, 2026-11-21" in (covered.skip_message)


def test_a_long_outage_catches_up_the_newest_dates_and_names_the_backfill(landing, module_dir):
    settings = replace(settings_for(landing, module_dir / "warehouse.duckdb"), max_catchup_dates=2)
    defs = build_definitions(settings)
    tick = _five_nightly_exports(landing)
    with dg.instance_for_test() as instance:
        _published(instance, landing, "2026-11-17")
        result = _evaluate_schedule(defs, instance, tick)
        plan = plan_nightly_dates(instance, settings, tick.date())
    assert [r.partition_key for r in result.run_requests] == ["2026-11-20", "2026-11-21"]
    assert plan.to_score == [date(2026, 11, 20), date(2026, 11, 21)]
    # The tick's log says what is left, and how to score it.
    assert any("icp backfill --from 2026-11-18 --to 2026-11-19" in n for n in plan.notes)


def test_sensor_does_not_start_a_date_the_schedule_is_already_scoring(landing, default_defs):
    _export(landing, "2026-11-19")
    _export(landing, "2026-11-20")
    with dg.instance_for_test() as instance:
        _run_in_progress(instance, {"dagster/partition": "2026-11-20"})
        result = _evaluate_sensor(default_defs, instance, cursor="2026-11-18")
    assert [r.partition_key for r in result.run_requests] == ["2026-11-19"]
    assert result.cursor == "2026-11-20"


def test_sensor_starts_with_the_newest_then_each_new_complete_folder(landing, default_defs):
    defs = default_defs
    _export(landing, "2026-11-18")
    _export(landing, "2026-11-19")
    with dg.instance_for_test() as instance:
        first = _evaluate_sensor(defs, instance)
        assert [r.partition_key for r in first.run_requests] == ["2026-11-19"]
        assert first.cursor == "2026-11-19"
        assert first.run_requests[0].run_key == "export-2026-11-19"

        nothing = _evaluate_sensor(defs, instance, cursor=first.cursor)
        assert not nothing.run_requests and "no export folder completed" in nothing.skip_message

        _export(landing, "2026-11-20", entities=REQUIRED[:3])  # half landed
        half = _evaluate_sensor(defs, instance, cursor=first.cursor)
        assert not half.run_requests

        _export(landing, "2026-11-20")  # the rest arrives
        _export(landing, "2026-11-21")
        both = _evaluate_sensor(defs, instance, cursor=first.cursor)
    assert [r.partition_key for r in both.run_requests] == ["2026-11-20", "2026-11-21"]
    assert both.cursor == "2026-11-21"


def test_sensor_in_marker_mode_waits_for_success(landing, module_dir):
    defs = _defs(landing, module_dir, export_completion="marker")
    _export(landing, "2026-11-20")  # every file but no marker
    with dg.instance_for_test() as instance:
        assert not _evaluate_sensor(defs, instance).run_requests
        (landing / "2026-11-20" / SUCCESS_MARKER).write_text("", encoding="utf-8")
        result = _evaluate_sensor(defs, instance)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-20"]


def test_every_asset_is_partitioned_by_date_with_one_run_backfills_and_retries(landing, tmp_path):
    defs = _defs(landing, tmp_path)
    job = defs.resolve_job_def(FULL_RUN_JOB)
    assert job.partitions_def == AS_OF_PARTITIONS
    assert WAREHOUSE_TAG.items() <= job.tags.items()
    graph = defs.resolve_asset_graph()
    keys = list(graph.materializable_asset_keys)
    assert len(keys) > 20
    for key in keys:
        node = graph.get(key)
        assert node.partitions_def == AS_OF_PARTITIONS, key
        assert node.backfill_policy == SINGLE_RUN, key
    for assets_def in defs.assets:
        assert assets_def.op.retry_policy == TRANSIENT_RETRY, assets_def.op.name


def test_the_instance_queues_one_run_at_a_time(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_CONFIG.read_text(encoding="utf-8"))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        queue = instance.get_concurrency_config().run_queue_config
    finally:
        instance.dispose()
    assert queue.max_concurrent_runs == 1
    assert {"key": "icp/warehouse", "limit": 1} in queue.tag_concurrency_limits


def _hold_lock(warehouse: str, seconds: float, ready) -> None:
    lock = WarehouseLock(Path(warehouse))
    lock.acquire("holder-run", timeout_seconds=5)
    ready.set()
    time.sleep(seconds)
    lock.release()


def test_a_second_writer_waits_for_the_lock_and_gives_up_naming_the_holder(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_lock, args=(str(warehouse), 3.0, ready))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(dg.Failure, match="in use by another run .*holder-run"):
            WarehouseLock(warehouse).acquire("second-run", timeout_seconds=1)
        started = time.monotonic()
        waiting = WarehouseLock(warehouse)
        waiting.acquire("third-run", timeout_seconds=30)  # waits for the holder to finish
        assert time.monotonic() - started > 0.5
        waiting.release()
    finally:
        holder.join(10)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_lock, args=(str(warehouse), 60.0, ready))
    holder.start()
    assert ready.wait(30)
    holder.kill()
    holder.join(10)
    lock = WarehouseLock(warehouse)
    lock.acquire("after-crash", timeout_seconds=2)
    lock.release()


def test_stale_dbt_target_folders_are_pruned_and_recent_ones_kept(tmp_path):
    """Failed dbt invocations keep their folder for a week; other files are never touched."""
    import os
    import time

    from dagster_project.defs.transform.dbt import FAILED_TARGET_RETENTION, prune_stale_targets

    now = time.time()
    old = now - FAILED_TARGET_RETENTION.total_seconds() - 60
    for name, mtime in {
        "dbt_models-0123abc-4567def": old,  # a failed build, a week old
        "89abcde": old,  # a context-free invocation (dbt_unit_tests without context)
        "dbt_models-0123abc-fedcba9": now,  # recent: maybe another run's, in use
        "compiled": old,  # dbt's own folder
    }.items():
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / "manifest.json").write_text("{}")
    os.utime(tmp_path / "manifest.json", (old, old))

    assert prune_stale_targets(tmp_path, now=now) == ["89abcde", "dbt_models-0123abc-4567def"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "compiled",
        "dbt_models-0123abc-fedcba9",
        "manifest.json",
    ]


def test_any_date_since_2000_is_a_partition_and_others_are_refused_with_what_to_do(tmp_path):
    """Public CRM exports date from 2016-2017: no setting needed. A date outside the
    partitions is a message naming ICP_PARTITIONS_START, not a Dagster traceback."""
    from dagster_project.defs.partitions import check_as_of_dates
    from dagster_project.run import run_pipeline

    assert AS_OF_PARTITIONS.has_partition_key("2016-10-20")
    check_as_of_dates(date(2000, 1, 1), date(2017, 12, 31))
    with pytest.raises(ValueError, match="set ICP_PARTITIONS_START=1999-12-31"):
        check_as_of_dates(date(1999, 12, 31))
    with pytest.raises(ValueError, match="in the future"):
        check_as_of_dates(date(2999, 1, 1))
    settings = replace(settings_for(tmp_path, tmp_path / "w.duckdb"), as_of_date=date(1999, 6, 30))
    with pytest.raises(ValueError, match="before the first partition"):
        run_pipeline(settings)


def test_a_failed_checks_reason_lists_its_failing_values():
    from dagster_project.run import failed_check_reason

    def evaluation(**metadata):
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(["raw", "support__tickets"]),
            check_name="raw_rows_satisfy_contract",
            passed=False,
            metadata={key: dg.MetadataValue.json(value) if isinstance(value, list)
                      else dg.MetadataValue.int(value) for key, value in metadata.items()},
        )  # fmt: skip

    failures = [f"csat: less_than_or_equal_to(5.0) (value {v})" for v in (9, 7, 8, 6)]
    assert failed_check_reason(evaluation(failures=failures, failure_count=4)) == (
        "csat: less_than_or_equal_to(5.0) (value 9); csat: less_than_or_equal_to(5.0) "
        "(value 7); csat: less_than_or_equal_to(5.0) (value 8) (and 1 more)"
    )
    assert failed_check_reason(evaluation(failing_rows=12)) == "failing rows: 12"


def test_dbt_is_found_beside_the_interpreter_when_path_lacks_it(tmp_path, monkeypatch):
    """`.venv/bin/icp` started by its path (cron, systemd) has no venv bin on PATH."""
    import sys

    from dagster_project.defs.project import dbt_executable
    from dagster_project.defs.resources import build_resources

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    beside = Path(sys.executable).parent / "dbt"
    assert beside.is_file()
    assert dbt_executable() == str(beside)
    dbt = build_resources(settings_for(tmp_path, tmp_path / "w.duckdb"))["dbt"]
    assert dbt.dbt_executable == str(beside)
