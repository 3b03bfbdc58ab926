"""Benchmark the whole pipeline (`icp run`) against a hand-written DuckDB script on the same files.

The claims under test (issue 14): at 1,000,000 accounts the whole pipeline takes at most 4x a
hand-written DuckDB script run in the same invocation, no process peaks above 3 GiB RSS,
10x the accounts costs at most 10x the time (``--scales 100000,1000000``), the fixed cost at
3,000 accounts is at most 30 s (``--fixed-cost``), a nightly delta run (1 % of the accounts
touched) takes at most 0.25x a full run (``--delta``) and a 30-date backfill at most 5x one
date (``--backfill-dates 30``). ``--postgres`` also runs the pipeline with the PostgreSQL target
(issue 16) on a throwaway loopback server and compares its time and published rows with the
DuckDB run's.

**Inputs.** A landing zone from the second, independently written generator
(``dagster_project.sample_data.planted_structures``): one export folder holding the full
history in its timestamps, in every required entity and every optional one but two
(``billing/churn_events``, whose churn is in the subscriptions and accounts instead, and
``fx_rates.csv``, needless when every amount is USD). It writes ``product/usage`` and
``feedback/nps_responses``, which the first generator does not, so every staging model has
rows. ``--generator sample`` uses the first generator instead (one export, no history).
Landing zones are cached under ``--out/accounts-<N>/landing`` and reused.

**The reference** is what a data team would hand-write in one DuckDB process: typed reads of
every file (``read_csv`` with the contract's column types), the newest version of each row,
per-account facts as of the date (deals, win rate, activity, MRR, lifetime revenue, failed
payments, tickets, CSAT, resolution time, product usage, NPS), a points score and a tier,
written to Parquet.

**The pipeline** runs as ``icp run --landing --warehouse --as-of`` in a fresh process with a
persistent ``DAGSTER_HOME`` under ``--out`` (a copy of ``deploy/dagster.yaml``), so this
process reads the run's event log afterwards: the time of every step (ingest per entity, dbt
models, dbt unit tests, scoring, checks, publish) and, from dagster-dbt's metadata, of every
dbt model and test. The child wraps dagster-dbt's ``DbtCliInvocation.stream_raw_events`` to
keep each dbt invocation's node times from its result events (the pipeline's dbt writes no
run_results.json), so the dbt builds not streamed to Dagster (the backtest's facts, the unit
tests) are timed too. No pipeline code is changed.

**Measurements.** Each measured process tree (the pipeline spawns dbt) is polled every 0.2 s
with psutil: the peak RSS of any one process (the larger of the polled RSS and the kernel's
high-water mark ``VmHWM``) and of the tree's sum. CPU time is ``RUSAGE_CHILDREN`` (every
descendant, every thread). The machine is shared, so wall times are noisy: ratios are against
the reference measured in the same invocation, and the CPU time is printed beside them.

Usage::

    uv run python benchmarks/pipeline_scale.py --accounts 100000 --fixed-cost
    uv run python benchmarks/pipeline_scale.py --accounts 1000000
    uv run python benchmarks/pipeline_scale.py --scales 100000,1000000 --out /tmp/icp-scale
    uv run python benchmarks/pipeline_scale.py --accounts 3000 --delta --backfill-dates 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_REFERENCE_FLAG = "--reference-once"
_PIPELINE_FLAG = "--pipeline-once"
_DBT_ARTIFACTS_ENV = "ICP_BENCH_DBT_ARTIFACTS"
GIB = 1024**3
RSS_TARGET_BYTES = 3 * GIB
FIXED_COST_ACCOUNTS = 3_000
POLL_SECONDS = 0.2
#: Before the planted generator's default date, so that 30 dates after it are not in the future.
DEFAULT_END_DATE = date(2026, 10, 20)
DELTA_SHARE = 0.01


def _parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument(
        "--scales",
        default=None,
        help="comma-separated account counts, e.g. 100000,1000000 (prints the 10x time ratio)",
    )
    parser.add_argument(
        "--fixed-cost",
        action="store_true",
        help=f"also run the pipeline at {FIXED_COST_ACCOUNTS:,} accounts (target <= 30 s)",
    )
    parser.add_argument(
        "--delta",
        action="store_true",
        help=f"after the full run, add an export with {DELTA_SHARE:.0%}% of accounts changed the "
        "next day and run again on the same warehouse (target <= 0.25x the full run)",
    )
    parser.add_argument(
        "--backfill-dates",
        type=int,
        default=0,
        help="after the delta run, `icp backfill` this many dates (target 30 <= 5x one date)",
    )
    parser.add_argument("--generator", choices=["planted", "sample"], default="planted")
    parser.add_argument("--structure", default="interactions", help="planted generator's ICP")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--end-date", type=date.fromisoformat, default=DEFAULT_END_DATE, help="the export date"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/icp-pipeline-scale"),
        help="landing zones (cached), warehouses, Dagster home, dbt timings",
    )
    parser.add_argument("--top", type=int, default=10, help="dbt nodes listed per run")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run with ICP_TARGET=postgres on a throwaway server (deploy/postgres_server.sh)",
    )
    parser.add_argument(_REFERENCE_FLAG, nargs=3, default=None, help=argparse.SUPPRESS)
    parser.add_argument(_PIPELINE_FLAG, nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Measuring a process tree


@dataclass
class Measured:
    """One process tree's wall time, CPU time and peak memory."""

    label: str
    wall_seconds: float
    cpu_seconds: float
    peak_process_bytes: int
    peak_process_name: str
    peak_tree_bytes: int
    returncode: int
    started_at: float
    ended_at: float
    output: str = ""
    extra: dict = field(default_factory=dict)


