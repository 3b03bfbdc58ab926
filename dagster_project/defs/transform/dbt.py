"""The dbt project as Dagster assets: each model an asset, each dbt test an asset check."""

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from dagster_project.defs.partitions import (
    AS_OF_PARTITIONS,
    SINGLE_RUN,
    TRANSIENT_RETRY,
    retry_only_if_transient,
    run_dates,
)
from dagster_project.defs.postgres_target import mirror_changes_from_server
from dagster_project.defs.preload import preload_later_steps
from dagster_project.defs.project import DBT_PROJECT, DBT_PROJECT_DIR, dbt_executable
from dagster_project.defs.resources import (
    IcpDbtCliResource,
    LandingZoneResource,
    ScoringConfigResource,
    WarehouseResource,
)
from dagster_project.ingest.landing import export_dates
from dagster_project.scoring.config import ScoringConfig

__all__ = [
    "CHANGES_MODEL",
    "DBT_PROJECT",
    "dbt_models",
    "dbt_score_changes",
    "dbt_unit_tests",
    "discard_target",
    "ensure_manifest",
    "prune_stale_targets",
    "stream_noting_unit_tests",
    "unit_test_check_results",
    "unit_test_results",
]

DBT_TARGET_ROOT = DBT_PROJECT_DIR / "target"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
#: dagster-dbt gives each invocation its own folder under target/: ``<op>-<run id>-<uuid>``
#: (with a context) or ``<uuid>``, each part 7 hex digits.
_INVOCATION_TARGET = re.compile(r"(?:\w+-[0-9a-f]{7}-)?[0-9a-f]{7}")
#: A failed invocation's folder (its dbt.log, compiled SQL) is kept this long for debugging.
FAILED_TARGET_RETENTION = timedelta(days=7)


def discard_target(invocation: DbtCliInvocation) -> None:
    """Keep a successful invocation's partial parse, then remove its own target folder.

    dagster-dbt starts each invocation from a copy of ``target/partial_parse.msgpack``; the
    one the invocation saved describes this warehouse's profile, so the next invocation
    parses nothing again (dbt checks the file against the project, profile, vars and
    environment itself and parses afresh when anything differs). Each folder holds a
    manifest, compiled SQL and logs (about 4 MB): a nightly schedule would otherwise fill the
    disk. A failed invocation's folder is left for debugging.
    """
    target = invocation.target_path.resolve()
    if invocation.is_successful() and target.parent == DBT_TARGET_ROOT.resolve():
        _keep_partial_parse(target / PARTIAL_PARSE_FILE)
        shutil.rmtree(target, ignore_errors=True)


def _keep_partial_parse(saved: Path) -> None:
    if not saved.is_file():
        return
    # Another process may be reading the shared file: write aside, then rename over it.
    aside = DBT_TARGET_ROOT / f".{PARTIAL_PARSE_FILE}.{uuid.uuid4().hex}"
    try:
        shutil.copyfile(saved, aside)
        os.replace(aside, DBT_TARGET_ROOT / PARTIAL_PARSE_FILE)
    except OSError:
        aside.unlink(missing_ok=True)


def prune_stale_targets(root: Path = DBT_TARGET_ROOT, now: float | None = None) -> list[str]:
    """Remove invocation folders under ``root`` older than FAILED_TARGET_RETENTION; return
    their names. Only stale ones: another run (another warehouse) may be using a recent one.
    """
    cutoff = (now or time.time()) - FAILED_TARGET_RETENTION.total_seconds()
    removed = []
    for folder in root.iterdir() if root.is_dir() else ():
        if (
            folder.is_dir()
            and not folder.is_symlink()
            and _INVOCATION_TARGET.fullmatch(folder.name)
            and folder.stat().st_mtime < cutoff
        ):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return sorted(removed)


def _newest_source_mtime(project_dir: Path) -> float:
    watched = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests", "seeds", "snapshots"):
        watched.extend(p for p in (project_dir / folder).rglob("*") if p.is_file())
    return max((p.stat().st_mtime for p in watched if p.exists()), default=0.0)


