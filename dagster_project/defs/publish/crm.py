"""The CRM import files of the score changes, written after each publish (docs/consumers.md)."""

import dagster as dg

from dagster_project.defs.partitions import AS_OF_PARTITIONS, SINGLE_RUN, TRANSIENT_RETRY
from dagster_project.defs.publish.assets import PUBLISHED_MARTS
from dagster_project.defs.resources import LandingZoneResource, WarehouseResource
from dagster_project.publish import DB_FILE, published_dir_for
from dagster_project.publish.crm import CRM_DIR, crm_system, write_crm_exports

__all__ = ["CRM_CHANGES", "crm_changes"]

CRM_CHANGES = dg.AssetKey(["published", "crm_changes"])


@dg.asset(
    key=CRM_CHANGES,
    deps=[PUBLISHED_MARTS],
    group_name="publish",
    kinds={"duckdb", "csv", "salesforce", "hubspot"},
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=SINGLE_RUN,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "published/crm/salesforce_account_updates.csv and hubspot_company_updates.csv: the "
        "published current date's rows of marts.account_fit_score_changes in each CRM's import "
        "format, each file replaced atomically. See docs/consumers.md."
    ),
)
def crm_changes(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingZoneResource
) -> dg.MaterializeResult:
    """Write both files from the published copy, so they hold what readers of the published
    table see; a backfill of an older date rewrites the current date's files unchanged."""
    published_dir = published_dir_for(warehouse.path)
    result = write_crm_exports(
        published_dir / DB_FILE, published_dir / CRM_DIR, crm_system(landing.root_path)
    )
    context.log.info(
        f"{result.rows} changed accounts as of {result.as_of_date} written to "
        f"{published_dir / CRM_DIR}"
    )
    return dg.MaterializeResult(
        metadata={
            "as_of_date": result.as_of_date.isoformat(),
            "crm_system": result.crm_system or "none (ids are the landing's account_id)",
            "rows": result.rows,
            **{name: dg.MetadataValue.path(str(path)) for name, path in result.files.items()},
        }
    )