def _high_water_mark(pid: int) -> int:
    """The kernel's peak RSS of a live process (``VmHWM``), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run_measured(label: str, command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` to its end, polling its process tree; stdout and stderr are kept."""
    import psutil

    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at = time.time()
    started = time.perf_counter()
    process = psutil.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peaks: dict[int, tuple[int, str]] = {}
    tree_peak = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                members = [process, *process.children(recursive=True)]
            except psutil.Error:
                members = []
            total = 0
            for member in members:
                try:
                    rss = member.memory_info().rss
                    name = " ".join(os.path.basename(a) for a in member.cmdline()[:4])
                except psutil.Error:
                    continue
                total += rss
                peak = max(rss, _high_water_mark(member.pid), peaks.get(member.pid, (0, ""))[0])
                peaks[member.pid] = (peak, name)
            tree_peak[0] = max(tree_peak[0], total)
            stop.wait(POLL_SECONDS)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    output = process.stdout.read()
    returncode = process.wait()
    stop.set()
    poller.join()
    wall = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    peak_bytes, peak_name = max(peaks.values(), default=(0, ""))
    return Measured(
        label=label,
        wall_seconds=wall,
        cpu_seconds=cpu,
        peak_process_bytes=peak_bytes,
        peak_process_name=peak_name,
        peak_tree_bytes=tree_peak[0],
        returncode=returncode,
        started_at=started_at,
        ended_at=time.time(),
        output=output,
    )


# --------------------------------------------------------------------------------------------
# Inputs


def _landing_zone(arguments: argparse.Namespace, accounts: int) -> Path:
    """The cached landing zone of ``accounts`` accounts (generated on first use, in a child)."""
    root = arguments.out / f"{arguments.generator}-{accounts}-seed{arguments.seed}"
    landing = root / "landing"
    done = root / "generated.json"
    if done.exists():
        print(f"reusing {landing} ({json.loads(done.read_text())['seconds']:.0f} s to generate)")
        return landing
    if arguments.generator == "planted":
        code = (
            "from pathlib import Path; from datetime import date; "
            "from dagster_project.sample_data.planted_structures import "
            "generate_structured_landing_zone as g; "
            f"s = g(Path({str(landing)!r}), structure={arguments.structure!r}, "
            f"accounts={accounts}, seed={arguments.seed}, "
            f"end_date=date.fromisoformat({arguments.end_date.isoformat()!r})); "
            "print(sum(s.row_counts.values()))"
        )
    else:
        code = (
            "from pathlib import Path; from datetime import date; "
            "from dagster_project.sample_data import generate_landing_zone as g; "
            f"s = g(Path({str(landing)!r}), accounts={accounts}, seed={arguments.seed}, "
            f"end_date=date.fromisoformat({arguments.end_date.isoformat()!r}), "
            "export_count=1, history_months=0); "
            "print(sum(v for k, v in s.rows_per_file.items() if not k.startswith('_')))"
        )
    print(
        f"generating {accounts:,} accounts ({arguments.generator}) into {landing} ...", flush=True
    )
    generated = _run_measured("generate", [sys.executable, "-c", code])
    if generated.returncode:
        raise RuntimeError(f"generating failed:\n{generated.output}")
    rows = int(generated.output.strip().splitlines()[-1])
    done.write_text(json.dumps({"seconds": generated.wall_seconds, "rows": rows}))
    print(
        f"generated {rows:,} rows in {generated.wall_seconds:.0f} s, peak RSS "
        f"{generated.peak_process_bytes / GIB:.2f} GiB",
        flush=True,
    )
    return landing


def _landing_size(landing: Path, as_of: date) -> tuple[int, int]:
    """Files and bytes of the export folders up to ``as_of``."""
    files = [
        path
        for path in landing.rglob("*")
        if path.is_file()
        and not path.relative_to(landing).parts[0].startswith("_")
        and path.relative_to(landing).parts[0] <= as_of.isoformat()
    ]
    return len(files), sum(path.stat().st_size for path in files)


