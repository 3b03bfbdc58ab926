"""One ingest asset per landing entity, built from the contracts in ``schemas/``.

A factory rather than a module per source: every entity is ingested the same way, and its
contract (columns, keys, parents) is the only thing that differs, so it is read, not copied.
"""

from datetime import UTC, datetime

import dagster as dg

from dagster_project.defs.partitions import (
    AS_OF_PARTITIONS,
    SINGLE_RUN,
    TRANSIENT_RETRY,
    data_error,
    retry_only_if_transient,
    run_dates,
)
from dagster_project.defs.resources import LandingZoneResource, WarehouseResource
from dagster_project.ingest.contracts import EntityContract, load_contracts
from dagster_project.ingest.landing import LandingError, freshness_findings
from dagster_project.ingest.loader import (
    QUARANTINE_TABLE,
    IngestResult,
    ingest_entity,
    parent_entities,
    quarantine_share_findings,
)
from dagster_project.ingest.raw_validation import raw_contract_failures
from dagster_project.postgres import copy_table_if_changed

__all__ = ["build_ingest_assets", "landing_is_fresh", "raw_asset_key"]

ROWS_RECONCILE_CHECK = "rows_read_equal_loaded_plus_quarantined"
CONTRACT_CHECK = "raw_rows_satisfy_contract"
QUARANTINE_SHARE_CHECK = "quarantine_share_within_limit"
INPUT_AS_EXPECTED_CHECK = "headers_and_keys_as_expected"


def raw_asset_key(contract: EntityContract) -> dg.AssetKey:
    """``raw/<table>``: the same key dagster-dbt gives the dbt source of that table."""
    return dg.AssetKey(["raw", contract.raw_table])


def _parents(contract: EntityContract, contracts: dict[str, EntityContract]) -> list[dg.AssetKey]:
    """Raw tables the entity's row checks read: foreign-key parents and fx rates."""
    parents = [raw_asset_key(contracts[parent]) for parent in parent_entities(contract)]
    return sorted(parents, key=lambda key: key.to_user_string())


def _build_ingest_asset(
    contract: EntityContract, contracts: dict[str, EntityContract]
) -> dg.AssetsDefinition:
    key = raw_asset_key(contract)

    @dg.asset(
        key=key,
        deps=_parents(contract, contracts),
        group_name="ingest",
        kinds={"duckdb"},
        description=(
            f"Rows of {contract.name} from every export dated <= the as-of date (the newest "
            f"date of a backfill range: the dbt models filter by each date), typed per "
            f"schemas/{contract.name}.yaml; rows that break a rule go to {QUARANTINE_TABLE}. "
            "Only exports new or changed since the last load are read."
        ),
        partitions_def=AS_OF_PARTITIONS,
        backfill_policy=SINGLE_RUN,
        retry_policy=TRANSIENT_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                ROWS_RECONCILE_CHECK,
                asset=key,
                blocking=True,
                description="Per file: rows read = rows loaded + rows quarantined.",
            ),
            dg.AssetCheckSpec(
                QUARANTINE_SHARE_CHECK,
                asset=key,
                description=(
                    "Warns when a file or rule quarantines more than ICP_MAX_QUARANTINE_SHARE "
                    "(default 5%) of a file's rows, naming the rule, column and example values."
                ),
            ),
            dg.AssetCheckSpec(
                INPUT_AS_EXPECTED_CHECK,
                asset=key,
                description=(
                    "Warns when a header name is probably a contract column it does not match "
                    "(a synonym or a typo), when an optional column of the previous export is "
                    "missing, or when keys differ only by case."
                ),
            ),
            dg.AssetCheckSpec(
                CONTRACT_CHECK,
                asset=key,
                blocking=True,
                description="pandera (in DuckDB via ibis) validates the loaded table.",
            ),
        ],
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        landing: LandingZoneResource,
    ):
        as_of = run_dates(context)[-1]
        with retry_only_if_transient(f"ingest of {contract.name}"), warehouse.connect() as con:
            try:
                result = ingest_entity(con, contract, landing.root_path, as_of, landing.valid_dates)
            except LandingError as error:
                raise data_error(f"ingest of {contract.name} failed: {error}") from error
            contract_failures = raw_contract_failures(con, contract)
            share_findings = quarantine_share_findings(con, result, landing.max_quarantine_share)
            if warehouse.on_postgres and not contract_failures:
                # The raw table dbt's source reads, on the server, when its rows differ from
                # those copied last (the quarantine stays in the working file, where the
                # report reads it).
                with warehouse.postgres() as server:
                    if copy_table_if_changed(con, server, "raw", contract.raw_table):
                        context.log.info(f"copied raw.{contract.raw_table} to PostgreSQL")
        plan = result.plan
        context.log.info(
            f"{contract.name}: {result.rows_read} rows read, {result.rows_loaded} loaded, "
            f"{result.rows_quarantined} quarantined from {len(result.files)} file(s); this "
            + (
                f"run read all of them again ({plan.reason})"
                if plan.rebuild
                else f"run read {len(plan.read)} new or changed, dropped {len(plan.drop)}, "
                f"checked the quarantined rows of {len(plan.recheck)} again"
            )
        )
        yield dg.MaterializeResult(
            metadata={
                "as_of_date": as_of.isoformat(),
                "files": len(result.files),
                "rows_read": result.rows_read,
                "rows_loaded": result.rows_loaded,
                "rows_quarantined": result.rows_quarantined,
                "quarantined_by_rule": dict(result.quarantined_by_rule),
                "files_read_this_run": len(plan.read),
                "read_everything_again": plan.reason if plan.rebuild else "no",
            },
            check_results=[
                _reconcile_check_result(key, result),
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=QUARANTINE_SHARE_CHECK,
                    passed=not share_findings,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"warnings": share_findings},
                ),
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=INPUT_AS_EXPECTED_CHECK,
                    passed=not result.warnings,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"warnings": list(result.warnings)},
                ),
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=CONTRACT_CHECK,
                    passed=not contract_failures,
                    metadata={
                        "failures": contract_failures[:20],
                        "failure_count": len(contract_failures),
                    },
                ),
            ],
        )

    return _ingest


def _reconcile_check_result(key: dg.AssetKey, result: IngestResult) -> dg.AssetCheckResult:
    unreconciled = [f.relative_path for f in result.files if not f.reconciles]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROWS_RECONCILE_CHECK,
        passed=not unreconciled,
        metadata={
            "rows_read": result.rows_read,
            "rows_loaded": result.rows_loaded,
            "rows_quarantined": result.rows_quarantined,
            "files_not_reconciling": unreconciled,
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["raw", "crm__accounts"]),
    name="landing_is_fresh",
    description=(
        "Warns when the newest export folder is older than the allowed age "
        "(ICP_MAX_EXPORT_AGE_DAYS, default 2) or lacks an expected entity's file."
    ),
)
def landing_is_fresh(landing: LandingZoneResource) -> dg.AssetCheckResult:
    findings = freshness_findings(
        landing.root_path,
        load_contracts().values(),
        datetime.now(UTC).date(),
        landing.max_export_age_days,
    )
    return dg.AssetCheckResult(
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"warnings": findings},
    )


def build_ingest_assets() -> list[dg.AssetsDefinition]:
    """Ingest assets for every contract under ``schemas/``."""
    contracts = load_contracts()
    return [_build_ingest_asset(contract, contracts) for contract in contracts.values()]
