"""The published copy of the marts (DuckDB file + Parquet) and the blocking checks on it.

The work is in :mod:`dagster_project.publish`: it builds the new version aside, checks it and
swaps it in atomically, so a check that fails there publishes nothing. The Great Expectations
suites (``schemas/expectations/``) run inside that publish, on the new Parquet version before
the swap, and are reported as the blocking check ``published_tables_meet_expectations`` of the
asset itself. The asset checks below verify, after the swap, what readers now see.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.defs.partitions import (
    AS_OF_PARTITIONS,
    SINGLE_RUN,
    TRANSIENT_RETRY,
    data_error,
    retry_only_if_transient,
)
from dagster_project.defs.postgres_target import publish_on_server
from dagster_project.defs.resources import ScoringConfigResource, WarehouseResource
from dagster_project.defs.scoring.assets import (
    ACCOUNT_METRICS,
    DIM_ACCOUNTS,
    FIT_SCORE_HISTORY,
    FIT_SCORES,
    ICP_PROFILE,
    ICP_VALIDATION,
)
from dagster_project.publish import (
    DB_FILE,
    PUBLISHED_TABLES,
    PublishError,
    current_parquet_version,
    publish_marts,
    published_dir_for,
)
from dagster_project.publish.quality import QUALITY_DOCS_DIR, QualityReport
from dagster_project.publish.snapshot import (
    missing_tables,
    parquet_problems,
    pii_problems,
    score_problems,
)
from dagster_project.sql import string_literal

__all__ = [
    "EXPECTATIONS_CHECK",
    "PUBLISHED_MARTS",
    "published_marts",
    "published_marts_checks",
]

PUBLISHED_MARTS = dg.AssetKey(["published", "marts"])
EXPECTATIONS_CHECK = "published_tables_meet_expectations"
SEGMENT_COHORTS = dg.AssetKey(["marts", "fct_segment_cohorts"])
SCORE_CHANGES = dg.AssetKey(["marts", "account_fit_score_changes"])
_PUBLISHED = "published"


@dg.asset(
    key=PUBLISHED_MARTS,
    deps=[
        FIT_SCORES,
        FIT_SCORE_HISTORY,
        ICP_PROFILE,
        ICP_VALIDATION,
        DIM_ACCOUNTS,
        ACCOUNT_METRICS,
        SEGMENT_COHORTS,
        SCORE_CHANGES,
    ],
    group_name="publish",
    kinds={"duckdb", "parquet"},
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            EXPECTATIONS_CHECK,
            asset=PUBLISHED_MARTS,
            blocking=True,
            description=(
                "Great Expectations suites of account_fit_scores, fct_account_metrics and "
                "icp_profile (schemas/expectations/) on the new Parquet version, before it is "
                "swapped in: a failed expectation publishes nothing and fails the run. Data "
                "Docs: <published>/report/quality/index.html."
            ),
        )
    ],
    description=(
        "The marts for readers: <warehouse dir>/published/icp_marts.duckdb (open read-only) and "
        "published/parquet/current/<table>/as_of_date=YYYY-MM-DD/*.parquet, each replaced "
        "atomically after its checks passed ($ICP_PUBLISHED_DIR moves the folder). See "
        "docs/consumers.md."
    ),
)
def published_marts(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    scoring_config: ScoringConfigResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    from dagster_project.operations.retention import RetentionSettings

    published_dir = published_dir_for(warehouse.path)
    keep_versions = RetentionSettings.from_env().keep_published_versions
    routes = scoring_config.load().routes
    reports: list[QualityReport] = []

    def meet_expectations(version_dir: Path, version: str, as_of_date: date) -> None:
        # Imported here: it imports Great Expectations only when it runs (seconds).
        from dagster_project.publish.quality import suite_parameters, validate_published_tables

        report = validate_published_tables(
            version_dir,
            version=version,
            parameters=suite_parameters(as_of_date, routes),
            docs_dir=published_dir / QUALITY_DOCS_DIR,
        )
        reports.append(report)
        context.log.info(
            f"Great Expectations: {report.to_metadata()['expectations_evaluated']} expectations "
            f"on {version} in {report.seconds:.2f} s ({report.timings})"
        )
        if not report.success:
            raise PublishError(
                "not published: failed expectations: " + "; ".join(report.failure_lines()[:10])
            )

    with retry_only_if_transient("publish"), warehouse.connect() as con:
        try:
            result = publish_marts(
                con, published_dir, keep_versions=keep_versions, validate=meet_expectations
            )
        except PublishError as error:
            if reports:
                yield _expectations_result(reports[-1])
            raise data_error(str(error)) from error
    context.log.info(
        f"published {result.version} (as of {result.as_of_date}) to {published_dir} "
        f"in {result.seconds:.2f} s"
    )
    if warehouse.on_postgres:
        # Checked above on the same rows (the working file's copy of the server's tables).
        with retry_only_if_transient("publish on PostgreSQL"):
            publish_on_server(
                warehouse,
                {
                    "version": result.version,
                    "as_of_date": result.as_of_date.isoformat(),
                    "score_version": result.score_version,
                    "row_counts": result.row_counts,
                },
            )
        context.log.info(f"published {result.version} to the PostgreSQL schema published")
    yield dg.MaterializeResult(
        metadata={
            "version": result.version,
            "as_of_date": result.as_of_date.isoformat(),
            "score_version": result.score_version,
            "duckdb_file": dg.MetadataValue.path(str(result.db_path)),
            "parquet_current": dg.MetadataValue.path(str(result.parquet_dir)),
            "publish_seconds": result.seconds,
            "removed": result.removed,
            **{f"rows_{table}": rows for table, rows in result.row_counts.items()},
        },
        check_results=[_expectations_result(reports[-1])],
    )


def _expectations_result(report: QualityReport) -> dg.AssetCheckResult:
    """The Great Expectations verdict as the check ``published_tables_meet_expectations``."""
    metadata = report.to_metadata()
    if report.docs_index is not None:
        metadata["data_docs"] = dg.MetadataValue.path(str(report.docs_index))
    else:
        metadata.pop("data_docs")
    failures = "; ".join(metadata["failures"])
    return dg.AssetCheckResult(
        asset_key=PUBLISHED_MARTS,
        check_name=EXPECTATIONS_CHECK,
        passed=report.success,
        description=None if report.success else f"failed expectations: {failures}"[:2000],
        metadata=metadata,
    )


@contextmanager
def _published(warehouse: WarehouseResource) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """The warehouse (read-only) with the published file attached read-only as ``published``."""
    published_dir = published_dir_for(warehouse.path)
    with warehouse.connect(read_only=True) as con:
        con.execute(f"ATTACH {string_literal(published_dir / DB_FILE)} AS {_PUBLISHED} (READ_ONLY)")
        try:
            yield con, published_dir
        finally:
            con.execute(f"DETACH {_PUBLISHED}")


def _result(problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": problems, **metadata})


@dg.asset_check(
    asset=PUBLISHED_MARTS,
    name="every_mart_published",
    blocking=True,
    description="The published DuckDB file and the current Parquet version hold every mart, "
    "with the same row counts.",
)
def every_mart_published(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with _published(warehouse) as (con, published_dir):
        problems = missing_tables(con, _PUBLISHED)
        version = current_parquet_version(published_dir)
        if version is None or not version.is_dir():
            problems.append("parquet/current does not point at a version folder")
        elif not problems:
            problems += parquet_problems(con, version, _PUBLISHED)
    return _result(problems, tables=list(PUBLISHED_TABLES), parquet_version=str(version))


@dg.asset_check(
    asset=PUBLISHED_MARTS,
    name="published_scores_are_the_current_version",
    blocking=True,
    description="Published account_fit_scores has exactly the rows of the warehouse's current "
    "table: one as_of_date, one score_version, one row per account.",
)
def published_scores_are_the_current_version(
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    with _published(warehouse) as (con, _):
        current = con.execute("SELECT current_database()").fetchone()[0]
        problems, facts = score_problems(con, _PUBLISHED, current)
    return _result(problems, **facts)


@dg.asset_check(
    asset=PUBLISHED_MARTS,
    name="no_contact_pii_published",
    blocking=True,
    description="No published table has a column that looks like contact PII (e-mail, phone, "
    "a person's name).",
)
def no_contact_pii_published(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with _published(warehouse) as (con, _):
        problems = pii_problems(con, _PUBLISHED)
    return _result(problems)


published_marts_checks = [
    every_mart_published,
    published_scores_are_the_current_version,
    no_contact_pii_published,
]