def _write_delta_export(landing: Path, export: date, delta: date) -> int:
    """A next-day export folder: 1 % of the accounts changed (open roles, updated_at) and a
    new ticket for each of them; the full folder ``export`` is left as it is. Returns the
    accounts touched."""
    import duckdb

    folder = landing / delta.isoformat()
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "crm").mkdir(parents=True)
    (folder / "support").mkdir(parents=True)
    source = landing / export.isoformat()
    changed_at = f"{delta.isoformat()} 01:00:00"
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"""
            CREATE TABLE touched AS
            SELECT * FROM read_csv('{source / "crm" / "accounts.csv"}', header = true,
                                   all_varchar = true)
            WHERE hash(account_id) % 100 = 0
            """
        )
        con.execute(
            f"""
            COPY (
                SELECT * REPLACE (
                    CAST(coalesce(TRY_CAST(open_roles AS BIGINT), 0) + 1 AS VARCHAR)
                        AS open_roles,
                    strftime(TIMESTAMP '{changed_at}', '%Y-%m-%dT%H:%M:%SZ') AS updated_at
                )
                FROM touched
            ) TO '{folder / "crm" / "accounts.csv"}' (FORMAT csv, HEADER true)
            """
        )
        tickets = source / "support" / "tickets.csv"
        columns = [
            row[0]
            for row in con.execute(
                f"DESCRIBE SELECT * FROM read_csv('{tickets}', header = true, all_varchar = true)"
            ).fetchall()
        ]
        values = {
            "ticket_id": "'T-DELTA-' || account_id",
            "account_id": "account_id",
            "created_at": f"strftime(TIMESTAMP '{changed_at}', '%Y-%m-%dT%H:%M:%SZ')",
            "updated_at": f"strftime(TIMESTAMP '{changed_at}', '%Y-%m-%dT%H:%M:%SZ')",
            "priority": "'normal'",
            "status": "'open'",
            "category": "'how_to'",
        }
        select = ", ".join(f"{values.get(c, 'NULL')} AS {c}" for c in columns)
        con.execute(
            f"COPY (SELECT {select} FROM touched) TO '{folder / 'support' / 'tickets.csv'}' "
            "(FORMAT csv, HEADER true)"
        )
        return con.execute("SELECT count(*) FROM touched").fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# The hand-written reference


def _reference_once(landing: Path, as_of: date, out: Path) -> None:
    """Child process: the hand-written DuckDB script; prints its timings as JSON."""
    import duckdb

    from dagster_project.ingest.contracts import load_contracts

    timings: dict[str, float] = {}
    rows: dict[str, int] = {}
    export = landing / as_of.isoformat()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    for name, contract in sorted(load_contracts().items()):
        path = export / f"{name}.csv"
        if not path.exists():
            # An entity this landing zone has not (the first generator writes no usage, no
            # NPS): an empty table, so that the facts are those of the sources it has.
            columns = ", ".join(f"{c.name} {c.warehouse_type}" for c in contract.columns)
            con.execute(f"CREATE TABLE {name.replace('/', '__')} ({columns})")
            continue
        with open(path, encoding="utf-8") as file:
            header = file.readline().strip().split(",")
        types = {column.name: column.warehouse_type for column in contract.columns}
        columns = ", ".join(f"'{c}': '{types.get(c, 'VARCHAR')}'" for c in header)
        table = name.replace("/", "__")
        part = time.perf_counter()
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header = true, "
            f"columns = {{{columns}}})"
        )
        timings[f"read {name}"] = time.perf_counter() - part
        rows[name] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    part = time.perf_counter()
    con.execute(_REFERENCE_FACTS_SQL.replace("$as_of", f"DATE '{as_of.isoformat()}'"))
    timings["facts"] = time.perf_counter() - part
    part = time.perf_counter()
    con.execute(_REFERENCE_SCORE_SQL)
    timings["score"] = time.perf_counter() - part
    part = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY account_scores TO '{out / 'account_scores.parquet'}' (FORMAT parquet)")
    timings["write parquet"] = time.perf_counter() - part
    summary = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE tier = 'high'), "
        "count(*) FILTER (WHERE is_customer) FROM account_scores"
    ).fetchone()
    con.close()
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "timings": timings,
                "rows": rows,
                "accounts": summary[0],
                "high_tier": summary[1],
                "customers": summary[2],
            }
        )
    )


_REFERENCE_FACTS_SQL = """
CREATE TABLE account_facts AS
WITH
accounts AS (
    SELECT * FROM crm__accounts
    WHERE updated_at < $as_of + 1
    QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY updated_at DESC) = 1
),
deals AS (
    SELECT
        account_id,
        count(*) AS deals,
        count(*) FILTER (WHERE stage = 'won') AS won_deals,
        count(*) FILTER (WHERE stage = 'lost') AS lost_deals,
        sum(amount) FILTER (WHERE stage = 'won') AS won_amount,
        avg(date_diff('day', created_at, closed_at)) FILTER (WHERE stage = 'won')
            AS sales_cycle_days,
        max(closed_at) AS last_closed_at
    FROM crm__opportunities
    WHERE created_at < $as_of + 1 AND NOT coalesce(is_deleted, false)
    GROUP BY account_id
),
activity AS (
    SELECT
        account_id,
        count(*) AS activities,
        count(*) FILTER (WHERE occurred_at >= $as_of - 30) AS activities_30d,
        count(*) FILTER (WHERE occurred_at >= $as_of - 90) AS activities_90d,
        max(occurred_at) AS last_activity_at
    FROM crm__activities
    WHERE occurred_at < $as_of + 1
    GROUP BY account_id
),
subscriptions AS (
    SELECT
        account_id,
        count(*) AS subscriptions,
        sum(mrr) FILTER (WHERE ended_at IS NULL OR ended_at >= $as_of + 1) AS mrr,
        min(started_at) AS first_started_at,
        max(ended_at) AS last_ended_at,
        bool_and(ended_at IS NOT NULL AND ended_at < $as_of + 1) AS has_churned
    FROM billing__subscriptions
    WHERE started_at < $as_of + 1 AND NOT coalesce(is_deleted, false)
    GROUP BY account_id
),
invoices AS (
    SELECT
        account_id,
        sum(amount) FILTER (WHERE status = 'paid') AS lifetime_revenue,
        count(*) FILTER (WHERE status NOT IN ('paid', 'open')) AS failed_invoices,
        max(issued_at) AS last_invoice_at
    FROM billing__invoices
    WHERE issued_at < $as_of + 1
    GROUP BY account_id
),
tickets AS (
    SELECT
        account_id,
        count(*) AS tickets,
        count(*) FILTER (WHERE created_at >= $as_of - 90) AS tickets_90d,
        avg(csat) AS avg_csat,
        median(date_diff('hour', created_at, solved_at)) AS median_resolution_hours,
        count(*) FILTER (WHERE priority = 'urgent') AS urgent_tickets
    FROM support__tickets
    WHERE created_at < $as_of + 1
    GROUP BY account_id
),
usage AS (
    SELECT
        account_id,
        count(DISTINCT CAST(occurred_at AS DATE)) AS active_days_90d,
        count(DISTINCT feature) AS features_used_90d,
        sum(quantity) AS usage_quantity_90d
    FROM product__usage
    WHERE occurred_at >= $as_of - 90 AND occurred_at < $as_of + 1
    GROUP BY account_id
),
nps AS (
    SELECT
        account_id,
        avg(score) AS avg_nps_score,
        arg_max(score, responded_at) AS latest_nps_score
    FROM feedback__nps_responses
    WHERE responded_at < $as_of + 1
    GROUP BY account_id
)
SELECT
    accounts.*,
    coalesce(deals.deals, 0) AS deals,
    coalesce(deals.won_deals, 0) AS won_deals,
    deals.won_deals / nullif(deals.won_deals + deals.lost_deals, 0) AS win_rate,
    deals.won_amount,
    deals.sales_cycle_days,
    deals.last_closed_at,
    coalesce(activity.activities, 0) AS activities,
    coalesce(activity.activities_30d, 0) AS activities_30d,
    coalesce(activity.activities_90d, 0) AS activities_90d,
    activity.last_activity_at,
    coalesce(subscriptions.subscriptions, 0) AS subscriptions,
    coalesce(subscriptions.mrr, 0) AS mrr,
    subscriptions.first_started_at,
    coalesce(subscriptions.has_churned, false) AS has_churned,
    coalesce(invoices.lifetime_revenue, 0) AS lifetime_revenue,
    coalesce(invoices.failed_invoices, 0) AS failed_invoices,
    coalesce(tickets.tickets, 0) AS tickets,
    coalesce(tickets.tickets_90d, 0) AS tickets_90d,
    tickets.tickets_90d * 1000.0 / nullif(subscriptions.mrr, 0) AS tickets_90d_per_1k_mrr,
    tickets.avg_csat,
    tickets.median_resolution_hours,
    coalesce(usage.active_days_90d, 0) AS active_days_90d,
    coalesce(usage.features_used_90d, 0) AS features_used_90d,
    usage.usage_quantity_90d,
    nps.avg_nps_score,
    nps.latest_nps_score,
    deals.won_deals > 0 AS is_customer
FROM accounts
LEFT JOIN deals USING (account_id)
LEFT JOIN activity USING (account_id)
LEFT JOIN subscriptions USING (account_id)
LEFT JOIN invoices USING (account_id)
LEFT JOIN tickets USING (account_id)
LEFT JOIN usage USING (account_id)
LEFT JOIN nps USING (account_id)
WHERE NOT coalesce(accounts.is_deleted, false)
"""

_REFERENCE_SCORE_SQL = """
CREATE TABLE account_scores AS
WITH points AS (
    SELECT
        account_id,
        is_customer,
        CASE WHEN employee_count BETWEEN 50 AND 2000 THEN 15
             WHEN employee_count BETWEEN 10 AND 5000 THEN 5 ELSE 0 END
        + CASE WHEN lower(trim(industry)) IN ('software', 'fintech', 'ecommerce') THEN 10
               ELSE 0 END
        + CASE deployment WHEN 'cloud' THEN 10 WHEN 'hybrid' THEN 4 ELSE 0 END
        + CASE WHEN business_model = 'b2b_saas' THEN 10 ELSE 0 END
        + 4 * len(list_intersect(string_split(coalesce(tech_stack, ''), ';'),
                                 ['snowflake', 'dbt', 'segment', 'looker']))
        + CASE WHEN funding_stage IN ('series_a', 'series_b') THEN 5 ELSE 0 END
        + CASE WHEN country IN ('US', 'GB') THEN 3 ELSE 0 END
        + 10 * coalesce(win_rate, 0)
        + least(activities_90d, 10)
        + CASE WHEN mrr >= 1000 THEN 8 WHEN mrr > 0 THEN 4 ELSE 0 END
        + CASE WHEN avg_csat >= 4 THEN 5 WHEN avg_csat < 3 THEN -5 ELSE 0 END
        + CASE WHEN tickets_90d_per_1k_mrr > 3 THEN -5 ELSE 0 END
        + least(active_days_90d / 9.0, 10)
        + CASE WHEN latest_nps_score >= 9 THEN 5 WHEN latest_nps_score <= 6 THEN -5 ELSE 0 END
        - CASE WHEN has_churned THEN 10 ELSE 0 END
        - 2 * least(failed_invoices, 5) AS points
    FROM account_facts
)
SELECT
    account_id,
    is_customer,
    round(greatest(least(points, 100), 0), 2) AS fit_score,
    CASE WHEN points >= 50 THEN 'high' WHEN points >= 30 THEN 'medium' ELSE 'low' END AS tier
FROM points
"""


