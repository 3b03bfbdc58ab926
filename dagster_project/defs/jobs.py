"""Jobs: the whole graph, landing to published scores."""

from __future__ import annotations

import dagster as dg

from dagster_project.defs.partitions import AS_OF_PARTITIONS

__all__ = ["FULL_RUN_JOB", "WAREHOUSE_TAG", "full_run_job"]

FULL_RUN_JOB = "icp_full_run"
#: Every run of the job carries it; deploy/dagster.yaml limits runs with it to one at a time.
WAREHOUSE_TAG = {"icp/warehouse": "writer"}

# In process, one step at a time: DuckDB allows a single writer per file, and the dbt step is a
# separate process that must find the file free.
full_run_job = dg.define_asset_job(
    FULL_RUN_JOB,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    partitions_def=AS_OF_PARTITIONS,
    tags=WAREHOUSE_TAG,
    description=(
        "For one as-of date (or a range, in one run): ingest every landing entity, build the "
        "dbt models and tests, score and publish."
    ),
)