def ensure_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """Parse the dbt project when its manifest is missing or older than its files.

    ``dagster dev`` re-parses on its own (``prepare_if_dev``); a clean clone, CI and the
    ``icp`` CLI have no manifest yet, and a stale one would run yesterday's models.
    """
    project.prepare_if_dev()
    manifest = project.manifest_path
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(
        project.project_dir
    ):
        # dbt parse with the dbt beside this interpreter (dagster-dbt's preparer uses PATH's).
        DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()
    return manifest


class IcpDbtTranslator(DagsterDbtTranslator):
    """Asset keys ``[schema, name]`` (so sources meet the ingest assets ``raw/<table>``), groups by
    model folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta = dbt_resource_props.get("meta") or dbt_resource_props.get("config", {}).get("meta")
        if (meta or {}).get("dagster", {}).get("asset_key"):
            # A source written by a Python asset names that asset's key (the score history).
            return dg.AssetKey(meta["dagster"]["asset_key"])
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or dbt_resource_props["schema"]
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return f"dbt_{fqn[1]}" if len(fqn) > 2 else "dbt"


#: Reads the score history the scoring step writes, so it is built by its own selection, after
#: scoring (dbt_score_changes), and never by dbt_models, which runs before scoring.
CHANGES_MODEL = "account_fit_score_changes"

# The backtest needs only the facts of its date; their tests run on the dates scored.
_BACKTEST_FACTS = [
    "--select",
    "+fct_account_metrics",
    "--exclude-resource-type",
    "test",
    "unit_test",
]


@dbt_assets(
    manifest=ensure_manifest(),
    project=DBT_PROJECT,
    exclude=CHANGES_MODEL,
    dagster_dbt_translator=IcpDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: IcpDbtCliResource,
    warehouse: WarehouseResource,
    landing: LandingZoneResource,
    scoring_config: ScoringConfigResource,
):
    """``dbt build`` of the selected models for each as-of date of the run, on the warehouse.

    The as-of date is the partition key, passed as the dbt var ``as_of_date``; a backfill range
    builds its dates oldest first (the incremental marts keep one set of rows per date). The
    newest date's build is streamed to Dagster (its models as materializations, its tests as
    asset checks); earlier dates of a range are built and tested the same way, and any failure
    among them fails the step with dbt's message.

    When the learned ICP is used, the facts of each backtest date (``validation.backtest_days``
    earlier) are built first, point in time, so the scoring can fit on what was known then.
    """
    # dbt runs in its own process: meanwhile this one imports what scoring and publish need.
    preload_later_steps()
    config = scoring_config.load()
    dates = run_dates(context)
    if pruned := prune_stale_targets():
        context.log.info(f"removed {len(pruned)} dbt target folders of failed builds")
    with retry_only_if_transient("dbt build"):
        yield from _build_dates(context, dbt, warehouse, landing, config, dates)


def _build_dates(context, dbt, warehouse, landing, config, dates: list[date]):
    run_vars = pipeline_dbt_vars(config)
    for position, as_of in enumerate(dates):
        backtest_date = as_of - timedelta(days=config.validation.backtest_days)
        if config.model != "rules" and export_dates(landing.root_path, backtest_date):
            context.log.info(f"building the facts as of {backtest_date} for the backtest")
            _build(dbt, _BACKTEST_FACTS, backtest_date, warehouse, run_vars)
        if position < len(dates) - 1:
            context.log.info(f"building the models as of {as_of} ({position + 1}/{len(dates)})")
            _build(dbt, ["--exclude", CHANGES_MODEL], as_of, warehouse, run_vars)
    invocation = dbt.cli_as_of(["build"], dates[-1], warehouse.path, run_vars, context=context)
    unit_test_events: list[dict[str, Any]] = []
    yield from stream_noting_unit_tests(invocation, unit_test_events)
    _BUILT_UNIT_TESTS[context.run_id] = unit_test_results(unit_test_events)
    discard_target(invocation)


def pipeline_dbt_vars(config: ScoringConfig) -> dict[str, Any]:
    """The ``--vars`` of every dbt invocation of the pipeline: the same for every step, date and
    run while the scoring config stays as it is, so that dbt's partial parse stays valid (dbt
    parses the whole project again when the vars differ from the last invocation's)."""
    return config.changes.dbt_vars()


def _build(
    dbt: IcpDbtCliResource,
    args: list[str],
    as_of: date,
    warehouse: WarehouseResource,
    run_vars: Mapping[str, Any],
):
    """``dbt build`` as of ``as_of`` without reporting to Dagster; raises on any failure."""
    invocation = dbt.cli_as_of(
        ["build", *args], as_of, warehouse.path, run_vars, manifest=DBT_PROJECT.manifest_path
    ).wait()
    discard_target(invocation)


@dbt_assets(
    manifest=ensure_manifest(),
    project=DBT_PROJECT,
    select=CHANGES_MODEL,
    name="dbt_score_changes",
    dagster_dbt_translator=IcpDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
)
def dbt_score_changes(
    context: dg.AssetExecutionContext,
    dbt: IcpDbtCliResource,
    warehouse: WarehouseResource,
    scoring_config: ScoringConfigResource,
):
    """``dbt build`` of ``marts.account_fit_score_changes`` for each as-of date of the run, oldest
    first, after the scoring wrote the history it compares: each date with the newest scored
    date before it. The newest date's build is streamed to Dagster, like ``dbt_models``; the
    threshold and factor count come from the scoring config's ``changes`` section.
    """
    run_vars = pipeline_dbt_vars(scoring_config.load())
    dates = run_dates(context)
    with retry_only_if_transient("dbt build of the score changes"):
        for as_of in dates[:-1]:
            context.log.info(f"building the score changes as of {as_of}")
            _build(dbt, ["--select", CHANGES_MODEL], as_of, warehouse, run_vars)
        invocation = dbt.cli_as_of(["build"], dates[-1], warehouse.path, run_vars, context=context)
        unit_test_events: list[dict[str, Any]] = []
        yield from stream_noting_unit_tests(invocation, unit_test_events)
    # dbt_models stored this run's other unit tests; the check reports both builds.
    _BUILT_UNIT_TESTS.setdefault(context.run_id, {}).update(unit_test_results(unit_test_events))
    discard_target(invocation)
    if warehouse.on_postgres:
        # The published copy of the working file holds them too.
        with warehouse.connect() as con:
            copied = mirror_changes_from_server(warehouse, con, dates)
        context.log.info(f"read the score changes from PostgreSQL: {copied}")


def _unit_test_specs() -> dict[dg.AssetCheckKey, tuple[dg.AssetCheckSpec, str]]:
    """One check per dbt unit test, on the asset of the model it tests, with its dbt id.

    dagster-dbt turns data tests into asset checks but skips unit tests; they gate
    ``dbt build`` already, and these checks make each one visible on its model in Dagster.
    """
    manifest = json.loads(DBT_PROJECT.manifest_path.read_text())
    translator = IcpDbtTranslator()
    specs = {}
    for unit_test in sorted(manifest.get("unit_tests", {}).values(), key=lambda t: t["name"]):
        model = manifest["nodes"][unit_test["depends_on"]["nodes"][0]]
        spec = dg.AssetCheckSpec(
            name=unit_test["name"],
            asset=translator.get_asset_key(model),
            description=unit_test.get("description") or f"dbt unit test of {model['name']}",
        )
        specs[spec.key] = (spec, unit_test["unique_id"])
    return specs


_UNIT_TESTS = _unit_test_specs()


#: The unit-test results of each run's streamed ``dbt build`` (which runs a model's unit tests
#: before the model), by run id. The job runs its steps in one process (one writer per
#: warehouse), so the dbt_unit_tests check of the same run reports these instead of invoking
#: dbt again; without them (the check run alone, a build that selected other models) it runs
#: the unit tests itself.
_BUILT_UNIT_TESTS: dict[str, dict[str, dict[str, Any]]] = {}


def _unit_test_id(raw_event: Mapping[str, Any]) -> str | None:
    unique_id = raw_event["data"].get("node_info", {}).get("unique_id") or ""
    return unique_id if unique_id.startswith("unit_test.") else None