def _run_reference(landing: Path, as_of: date, out: Path) -> Measured:
    command = [sys.executable, __file__, _REFERENCE_FLAG, str(landing), as_of.isoformat(), str(out)]
    measured = _run_measured("reference", command)
    if measured.returncode:
        raise RuntimeError(f"the reference failed:\n{measured.output}")
    measured.extra = json.loads(measured.output.strip().splitlines()[-1])
    return measured


# --------------------------------------------------------------------------------------------
# The pipeline


_DBT_RESULT_EVENTS = ("LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult")


def _pipeline_once(cli_arguments: list[str]) -> None:
    """Child process: ``icp`` with the node times of every dbt invocation kept."""
    from dagster_dbt import DbtCliInvocation

    from dagster_project.cli import main

    artifacts = Path(os.environ[_DBT_ARTIFACTS_ENV])
    artifacts.mkdir(parents=True, exist_ok=True)
    stream_raw_events = DbtCliInvocation.stream_raw_events

    def stream_and_keep_node_times(invocation):
        # The pipeline's dbt writes no run_results.json (--no-write-json): the same figures
        # come from its result events (one per node) and its closing statistics.
        nodes, elapsed = {}, 0.0
        for event in stream_raw_events(invocation):
            name, data = event.raw_event["info"]["name"], event.raw_event["data"]
            if name in _DBT_RESULT_EVENTS:
                nodes[data["node_info"]["unique_id"]] = data["execution_time"]
            elif name == "FinishedRunningStats":
                elapsed = data["execution_time"]
            yield event
        args = [str(arg) for arg in invocation.process.args]
        which = next((a for a in args[1:] if a in ("build", "test", "run", "compile")), "")
        selected = args[args.index("--select") + 1] if "--select" in args else ""
        record = {"command": f"{which} {selected}".strip(), "elapsed": elapsed, "nodes": nodes}
        (artifacts / f"{time.time():.3f}-dbt-nodes.json").write_text(json.dumps(record))

    DbtCliInvocation.stream_raw_events = stream_and_keep_node_times
    # The console script's own entry point, as `icp` runs (it exits without teardown).
    sys.argv = ["icp", *cli_arguments]
    main()


def _dagster_home(root: Path) -> Path:
    from dagster_project.run import INSTANCE_CONFIG

    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    return home


def _run_pipeline(
    label: str, work: Path, cli_arguments: list[str], extra_env: dict[str, str] | None = None
) -> Measured:
    """``icp <cli_arguments>`` in a fresh process, its event log and dbt timings attached."""
    home = _dagster_home(work)
    artifacts = work / f"dbt-run-results-{label.replace(' ', '-')}"
    shutil.rmtree(artifacts, ignore_errors=True)
    env = {
        **os.environ,
        **(extra_env or {}),
        "DAGSTER_HOME": str(home),
        _DBT_ARTIFACTS_ENV: str(artifacts),
    }
    command = [sys.executable, __file__, _PIPELINE_FLAG, *cli_arguments]
    measured = _run_measured(label, command, env)
    if measured.returncode:
        print(measured.output[-5000:])
        raise RuntimeError(f"{label} failed (exit {measured.returncode})")
    measured.extra = _event_log_profile(home)
    measured.extra["dbt_invocations"] = _dbt_node_times(artifacts)
    return measured


