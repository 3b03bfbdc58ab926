"""The ICP report, written by every run next to the published copy: ``published/report``.

The work is in :mod:`dagster_project.report` (no Dagster there). This asset runs after
``published/marts`` and its blocking checks, so it reads what readers now see, and lists the
run's asset check evaluations: it reads them from ``context.instance`` with
``get_records_for_run(run_id, of_type=ASSET_CHECK_EVALUATION)``, i.e. every check evaluated so
far in this run (ingest, dbt tests, scoring, publish; the checks after this step are not in
it). A report that cannot be built fails this asset with the reason, not retried; I/O
trouble is retried like the other steps.
"""

from pathlib import Path

import dagster as dg

from dagster_project.defs.partitions import (
    AS_OF_PARTITIONS,
    SINGLE_RUN,
    TRANSIENT_RETRY,
    data_error,
    retry_only_if_transient,
)
from dagster_project.defs.publish.assets import PUBLISHED_MARTS
from dagster_project.defs.resources import WarehouseResource
from dagster_project.publish import DB_FILE, published_dir_for
from dagster_project.report import CheckOutcome, ReportError, build_report, report_dir_for

__all__ = ["PUBLISHED_REPORT", "published_report", "run_check_outcomes"]

PUBLISHED_REPORT = dg.AssetKey(["published", "report"])


def run_check_outcomes(instance: dg.DagsterInstance, run_id: str) -> list[CheckOutcome]:
    """Every asset check evaluation recorded for ``run_id`` so far, in the order evaluated."""
    from dagster_project.run import failed_check_reason

    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    outcomes = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        outcomes.append(
            CheckOutcome(
                asset=evaluation.asset_key.to_user_string(),
                name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                detail="" if evaluation.passed else failed_check_reason(evaluation),
            )
        )
    return outcomes


@dg.asset(
    key=PUBLISHED_REPORT,
    deps=[PUBLISHED_MARTS],
    group_name="publish",
    kinds={"html"},
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "The ICP report for people: <published>/report/index.html (static, opens offline), "
        "built from the published marts of the current date: the ICP in words and numbers, "
        "the evidence as charts, the retro against earlier runs and data quality. Replaced "
        "atomically; report/quality/ (Great Expectations' Data Docs) is left alone."
    ),
)
def published_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    published_dir = published_dir_for(warehouse.path)
    checks = run_check_outcomes(context.instance, context.run_id)
    # A bug fails at once naming the step; only I/O trouble is retried.
    with retry_only_if_transient("ICP report"):
        try:
            result = build_report(
                published_dir / DB_FILE,
                report_dir_for(published_dir),
                warehouse=Path(warehouse.path),
                checks=checks,
            )
        except ReportError as error:
            raise data_error(f"ICP report not written: {error}") from error
    context.log.info(
        f"wrote the ICP report as of {result.as_of_date} to {result.index_path} "
        f"in {result.seconds:.2f} s ({len(result.charts)} charts)"
    )
    return dg.MaterializeResult(
        metadata={
            "index_html": dg.MetadataValue.path(str(result.index_path)),
            "as_of_date": result.as_of_date.isoformat(),
            "evidence": result.evidence,
            "charts": result.charts,
            "checks_listed": len(checks),
            "bytes": result.bytes_written,
            "build_seconds": result.seconds,
        }
    )