def stream_noting_unit_tests(
    invocation: DbtCliInvocation, unit_test_events: list[dict[str, Any]]
) -> Iterator[Any]:
    """``invocation.stream()``: the Dagster events of each dbt event; dbt's own events about
    unit tests (which dagster-dbt turns into nothing) are appended to ``unit_test_events`` as
    they pass. The pipeline's dbt writes no run_results.json (``IcpDbtCliResource.cli_as_of``)."""
    for event in invocation.stream_raw_events():
        if _unit_test_id(event.raw_event):
            unit_test_events.append(event.raw_event)
        yield from event.to_default_asset_events(
            manifest=invocation.manifest,
            dagster_dbt_translator=invocation.dagster_dbt_translator,
            context=invocation.context,
            target_path=invocation.target_path,
            project=invocation.project,
        )


def unit_test_results(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each unit test's result among dbt's structured events, by unique id: ``status`` from
    its ``LogTestResult`` event (``pass``, ``fail``, ``error``), ``message`` the text of the
    error-level events about it (what differed, or why it could not run)."""
    results: dict[str, dict[str, Any]] = {}
    for event in events:
        unique_id = _unit_test_id(event)
        if unique_id is None:
            continue
        result = results.setdefault(unique_id, {"status": "error", "message": ""})
        if event["info"]["name"] == "LogTestResult":
            result["status"] = event["data"]["status"]
        elif event["info"].get("level") == "error":
            result["message"] = "\n".join(filter(None, [result["message"], event["info"]["msg"]]))
    return results


#: Why a unit test enabled on DuckDB only (its fixtures are DuckDB list and struct literals)
#: did not run on the PostgreSQL target: a warning, not a pass.
NOT_RUN_ON_POSTGRES = "not run on PostgreSQL: this unit test is enabled on DuckDB only"


def unit_test_check_results(
    check_keys: Iterable[dg.AssetCheckKey],
    results: Mapping[str, Mapping[str, Any]],
    run_by: str,
    not_run_reason: str | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """One check result per key from dbt's results: passed only when dbt says ``pass``; a unit
    test missing from ``results`` fails as "not run", or, given ``not_run_reason`` (the target
    does not enable it), is a warning saying so."""
    for key in check_keys:
        result = results.get(_UNIT_TESTS[key][1])
        if result is None and not_run_reason:
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"status": "not run", "warnings": [f"{key.name}: {not_run_reason}"]},
            )
            continue
        yield dg.AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=bool(result and result["status"] == "pass"),
            metadata={
                "status": result["status"] if result else "not run",
                "message": (result or {}).get("message") or "",
                "run by": run_by,
            },
        )


@dg.multi_asset_check(
    specs=[spec for spec, _ in _UNIT_TESTS.values()], can_subset=True, name="dbt_unit_tests"
)
def dbt_unit_tests(
    context: dg.AssetCheckExecutionContext,
    dbt: IcpDbtCliResource,
    warehouse: WarehouseResource,
    scoring_config: ScoringConfigResource,
):
    """Report each dbt unit test as the check of its model: from this run's ``dbt build`` when
    it ran them all, else by running them once with ``dbt test``."""
    selected = sorted(context.selected_asset_check_keys, key=lambda key: key.name)
    built = _BUILT_UNIT_TESTS.pop(context.run.run_id, {})
    not_run_reason = NOT_RUN_ON_POSTGRES if warehouse.on_postgres else None
    # On PostgreSQL this run's builds ran every unit test the target enables.
    if all(_UNIT_TESTS[key][1] in built for key in selected) or (built and not_run_reason):
        yield from unit_test_check_results(
            selected, built, run_by="dbt build of this run", not_run_reason=not_run_reason
        )
        return
    # Unit tests set their own as_of_date; the run's newest date only satisfies the parser.
    invocation = dbt.cli_as_of(
        ["test", "--select", "test_type:unit"],
        run_dates(context)[-1],
        warehouse.path,
        pipeline_dbt_vars(scoring_config.load()),
        manifest=DBT_PROJECT.manifest_path,
        raise_on_error=False,
    )
    results = unit_test_results(event.raw_event for event in invocation.stream_raw_events())
    discard_target(invocation)
    yield from unit_test_check_results(
        selected, results, run_by="dbt test", not_run_reason=not_run_reason
    )
