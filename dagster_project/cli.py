"""The ``icp`` command: generate sample data, run the pipeline, explain a score, write the
ICP report."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from contextlib import nullcontext, suppress
from dataclasses import replace
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dagster_project.settings import Settings

app = typer.Typer(
    help="icp-pipeline: derive your Ideal Customer Profile from your own data and score accounts.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

_DEFAULTS = Settings.from_env()

LandingOption = Annotated[
    Path, typer.Option("--landing", envvar="ICP_LANDING", help="Landing zone folder.")
]
WarehouseOption = Annotated[
    Path, typer.Option("--warehouse", envvar="ICP_WAREHOUSE", help="DuckDB warehouse file.")
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        envvar="ICP_AS_OF_DATE",
        formats=["%Y-%m-%d"],
        help="Score as of this date (YYYY-MM-DD); default: the newest export date.",
    ),
]
ScoringConfigOption = Annotated[
    Path,
    typer.Option("--scoring-config", envvar="ICP_SCORING_CONFIG", help="Scoring config file."),
]


class Progress(StrEnum):
    """How a run shows its steps while it executes (see dagster_project.progress)."""

    auto = "auto"
    live = "live"
    plain = "plain"
    none = "none"


ProgressOption = Annotated[
    Progress,
    typer.Option(
        "--progress",
        envvar="ICP_PROGRESS",
        case_sensitive=False,
        help=(
            "Step progress while the run executes: live (a table, refreshed in place), plain "
            "(one line per step event, for logs), none; auto: live on a terminal, else plain."
        ),
    ),
]


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the landing zone into.")] = (
        _DEFAULTS.landing_dir
    ),
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    end_date: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Date of the newest export.")
    ] = datetime(2026, 11, 20),
    exports: Annotated[int, typer.Option(min=1, help="Number of daily export folders.")] = 3,
    history_months: Annotated[
        int, typer.Option(min=0, max=48, help="Monthly export folders before the daily ones.")
    ] = 8,
    file_format: Annotated[str, typer.Option("--format", help="csv, csv.gz or parquet.")] = "csv",
) -> None:
    """Write a sample landing zone with a planted ICP (see docs/sample_data.md)."""
    from dagster_project.sample_data import generate_landing_zone

    with console.status(f"Generating {accounts:,} accounts into {out} ..."):
        summary = generate_landing_zone(
            out,
            accounts=accounts,
            seed=seed,
            end_date=end_date.date(),
            export_count=exports,
            history_months=history_months,
            file_format=file_format,
        )
    table = Table("file", "rows", title=f"Landing zone {out}")
    for path, rows in sorted(summary.rows_per_file.items()):
        table.add_row(path, f"{rows:,}")
    console.print(table)


def _settings(
    landing: Path, warehouse: Path, as_of: datetime | None, scoring_config: Path
) -> Settings:
    # The options over the environment's settings: the others (ICP_TARGET, the quarantine
    # share, the valid dates, ...) are as Settings.from_env read them.
    return replace(
        Settings.from_env(),
        landing_dir=landing.resolve(),
        warehouse_path=warehouse.resolve(),
        scoring_config_path=scoring_config.resolve(),
        as_of_date=as_of.date() if as_of else None,
    )


def _alert(instance, summary) -> None:
    """Deliver the run's failure alert, or its warning alert, and say where it went.

    Here and not only in the daemon's sensors: ``icp run`` from cron may have no daemon. The
    alert log records what was sent, so the daemon's sensor does not send it a second time.
    An alert that cannot be delivered never changes the run's exit code.
    """
    from dagster_project.operations.alerts import (
        AlertConfigError,
        AlertSettings,
        deliver,
        failure_alert,
        warning_alert,
    )

    run = instance.get_run_by_id(summary.run_id)
    if run is None:
        return
    try:
        settings = AlertSettings.from_env()
        if not summary.success:
            alert = failure_alert(instance, run, settings)
        elif settings.on_warnings:
            alert = warning_alert(instance, run, settings)
        else:
            alert = None
        if alert is not None:
            console.print(f"alert: {deliver(alert, settings)}", markup=False, soft_wrap=True)
    except (AlertConfigError, OSError) as error:
        console.print(f"alert: not delivered: {error}", style="bold red", markup=False)


def _run_and_report(
    settings: Settings,
    date_range: tuple[date, date] | None = None,
    progress: Progress = Progress.auto,
) -> None:
    from dagster_project.operations.liveness import close_dead_runs
    from dagster_project.progress import progress_display
    from dagster_project.publish import published_dir_for
    from dagster_project.run import dagster_instance, run_pipeline

    instance = dagster_instance()
    for dead in close_dead_runs(instance, "icp run"):
        console.print(
            f"Marked run {dead.run_id} ({dead.dates or 'no date'}) failed: {dead.state}.",
            style="yellow",
            markup=False,
        )
    what = (
        f"{date_range[0]} to {date_range[1]}"
        if date_range
        else str(settings.as_of_date or "the newest export date")
    )
    doing = f"Materializing ingest, dbt models and tests, scoring, checks for {what}"
    if progress is Progress.none:
        status = console.status(f"{doing} ...")
    else:
        console.print(f"{doing}:", markup=False, soft_wrap=True)
        status = nullcontext()
    try:
        # The display takes stdout now: the run redirects it to keep dbt's log for the report.
        with progress_display(progress.value, sys.stdout) as display, status:
            summary = run_pipeline(
                settings, instance=instance, date_range=date_range, progress=display
            )
    except ValueError as error:
        console.print(f"[bold red]{error}[/]")
        raise typer.Exit(code=2) from None
    if not summary.success:
        console.print(f"[bold red]Run {summary.run_id} failed.[/]")
        for failure in summary.failures:
            # A step failing on a blocking check says only that; the check's line says why.
            if "blocking asset check failed" not in failure:
                console.print(f"- {failure}", style="red", markup=False)
        for detail in summary.check_failure_details:
            console.print(f"- check failed: {detail}", style="red", markup=False)
        _alert(instance, summary)
        raise typer.Exit(code=1)
    table = Table(show_header=False, title=f"icp-pipeline run {summary.run_id[:8]}")
    if date_range:
        table.add_row("backfilled", f"{date_range[0]} to {date_range[1]} (one run)")
    table.add_row("as of", str(summary.as_of_date))
    table.add_row("accounts scored", f"{summary.accounts_scored:,}")
    for tier in ("high", "medium", "low"):
        table.add_row(f"tier {tier}", f"{summary.tier_counts.get(tier, 0):,}")
    table.add_row("anti-ICP", f"{summary.anti_icp:,}")
    table.add_row("sources", summary.sources)
    table.add_row("outcome labels", summary.outcome_labels)
    table.add_row("ICP evidence", summary.evidence)
    table.add_row("rows quarantined", f"{summary.rows_quarantined:,}")
    checks = f"{summary.checks_passed} passed"
    if summary.checks_failed:
        checks += f", {len(summary.checks_failed)} failed: " + ", ".join(summary.checks_failed)
    table.add_row("checks", checks)
    for warning in summary.warnings:
        table.add_row("warning", warning)
    table.add_row("warehouse", str(settings.warehouse_path))
    table.add_row("published (read here)", str(published_dir_for(settings.warehouse_path)))
    if settings.target == "postgres":
        from dagster_project.postgres import PUBLISHED_SCHEMA, libpq_environment

        server = libpq_environment()
        where = f"{server.get('PGHOST', 'localhost')}:{server.get('PGPORT', '5432')}"
        database = server.get("PGDATABASE", "(the user's)")
        table.add_row(
            "published on PostgreSQL", f"schema {PUBLISHED_SCHEMA} of {database} on {where}"
        )
    table.add_row("ICP report (open in a browser)", summary.report_path or "not written")
    console.print(table)
    if summary.report_path:
        # Also on its own line: a narrow terminal cuts the table's cell short.
        console.print(f"Open the ICP report: {summary.report_path}", markup=False, soft_wrap=True)
    _alert(instance, summary)
    console.print(
        "Open the Dagster UI on this run with:\n"
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} ICP_LANDING={settings.landing_dir} "
        f"ICP_WAREHOUSE={settings.warehouse_path} uv run dagster dev -w workspace.yaml\n"
        "Explain a score with: uv run icp explain ACCOUNT_ID "
        f"--warehouse {settings.warehouse_path}"
    )


@app.command()
def run(
    landing: LandingOption = _DEFAULTS.landing_dir,
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    as_of: AsOfOption = None,
    scoring_config: ScoringConfigOption = _DEFAULTS.scoring_config_path,
    progress: ProgressOption = Progress.auto,
) -> None:
    """Ingest the landing zone, build the marts, score every account and publish (via Dagster)."""
    _run_and_report(_settings(landing, warehouse, as_of, scoring_config), progress=progress)


@app.command()
def backfill(
    date_from: Annotated[
        datetime,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First as-of date (YYYY-MM-DD)."),
    ],
    date_to: Annotated[
        datetime,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last as-of date, inclusive."),
    ],
    landing: LandingOption = _DEFAULTS.landing_dir,
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    scoring_config: ScoringConfigOption = _DEFAULTS.scoring_config_path,
    progress: ProgressOption = Progress.auto,
) -> None:
    """Score every as-of date from --from to --to, each point in time, in one Dagster run.

    Each date sees only the exports and events dated on or before it; its rows in the facts
    and the score history are replaced and other dates are left alone. The current scores move
    only if the range reaches past the newest date scored so far.
    """
    _run_and_report(
        _settings(landing, warehouse, None, scoring_config),
        date_range=(date_from.date(), date_to.date()),
        progress=progress,
    )


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(min=1, help="Number of sample accounts.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed of the sample data.")] = 42,
    landing: LandingOption = _DEFAULTS.landing_dir,
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    scoring_config: ScoringConfigOption = _DEFAULTS.scoring_config_path,
    progress: ProgressOption = Progress.auto,
) -> None:
    """Generate sample data (replacing LANDING) and run the whole pipeline on it."""
    import shutil

    if landing.exists():
        shutil.rmtree(landing)
    # The newest export is today's, as in production, so the freshness check has no complaint.
    today = datetime.combine(datetime.now(UTC).date(), datetime.min.time())
    generate(
        out=landing,
        accounts=accounts,
        seed=seed,
        end_date=today,
        exports=3,
        history_months=8,
        file_format="csv",
    )
    _run_and_report(_settings(landing, warehouse, None, scoring_config), progress=progress)


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    as_of: AsOfOption = None,
) -> None:
    """Show an account's fit score, tier, route, every factor's points and anti-ICP reasons."""
    import duckdb

    from dagster_project.scoring.explain import explain_account

    if not warehouse.exists():
        console.print(f"[red]No warehouse at {warehouse}; run `icp run` first.[/]")
        raise typer.Exit(code=2)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        explanation = explain_account(con, account_id, as_of.date() if as_of else None)
    if explanation is None:
        console.print(f"[red]No score for account {account_id!r}.[/]")
        raise typer.Exit(code=1)
    console.print(
        f"[bold]{explanation.account_id}[/] as of {explanation.as_of_date}: "
        f"fit score [bold]{explanation.fit_score}[/], tier {explanation.fit_tier}, "
        f"route {explanation.route}"
    )
    if explanation.fit_confidence:
        probability = (
            f", probability of becoming a best customer {explanation.fit_probability:.1%}"
            if explanation.fit_probability is not None
            else ""
        )
        console.print(f"confidence: {explanation.fit_confidence}{probability}")
    table = Table("factor", "points", "evidence")
    for factor, points in explanation.factors:
        evidence = "low sample" if factor in explanation.low_sample_factors else ""
        table.add_row(factor, f"{points:+}", evidence)
    table.add_row("[bold]total[/]", f"[bold]{explanation.factor_total}[/]", "")
    console.print(table)
    if explanation.low_sample_factors & {factor for factor, _ in explanation.factors}:
        console.print(
            "low sample: fewer labelled accounts behind the value than the prior weighs; its "
            "points are small by design (docs/scoring.md)"
        )
    if explanation.is_anti_icp:
        console.print("anti-ICP: " + ", ".join(explanation.anti_icp_reasons))
    else:
        console.print("anti-ICP: no")
    console.print(f"score version {explanation.score_version}, scored at {explanation.scored_at}")
    change = explanation.change
    if change is None:
        console.print("No earlier score for this account.")
        return
    console.print(
        f"\nSince {change.previous_as_of_date}: fit score {change.previous_fit_score} -> "
        f"{explanation.fit_score}, tier {change.previous_fit_tier} -> {explanation.fit_tier}, "
        f"route {change.previous_route} -> {explanation.route}"
        + (
            f" (score version {change.previous_score_version} -> {explanation.score_version})"
            if change.previous_score_version != explanation.score_version
            else ""
        )
    )
    if change.factor_changes:
        changes = Table("factor", "before", "now", "change", title="why")
        for factor, before, now in change.factor_changes:
            changes.add_row(factor, f"{before:+}", f"{now:+}", f"{now - before:+}")
        console.print(changes)
    else:
        console.print("No factor changed.")
    for label, reasons in (
        ("anti-ICP reasons added", change.reasons_added),
        ("anti-ICP reasons removed", change.reasons_removed),
    ):
        if reasons:
            console.print(f"{label}: " + ", ".join(reasons))


@app.command()
def report(
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="A scored date of the score history (YYYY-MM-DD); default: the current "
            "published date.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write index.html into; default: <published>/report."),
    ] = None,
) -> None:
    """Write the ICP report (static index.html, opens offline) from the published marts.

    Reads <published>/icp_marts.duckdb of WAREHOUSE ($ICP_PUBLISHED_DIR, else published/ next
    to it), and the warehouse's quarantine when the file can be opened read-only.
    """
    from dagster_project.publish import DB_FILE, published_dir_for
    from dagster_project.report import ReportError, build_report, report_dir_for

    published_dir = published_dir_for(warehouse)
    out_dir = out or report_dir_for(published_dir)
    try:
        result = build_report(
            published_dir / DB_FILE,
            out_dir,
            warehouse=warehouse.resolve(),
            as_of=as_of.date() if as_of else None,
        )
    except ReportError as error:
        console.print(f"report not written: {error}", style="bold red", markup=False)
        raise typer.Exit(code=2) from None
    console.print(
        f"ICP report as of {result.as_of_date} ({len(result.charts)} charts, evidence: "
        f"{result.evidence}) written in {result.seconds:.1f} s: {result.index_path}",
        markup=False,
        soft_wrap=True,
    )


@app.command()
def doctor(
    landing: LandingOption = _DEFAULTS.landing_dir,
    warehouse: WarehouseOption = _DEFAULTS.warehouse_path,
    fix: Annotated[
        bool, typer.Option("--fix", help="Mark dead runs failed and apply retention now.")
    ] = False,
) -> None:
    """Show the state of this deployment and what to do about anything wrong.

    Last good run per as-of date, runs in progress (is their process alive?) and queued, the
    warehouse lock, disk used by each store, quarantined rows, the retention in force. Exits 1
    while a problem remains (for cron), 0 otherwise.
    """
    from dagster_project.operations import doctor as checkup
    from dagster_project.operations.retention import RetentionSettings
    from dagster_project.run import dagster_instance

    settings = _settings(landing, warehouse, None, _DEFAULTS.scoring_config_path)
    instance = dagster_instance()
    retention = RetentionSettings.from_env()
    if fix:
        closed, pruned = checkup.fix(instance, settings, retention)
        for process in closed:
            console.print(
                f"fixed: marked run {process.run_id} ({process.dates or 'no date'}) failed: "
                f"{process.state}",
                markup=False,
            )
        console.print(f"fixed: retention applied: {pruned.summary()}", markup=False)
    report = checkup.diagnose(instance, settings, retention)

    shown = f"{len(report.good_runs)} of {report.good_dates_total}"
    runs = Table("as of", "run", "ended", title=f"Last good run per as-of date ({shown})")
    for good in report.good_runs:
        runs.add_row(good.dates, good.run_id[:8], checkup.format_time(good.ended_at))
    console.print(runs)
    active = Table("run", "as of", "status", "process", "step running", title="Runs in progress")
    for process in report.in_progress:
        state = {True: "alive", False: "DEAD", None: "-"}[process.alive]
        active.add_row(
            process.run_id[:8], process.dates, process.status,
            f"{state}: {process.state}", process.running_step or "",
        )  # fmt: skip
    for run_id, dates in report.queued:
        active.add_row(run_id[:8], dates, "QUEUED", "-", "")
    console.print(active)
    state = Table(show_header=False, title="State")
    state.add_row("warehouse lock", report.lock_holder)
    quarantined = "-" if report.quarantine_rows is None else f"{report.quarantine_rows:,}"
    state.add_row("raw.quarantined_rows", f"{quarantined} ({report.quarantine_note})")
    for store, size in report.disk_bytes.items():
        state.add_row(f"disk: {store}", f"{size / 1024**2:,.1f} MB")
    for store, kept in report.retention.items():
        state.add_row(f"retention: {store}", kept)
    console.print(state)
    for problem in report.problems:
        console.print(f"- {problem}", style="red", markup=False)
    if report.problems:
        raise typer.Exit(code=1)
    console.print("[green]Nothing wrong.[/]")


def main() -> None:
    """The ``icp`` console script: ``app``, then an exit without tearing the interpreter down.

    When ``app`` is done, each step has closed its files and databases, and the atexit
    handlers registered since ``main`` started have run (they run last first, and
    ``_exit_now`` is the first of them). What remains is the interpreter freeing the objects
    of every library a run imports (dagster, dbt, scikit-learn, Great Expectations), about
    2.5 s per command here for nothing.
    """
    atexit.register(_exit_now)
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code
        # sys.exit("text") prints the text and exits 1, as Python would.
        _EXIT_STATUS[0] = code if isinstance(code, int) else int(code is not None)
        raise
    except BaseException:
        _EXIT_STATUS[0] = 1  # Python prints the traceback, then exits 1
        raise


#: The status ``main`` exits with; 1 until ``app`` says otherwise.
_EXIT_STATUS = [1]


def _exit_now() -> None:
    # Registered with atexit when logging was imported, before main: flush and close its
    # handlers here, as that handler would.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a closed pipe must not change the status
            stream.flush()
    os._exit(_EXIT_STATUS[0])


if __name__ == "__main__":
    main()

__all__ = ["app", "main"]
