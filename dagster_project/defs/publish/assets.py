"""The published copy of the marts (DuckDB file + Parquet) and the blocking checks on it.

The work is in :mod:`dagster_project.publish`: it builds the new version aside, checks it and
swaps it in atomically, so a check that fails there publishes nothing. The asset checks below
verify, after the swap, what readers now see.
"""

from collections.abc import Iterator
from contextlib import contextmanager
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
from dagster_project.defs.resources import WarehouseResource
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
from dagster_project.publish.snapshot import (
    missing_tables,
    parquet_problems,
    pii_problems,
    score_problems,
)
from dagster_project.sql import string_literal

__all__ = ["PUBLISHED_MARTS", "published_marts", "published_marts_checks"]

PUBLISHED_MARTS = dg.AssetKey(["published", "marts"])
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
    description=(
        "The marts for readers: <warehouse dir>/published/icp_marts.duckdb (open read-only) and "
        "published/parquet/current/<table>/as_of_date=YYYY-MM-DD/*.parquet, each replaced "
        "atomically after its checks passed ($ICP_PUBLISHED_DIR moves the folder). See "
        "docs/consumers.md."
    ),
)
def published_marts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    from dagster_project.operations.retention import RetentionSettings

    published_dir = published_dir_for(warehouse.path)
    keep_versions = RetentionSettings.from_env().keep_published_versions
    with retry_only_if_transient("publish"), warehouse.connect() as con:
        try:
            result = publish_marts(con, published_dir, keep_versions=keep_versions)
        except PublishError as error:
            raise data_error(str(error)) from error
    context.log.info(
        f"published {result.version} (as of {result.as_of_date}) to {published_dir} "
        f"in {result.seconds:.2f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "version": result.version,
            "as_of_date": result.as_of_date.isoformat(),
            "score_version": result.score_version,
            "duckdb_file": dg.MetadataValue.path(str(result.db_path)),
            "parquet_current": dg.MetadataValue.path(str(result.parquet_dir)),
            "publish_seconds": result.seconds,
            "removed": result.removed,
            **{f"rows_{table}": rows for table, rows in result.row_counts.items()},
        }
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