def _event_log_profile(home: Path) -> dict:
    """Seconds per step of the newest run in ``home``, and per dbt node it streamed."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
    started: dict[str, float] = {}
    steps: dict[str, float] = {}
    nodes: dict[str, float] = {}
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            started[event.step_key] = record.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            steps[event.step_key] = record.timestamp - started[event.step_key]
        elif kind in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"):
            data = event.event_specific_data
            metadata = (
                data.materialization.metadata if kind == "ASSET_MATERIALIZATION" else data.metadata
            )
            if "Execution Duration" in metadata and "unique_id" in metadata:
                nodes[metadata["unique_id"].value] = float(metadata["Execution Duration"].value)
    return {
        "run_id": run.run_id,
        "status": str(run.status.value),
        "run_started_at": records[0].timestamp,
        "run_ended_at": records[-1].timestamp,
        "steps": steps,
        "streamed_dbt_nodes": nodes,
    }


def _dbt_node_times(artifacts: Path) -> list[dict]:
    """Every dbt invocation of the run: its command, elapsed time and per-node times."""
    return [json.loads(path.read_text()) for path in sorted(artifacts.glob("*-dbt-nodes.json"))]


def _published_fingerprint(warehouse: Path) -> str:
    """Rows and an order-free hash of the published current scores (``scored_at`` left out),
    to say a faster pipeline publishes the same results."""
    import duckdb

    from dagster_project.publish import published_dir_for

    path = published_dir_for(warehouse) / "icp_marts.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        scores = con.execute(
            "SELECT count(*), bit_xor(hash(account_id, as_of_date, fit_score, fit_probability, "
            "fit_tier, is_anti_icp, anti_icp_reasons, icp_segment, route, factor_points)), "
            "any_value(score_version) FROM marts.account_fit_scores"
        ).fetchone()
        facts = con.execute(
            "SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM marts.fct_account_metrics"
        ).fetchone()
    return (
        f"account_fit_scores {scores[0]:,} rows hash {scores[1]:016x} ({scores[2]}); "
        f"fct_account_metrics {facts[0]:,} rows hash {facts[1]:016x}"
    )


# --------------------------------------------------------------------------------------------
# Reports


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def _print_measured(measured: Measured) -> None:
    print(
        f"  {measured.label}: wall {measured.wall_seconds:.1f} s, "
        f"CPU {measured.cpu_seconds:.1f} s, "
        f"peak RSS {_gib(measured.peak_process_bytes)} (one process: {measured.peak_process_name})"
        f", {_gib(measured.peak_tree_bytes)} (tree)"
    )


def _node_name(unique_id: str) -> str:
    """A dbt node's name from its id: ``model.<project>.<name>``, ``test.<project>.<name>.<hash>``,
    ``unit_test.<project>.<model>.<name>``; long generated test names are cut."""
    parts = unique_id.split(".")
    name = f"{parts[2]}:{parts[3]}" if parts[0] == "unit_test" else parts[2]
    return name if len(name) <= 60 else name[:57] + "..."


def _step_group(step: str) -> str:
    if step.startswith("raw__"):
        return "ingest (+ its checks)"
    if step.startswith("published__"):
        return "publish (+ its checks)"
    if step.startswith("marts__") or step == "account_fit_scores":
        return "scoring (+ its checks)"
    return step


def _print_pipeline_profile(measured: Measured, top: int) -> list[tuple[float, str]]:
    """Print where the run's time went; return (seconds, what) of every cost found."""
    extra = measured.extra
    steps: dict[str, float] = extra["steps"]
    before = extra["run_started_at"] - measured.started_at
    after = measured.ended_at - extra["run_ended_at"]
    in_run = extra["run_ended_at"] - extra["run_started_at"]
    print(
        f"    process {measured.wall_seconds:.1f} s = before the run (start, imports, "
        f"definitions, dbt parse) {before:.1f} s + Dagster run {in_run:.1f} s + after "
        f"(summary, alert) {after:.1f} s"
    )
    groups: dict[str, float] = defaultdict(float)
    for step, seconds in steps.items():
        groups[_step_group(step)] += seconds
    print(
        "    steps (one at a time): "
        + ", ".join(f"{g} {s:.1f} s" for g, s in sorted(groups.items(), key=lambda i: -i[1]))
        + f"; between steps {in_run - sum(steps.values()):.1f} s"
    )
    ingest = {s: v for s, v in steps.items() if s.startswith("raw__")}
    print(
        "    ingest per entity: "
        + ", ".join(
            f"{s.removeprefix('raw__')} {v:.1f}"
            for s, v in sorted(ingest.items(), key=lambda i: -i[1])
        )
    )
    others = {s: v for s, v in steps.items() if _step_group(s) != s and not s.startswith("raw__")}
    print(
        "    scoring and publish steps: "
        + ", ".join(f"{s} {v:.1f}" for s, v in sorted(others.items(), key=lambda i: -i[1])[:8])
    )
    costs = [(before, "before the Dagster run (process start, imports, definitions)")]
    costs += [(after, "after the Dagster run (summary, alert)")]
    costs += [
        (v, f"step {s}") for s, v in steps.items() if s not in ("dbt_models", "dbt_unit_tests")
    ]
    streamed = extra["streamed_dbt_nodes"]
    for invocation in extra["dbt_invocations"]:
        node_seconds = sum(invocation["nodes"].values())
        print(
            f"    dbt {invocation['command']}: {invocation['elapsed']:.1f} s elapsed, "
            f"{len(invocation['nodes'])} nodes {node_seconds:.1f} s"
        )
    if not extra["dbt_invocations"] and streamed:
        print(f"    dbt build (streamed): {len(streamed)} nodes {sum(streamed.values()):.1f} s")
    for step in ("dbt_models", "dbt_unit_tests"):
        if step not in steps:
            continue
        invocations = [
            i
            for i in extra["dbt_invocations"]
            if (step == "dbt_unit_tests") == ("test_type:unit" in i["command"])
        ]
        dbt_elapsed = sum(i["elapsed"] for i in invocations)
        node_seconds = sum(sum(i["nodes"].values()) for i in invocations)
        if invocations:
            costs.append(
                (
                    steps[step] - dbt_elapsed,
                    f"{step}: outside dbt's elapsed time (dbt start-up, manifest, Dagster events)",
                )
            )
            costs.append((dbt_elapsed - node_seconds, f"{step}: dbt between its nodes"))
    all_nodes: dict[str, float] = defaultdict(float)
    for invocation in extra["dbt_invocations"] or [{"nodes": streamed}]:
        for node, seconds in invocation["nodes"].items():
            all_nodes[node] += seconds
    by_kind: dict[str, float] = defaultdict(float)
    for node, seconds in all_nodes.items():
        by_kind[node.split(".")[0]] += seconds
    print(
        "    dbt nodes by kind: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(by_kind.items(), key=lambda i: -i[1]))
    )
    print(
        f"    top {top} dbt nodes: "
        + ", ".join(
            f"{_node_name(n)} {v:.1f}"
            for n, v in sorted(all_nodes.items(), key=lambda i: -i[1])[:top]
        )
    )
    costs += [(v, f"dbt {n.split('.')[0]} {_node_name(n)}") for n, v in all_nodes.items()]
    return costs


