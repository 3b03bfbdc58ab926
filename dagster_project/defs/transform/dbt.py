"""The dbt project as Dagster assets: each model an asset, each dbt test an asset check."""

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from dagster_project.defs.resources import (
    LandingZoneResource,
    ScoringConfigResource,
    WarehouseResource,
)
from dagster_project.ingest.landing import export_dates
from dagster_project.settings import PROJECT_ROOT

__all__ = ["DBT_PROJECT", "dbt_models", "ensure_manifest"]

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


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
        project.preparer.prepare(project)
    return manifest


class IcpDbtTranslator(DagsterDbtTranslator):
    """Asset keys ``[schema, name]`` (so sources meet the ingest assets ``raw/<table>``), groups by
    model folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or dbt_resource_props["schema"]
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return f"dbt_{fqn[1]}" if len(fqn) > 2 else "dbt"


@dbt_assets(
    manifest=ensure_manifest(),
    project=DBT_PROJECT,
    dagster_dbt_translator=IcpDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    landing: LandingZoneResource,
    scoring_config: ScoringConfigResource,
):
    """``dbt build`` of the selected models for the run's as-of date, on the warehouse file.

    When the learned ICP is used, the facts of the backtest date (``validation.backtest_days``
    earlier) are built first, point in time, so the scoring can fit on what was known then;
    ``fct_account_metrics`` keeps one set of rows per as-of date.
    """
    as_of = landing.resolved_as_of()
    config = scoring_config.load()
    backtest_date = as_of - timedelta(days=config.validation.backtest_days)
    if config.model != "rules" and export_dates(landing.root_path, backtest_date):
        context.log.info(f"building the facts as of {backtest_date} for the backtest")
        backtest_vars = {"as_of_date": backtest_date.isoformat(), "warehouse_path": warehouse.path}
        dbt.cli(
            ["run", "--select", "+fct_account_metrics", "--vars", json.dumps(backtest_vars)],
            manifest=DBT_PROJECT.manifest_path,
        ).wait()
    dbt_vars = {"as_of_date": as_of.isoformat(), "warehouse_path": warehouse.path}
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
