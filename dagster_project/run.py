"""Running the whole graph through Dagster and summarising what it published."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from dagster_project.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from dagster_project.progress import RunProgress

__all__ = [
    "RunSummary",
    "dagster_instance",
    "failed_check_reason",
    "newest_export_date",
    "retry_cause",
    "run_pipeline",
]

INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"

# Dagster's tags for a run over a partition range (what a single-run backfill launches).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class RunSummary:
    """What a run did, for the CLI and for tests."""

    success: bool
    run_id: str
    as_of_date: str | None = None
    accounts_scored: int = 0
    tier_counts: dict[str, int] = field(default_factory=dict)
    anti_icp: int = 0
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_quarantined: int = 0
    sources: str = ""
    outcome_labels: str = ""
    #: What backs the published scores (validated, no signal, rules), in one sentence.
    evidence: str = ""
    failures: list[str] = field(default_factory=list)
    #: Each failed check with its reason and a few failing values, for the person reading.
    check_failure_details: list[str] = field(default_factory=list)
    output: str = ""
    #: The ICP report the run wrote (``<published>/report/index.html``), if it wrote one.
    report_path: str = ""


def dagster_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The persistent instance in ``$DAGSTER_HOME`` (created if needed), so that runs started
    from the CLI show up in ``dagster dev`` pointed at the same home."""
    home = Path(home or os.environ.get("DAGSTER_HOME") or Path.cwd() / "data" / "dagster_home")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # No telemetry, and one run at a time through the run queue (see the file).
        config.write_text(INSTANCE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


#: Metadata entries of a check that say why it failed, most specific first.
_REASON_KEYS = (
    "failures",
    "examples",
    "message",
    "problems",
    "files_not_reconciling",
    "warnings",
)
_MAX_REASON_VALUES = 3


def failed_check_reason(evaluation) -> str:
    """Why a check failed, from its metadata: the first few failing values and how many.

    dbt tests report their failing row count; the pipeline's own checks list failures,
    examples or a message."""
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    for key in _REASON_KEYS:
        values = metadata.get(key)
        if not values:
            continue
        if isinstance(values, str):
            return values
        values = [str(value) for value in values]
        shown = "; ".join(values[:_MAX_REASON_VALUES])
        more = len(values) - _MAX_REASON_VALUES
        return shown + (f" (and {more} more)" if more > 0 else "")
    counts = {
        label: metadata[key]
        for key, label in (
            ("failing_rows", "failing rows"),
            ("failure_count", "failures"),
            ("dagster_dbt/failed_row_count", "failing rows (dbt test)"),
        )
        if key in metadata
    }
    if counts:
        return ", ".join(f"{label}: {value}" for label, value in counts.items())
    return "no detail recorded; see the check in the Dagster UI"


def retry_cause(error) -> str:
    """The error that made a step retry (Dagster wraps it in RetryRequestedFromPolicy)."""
    if error is None:
        return ""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@contextmanager
def _no_redirect() -> Iterator[None]:
    yield


def newest_export_date(settings: Settings) -> date:
    """The as-of date of a run that names none: the newest export folder's date."""
    from dagster_project.ingest.landing import LandingError, export_dates

    try:
        dates = export_dates(settings.landing_dir)
    except LandingError as error:
        raise ValueError(str(error)) from error
    if not dates:
        raise ValueError(f"no export-date folders (YYYY-MM-DD) under {settings.landing_dir}")
    return dates[-1]


def run_pipeline(
    settings: Settings,
    instance: dg.DagsterInstance | None = None,
    quiet: bool = True,
    date_range: tuple[date, date] | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """Materialize every asset and run every check, in process, one step at a time.

    One as-of date partition (``settings.as_of_date``, else the newest export date), or with
    ``date_range`` every date from the first to the last inclusive in one run: what a Dagster
    backfill of that range launches under the single-run backfill policy.

    ``progress`` follows the run's events as they happen (see ``dagster_project.progress``);
    it only watches: what runs and what is published do not change.
    """
    from dagster_project.defs import build_definitions
    from dagster_project.defs.jobs import FULL_RUN_JOB
    from dagster_project.defs.partitions import check_as_of_dates
    from dagster_project.defs.publish.report import PUBLISHED_REPORT
    from dagster_project.defs.scoring.assets import FIT_SCORES

    defs = build_definitions(settings)
    job = defs.resolve_job_def(FULL_RUN_JOB)
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}} if quiet else None
    if date_range is None:
        as_of = settings.as_of_date or newest_export_date(settings)
        check_as_of_dates(as_of)
        partition = dict(partition_key=as_of.isoformat())
    else:
        first, last = date_range
        if first > last:
            raise ValueError(f"the range starts ({first}) after it ends ({last})")
        check_as_of_dates(first, last)
        partition = dict(
            tags={
                PARTITION_RANGE_START_TAG: first.isoformat(),
                PARTITION_RANGE_END_TAG: last.isoformat(),
            }
        )
    # dagster-dbt streams dbt's own log to stdout; quiet runs keep it for the failure report.
    instance = instance or dg.DagsterInstance.ephemeral()
    # The run id is chosen here so that progress can listen before the run's first event.
    run_id = str(uuid.uuid4())
    if progress is not None:
        progress.attach(instance, run_id, job)
    captured = io.StringIO()
    with redirect_stdout(captured) if quiet else _no_redirect():
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
            run_config=run_config,
            **partition,
        )
    summary = RunSummary(success=result.success, run_id=result.run_id, output=captured.getvalue())
    last_retried_error: dict[str, str] = {}
    for event in result.all_events:
        if event.is_step_up_for_retry:
            last_retried_error[event.step_key] = retry_cause(event.step_retry_data.error)
        if event.is_step_failure:
            error = event.step_failure_data.error
            message = error.message.strip() if error else ""
            if event.step_key in last_retried_error:
                # "Exceeded max_retries" says nothing of the cause: the last try's error does.
                message = f"{message}; last error: {last_retried_error[event.step_key]}"
            summary.failures.append(f"{event.step_key}: {message}")
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            summary.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            summary.checks_warned.append(name)
            details = evaluation.metadata.get("warnings")
            summary.warnings.extend(details.value if details is not None else [name])
        else:
            summary.checks_failed.append(name)
            summary.check_failure_details.append(f"{name}: {failed_check_reason(evaluation)}")
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        if materialization.asset_key == FIT_SCORES:
            summary.as_of_date = metadata["as_of_date"]
            summary.accounts_scored = metadata["accounts_scored"]
            summary.tier_counts = {t: metadata[f"tier_{t}"] for t in ("high", "medium", "low")}
            summary.anti_icp = metadata["anti_icp"]
            summary.sources = metadata.get("sources", "")
            summary.outcome_labels = metadata.get("outcome_labels", "")
            summary.evidence = metadata.get("evidence", "")
        elif materialization.asset_key == PUBLISHED_REPORT:
            summary.report_path = metadata["index_html"]
        elif materialization.asset_key.path[0] == "raw":
            summary.rows_quarantined += metadata.get("rows_quarantined", 0)
    return summary