def _measure_size(arguments: argparse.Namespace, accounts: int) -> dict:
    """Reference and pipeline at one size; prints and returns the figures."""
    landing = _landing_zone(arguments, accounts)
    as_of = arguments.end_date
    work = landing.parent / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files, size = _landing_size(landing, as_of)
    print(f"\n== {accounts:,} accounts: {files} files, {size / 1e6:,.0f} MB ({landing})")
    reference = _run_reference(landing, as_of, work / "reference")
    _print_measured(reference)
    rows = reference.extra["rows"]
    print(
        f"    {sum(rows.values()):,} rows read; "
        + ", ".join(f"{k} {v:.1f}" for k, v in reference.extra["timings"].items())
        + f" s; {reference.extra['accounts']:,} accounts scored, "
        f"{reference.extra['high_tier']:,} high tier"
    )
    warehouse = work / "warehouse.duckdb"
    pipeline = _icp_run("pipeline", work, landing, warehouse, as_of)
    _print_measured(pipeline)
    costs = _print_pipeline_profile(pipeline, arguments.top)
    print(f"    published: {_published_fingerprint(warehouse)}")
    print(f"    top {arguments.top} costs of the pipeline run:")
    for seconds, what in sorted(costs, reverse=True)[: arguments.top]:
        print(f"      {seconds:7.1f} s  {what}")
    ratio = pipeline.wall_seconds / reference.wall_seconds
    print(
        f"  RATIO pipeline / reference wall {ratio:.1f}x (target <= 4), CPU "
        f"{pipeline.cpu_seconds / reference.cpu_seconds:.1f}x; peak RSS of one process "
        f"{pipeline.peak_process_bytes / RSS_TARGET_BYTES:.2f}x 3 GiB (target <= 1), reference "
        f"{reference.peak_process_bytes / RSS_TARGET_BYTES:.2f}x"
    )
    result = {"accounts": accounts, "reference": reference, "pipeline": pipeline}
    if arguments.postgres:
        result["postgres"] = _measure_postgres(arguments, landing, work, pipeline, reference)
    if arguments.delta:
        result["delta"] = _measure_delta(arguments, landing, work, warehouse, pipeline)
    return result


def _icp_run(
    label: str,
    work: Path,
    landing: Path,
    warehouse: Path,
    as_of: date,
    extra_env: dict[str, str] | None = None,
) -> Measured:
    """``icp run`` of one as-of date on ``landing`` into ``warehouse``, measured."""
    arguments = ["run", "--landing", str(landing), "--warehouse", str(warehouse)]
    return _run_pipeline(label, work, [*arguments, "--as-of", as_of.isoformat()], extra_env)


