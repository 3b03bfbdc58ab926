"""Dagster wiring: thin assets, checks, resources and jobs around the pure-Python packages."""

from __future__ import annotations

import dagster as dg

from dagster_project.settings import Settings

__all__ = ["build_definitions"]


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check, job and resource of the pipeline for ``settings``."""
    from dagster_project.defs.alerting import build_alert_sensors
    from dagster_project.defs.automation import build_automation
    from dagster_project.defs.housekeeping import build_housekeeping_sensor
    from dagster_project.defs.ingest.assets import build_ingest_assets, landing_is_fresh
    from dagster_project.defs.jobs import full_run_job
    from dagster_project.defs.publish.assets import published_marts, published_marts_checks
    from dagster_project.defs.publish.crm import crm_changes
    from dagster_project.defs.publish.report import published_report
    from dagster_project.defs.resources import build_resources
    from dagster_project.defs.scoring.assets import account_fit_scores, fit_score_checks
    from dagster_project.defs.transform.dbt import dbt_models, dbt_score_changes, dbt_unit_tests

    nightly_schedule, new_export_sensor = build_automation(settings)
    return dg.Definitions(
        assets=[
            *build_ingest_assets(),
            dbt_models,
            account_fit_scores,
            dbt_score_changes,
            published_marts,
            published_report,
            crm_changes,
        ],
        asset_checks=[
            *fit_score_checks,
            dbt_unit_tests,
            *published_marts_checks,
            landing_is_fresh,
        ],
        jobs=[full_run_job],
        schedules=[nightly_schedule],
        sensors=[new_export_sensor, *build_alert_sensors(), build_housekeeping_sensor(settings)],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )
