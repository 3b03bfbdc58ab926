"""Jobs: the whole graph, landing to published scores."""

from __future__ import annotations

import dagster as dg

__all__ = ["FULL_RUN_JOB", "full_run_job"]

FULL_RUN_JOB = "icp_full_run"

# In process, one step at a time: DuckDB allows a single writer per file, and the dbt step is a
# separate process that must find the file free.
full_run_job = dg.define_asset_job(
    FULL_RUN_JOB,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Ingest every landing entity, build the dbt models and tests, score and publish.",
)