def _measure_postgres(
    arguments: argparse.Namespace,
    landing: Path,
    work: Path,
    duckdb_run: Measured,
    reference: Measured,
) -> Measured:
    """The same run with ``ICP_TARGET=postgres`` on a throwaway server on loopback (started
    with deploy/postgres_server.sh, which ``install`` set up), its time against the DuckDB
    run's, and whether the working file published the same rows. The server's processes are
    not in the measured tree: their CPU and memory are not counted."""
    server_script = PROJECT_ROOT / "deploy" / "postgres_server.sh"
    server_dir = Path(tempfile.mkdtemp(prefix="icp-bench-pg-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([str(server_script), "start", str(server_dir), str(port)], check=True)
    try:
        environment = {"ICP_TARGET": "postgres"}
        for line in (server_dir / "env").read_text().splitlines():
            name, value = line.removeprefix("export ").split("=", 1)
            environment[name] = value
        pg_work = work / "postgres"
        pg_work.mkdir()
        warehouse = pg_work / "warehouse.duckdb"
        measured = _icp_run(
            "pipeline on postgres", pg_work, landing, warehouse, arguments.end_date, environment
        )
    finally:
        subprocess.run([str(server_script), "stop", str(server_dir)], check=False)
        shutil.rmtree(server_dir, ignore_errors=True)
    _print_measured(measured)
    _print_pipeline_profile(measured, arguments.top)
    same = _published_fingerprint(warehouse) == _published_fingerprint(work / "warehouse.duckdb")
    print(
        f"    published: {_published_fingerprint(warehouse)} "
        f"({'the same rows as' if same else 'NOT the rows of'} the DuckDB target)"
    )
    print(
        f"  RATIO pipeline on postgres / on duckdb wall "
        f"{measured.wall_seconds / duckdb_run.wall_seconds:.2f}x, / reference "
        f"{measured.wall_seconds / reference.wall_seconds:.1f}x"
    )
    return measured


def _measure_delta(
    arguments: argparse.Namespace, landing: Path, work: Path, warehouse: Path, full: Measured
) -> Measured:
    delta_date = arguments.end_date + timedelta(days=1)
    touched = _write_delta_export(landing, arguments.end_date, delta_date)
    delta = _icp_run("delta run", work, landing, warehouse, delta_date)
    print(f"  delta export {delta_date}: {touched:,} accounts changed and a ticket each")
    _print_measured(delta)
    _print_pipeline_profile(delta, arguments.top)
    print(
        f"  RATIO delta run / full run wall {delta.wall_seconds / full.wall_seconds:.2f}x "
        "(target <= 0.25)"
    )
    if arguments.backfill_dates:
        last = delta_date + timedelta(days=arguments.backfill_dates - 1)
        backfill = _run_pipeline(
            "backfill",
            work,
            [
                "backfill",
                "--from",
                delta_date.isoformat(),
                "--to",
                last.isoformat(),
                "--landing",
                str(landing),
                "--warehouse",
                str(warehouse),
            ],
        )
        _print_measured(backfill)
        _print_pipeline_profile(backfill, arguments.top)
        print(
            f"  RATIO {arguments.backfill_dates}-date backfill / one date (the full run) wall "
            f"{backfill.wall_seconds / full.wall_seconds:.2f}x (target 30 dates <= 5)"
        )
    else:
        print("  backfill: not measured (pass --backfill-dates 30)")
    return delta


def main(argv: list[str] | None = None) -> None:
    arguments = _parse_arguments(argv)
    if arguments.reference_once is not None:
        landing, as_of, out = arguments.reference_once
        _reference_once(Path(landing), date.fromisoformat(as_of), Path(out))
        return
    if arguments.pipeline_once is not None:
        _pipeline_once(arguments.pipeline_once)
        return
    arguments.out = arguments.out.resolve()
    arguments.out.mkdir(parents=True, exist_ok=True)
    sizes = (
        [int(size) for size in arguments.scales.split(",")]
        if arguments.scales
        else [arguments.accounts]
    )
    print(
        f"pipeline_scale: {arguments.generator} generator"
        + (f" ({arguments.structure})" if arguments.generator == "planted" else "")
        + f", seed {arguments.seed}, export {arguments.end_date}, sizes "
        + ", ".join(f"{size:,}" for size in sizes)
        + f"; {os.cpu_count()} CPUs"
    )
    results = [_measure_size(arguments, size) for size in sizes]
    print("\n== summary")
    for result in results:
        pipeline, reference = result["pipeline"], result["reference"]
        print(
            f"  {result['accounts']:>9,} accounts: pipeline {pipeline.wall_seconds:7.1f} s "
            f"(CPU {pipeline.cpu_seconds:7.1f} s, peak {_gib(pipeline.peak_process_bytes)}), "
            f"reference {reference.wall_seconds:6.1f} s (CPU {reference.cpu_seconds:6.1f} s, "
            f"peak {_gib(reference.peak_process_bytes)}): "
            f"{pipeline.wall_seconds / reference.wall_seconds:.1f}x"
        )
    if len(results) > 1:
        small, large = results[0], results[-1]
        scale = large["accounts"] / small["accounts"]
        print(
            f"  RATIO {scale:.0f}x accounts: pipeline time "
            f"{large['pipeline'].wall_seconds / small['pipeline'].wall_seconds:.2f}x "
            f"(target <= {scale:.0f}), reference "
            f"{large['reference'].wall_seconds / small['reference'].wall_seconds:.2f}x"
        )
    if not arguments.delta:
        print("  delta run: not measured (pass --delta)")
        print("  backfill: not measured (pass --delta --backfill-dates 30)")
    if arguments.fixed_cost:
        landing = _landing_zone(arguments, FIXED_COST_ACCOUNTS)
        work = landing.parent / "runs"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        fixed = _run_pipeline(
            "fixed cost",
            work,
            [
                "run",
                "--landing",
                str(landing),
                "--warehouse",
                str(work / "warehouse.duckdb"),
                "--as-of",
                arguments.end_date.isoformat(),
            ],
        )
        print(f"\n== fixed cost, {FIXED_COST_ACCOUNTS:,} accounts")
        _print_measured(fixed)
        costs = _print_pipeline_profile(fixed, arguments.top)
        print(f"    top {arguments.top} costs:")
        for seconds, what in sorted(costs, reverse=True)[: arguments.top]:
            print(f"      {seconds:7.1f} s  {what}")
        print(f"  FIXED COST {fixed.wall_seconds:.1f} s at 3,000 accounts (target <= 30 s)")


if __name__ == "__main__":
    main()
