"""Generate a synthetic landing zone (CRM, billing, support) with a planted ICP.

The data is written exactly as the contract (``/CONTRACT.md`` section 1 and ``schemas/``)
describes the landing zone, so the ingest loads it with zero quarantined rows, and it carries
a *known* Ideal Customer Profile so scoring and its tests can check that they find it.

Layout (``<ext>`` is ``csv``, ``csv.gz`` or ``parquet``)::

    <out>/<YYYY-MM-DD>/crm/accounts.<ext>           one folder per export date
    <out>/<YYYY-MM-DD>/crm/opportunities.<ext>
    <out>/<YYYY-MM-DD>/crm/activities.<ext>
    <out>/<YYYY-MM-DD>/billing/subscriptions.<ext>
    <out>/<YYYY-MM-DD>/billing/invoices.<ext>
    <out>/<YYYY-MM-DD>/support/tickets.<ext>
    <out>/fx_rates.csv                              daily EUR and GBP rates, always CSV
    <out>/_truth/planted_segments.csv               ground truth, not part of the contract

Exports are consecutive days ending at ``end_date``. The first is a full snapshot of the
state at the end of its day; each later one is a delta holding every row created or changed
during its day (state as of the end of that day): new accounts, enriched accounts (employee
count, open roles, funding), duplicate accounts deleted with ``is_deleted = true``,
opportunities that closed, subscriptions that converted from trial, expanded, fell past due
or were canceled, invoices issued or paid, tickets opened or solved, new activities. No
timestamp in an export is later than the end of its export date.

Planted segments (ground truth in ``_truth/planted_segments.csv``)
-----------------------------------------------------------------
Every account is first assigned a segment (22 % ``icp``, 28 % ``anti_icp``, 50 %
``neutral``); its firmographics are then drawn to fit the segment.

``icp`` accounts meet *all* of these rules:

1. ``business_model = b2b_saas``
2. industry is software or fintech (after normalising the spelling, see below)
3. 100 <= ``employee_count`` <= 1000
4. ``country`` in US, GB, DE, NL, CA
5. ``deployment = cloud``
6. ``tech_stack`` contains snowflake, dbt or segment
7. ``funding_stage`` in series_a, series_b, series_c_plus

``anti_icp`` accounts have one anti-ICP trait; ``anti_icp_reason`` is its code:

* ``agency``: ``business_model = agency`` (agencies have 5-300 employees, so a few are
  also tiny; the reason is still ``agency``),
* ``too_small``: fewer than 20 employees,
* ``on_prem``: ``deployment = on_prem``.

``neutral`` accounts have no anti-ICP trait and break at least one ICP rule (one rule is
broken on purpose, the others are drawn from broad distributions, so many neutral accounts
are near misses).

Outcomes depend on the segment, and on a hidden *buying intent* in [0, 1], by probability
only, so segments overlap but the signal is strong:

* win probability of an opportunity: 0.55 ``icp``, 0.13 ``neutral``, 0.05 ``anti_icp``,
  plus 0.35 x (intent - 0.5), plus 0.08 for repeat opportunities; ``icp`` sales cycles are
  30 % shorter;
* activities before an opportunity that is won are more often buying signals;
* the first won opportunity starts the account's one subscription (30 % with a 14-day
  trial); lifetime is exponential with mean 2,600 days (``icp``) or 900 days (``neutral``);
  55 % of ``anti_icp`` subscriptions end within 20-90 days, the rest have mean 385 days;
* MRR expands every 150-300 days by 15-35 % (``icp``), every 240-540 days by 5-20 %
  (``neutral``), every 720-1,500 days by 0-10 % (``anti_icp``), at most 12 times;
* payment failures (subscription ``past_due`` 21 days before it is canceled, its last
  invoices ``uncollectible``): 50 % of ``anti_icp``, 8 % of ``neutral``, 1 % of ``icp``;
* support tickets per month of tenure: 0.25 ``icp``, 0.5 ``neutral``, 1.6 ``anti_icp``;
  urgent or high priority 15 %, 28 %, 55 %; CSAT mostly 4-5 for ``icp``, mostly 1-3 for
  ``anti_icp`` (about 55 % of solved tickets have a CSAT);
* buying signals grow with intent: open roles, how recent the last funding round is, and
  high-intent activities (demo_request, pricing_page_visit, meeting) in the 45 days before
  an opportunity is created.

Messiness (the scoring must cope): ~6 % missing ``employee_count``, ~5 % missing
``industry``, ~3 % missing ``country``, ~4 % missing ``deployment`` and ``domain``, ~5 %
missing ``funding_stage`` and ``open_roles``, ~7 % missing ``tech_stack``, ~15 % missing
``annual_revenue``, ~3 % missing ``business_model``; industry spelled in several ways
("Software", "software ", "SOFTWARE", "Fin Tech", "FinTech", "Fin-Tech"...; lower-casing and
dropping every non-alphanumeric character gives one key per industry); tech stacks with
"; " separators or capitalised tools; a few company names with commas, quotes, ``;``,
``--`` or non-Latin script. Every value is still valid per ``schemas/`` (enum values exactly
as listed, money >= 0 with 2 decimals, ISO timestamps ``YYYY-MM-DDTHH:MM:SSZ`` and dates
``YYYY-MM-DD``). Money is in the account's currency: GBP for GB, EUR for DE/NL/FR/ES, USD
otherwise.

How it works: every value is a pure function of ``(seed, row number, salt)`` through
DuckDB's ``hash`` (never ``random()``, which is not reproducible when DuckDB runs in
parallel), the entities are materialised in a temporary on-disk DuckDB database with a
memory limit, and each file is written by ``COPY (... ORDER BY key)``. The same arguments
give byte-identical files; memory stays bounded by the DuckDB memory limit, not by the
number of accounts.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import yaml

__all__ = [
    "ANTI_ICP_REASONS",
    "FILE_FORMATS",
    "PLANTED_SEGMENTS",
    "GenerationSummary",
    "generate_landing_zone",
]

#: Values of ``planted_segment`` in ``_truth/planted_segments.csv``.
PLANTED_SEGMENTS: tuple[str, ...] = ("icp", "anti_icp", "neutral")
#: Values of ``anti_icp_reason`` in ``_truth/planted_segments.csv`` (empty when not anti-ICP).
ANTI_ICP_REASONS: tuple[str, ...] = ("agency", "too_small", "on_prem")
#: Supported values of ``file_format`` (they are also the file extensions).
FILE_FORMATS: tuple[str, ...] = ("csv", "csv.gz", "parquet")

_MAX_ACCOUNTS = 9_999_999  # account ids have 7 digits
_MAX_EXPORTS = 366
_HISTORY_DAYS = 4 * 365
_FX_RATES_FILE = "fx_rates.csv"
_TRUTH_FILE = "_truth/planted_segments.csv"

#: Landing entity (``source/entity``) -> (table built below, key columns for ORDER BY).
_ENTITY_TABLES: dict[str, tuple[str, str]] = {
    "crm/accounts": ("account_truth", "account_num"),
    "crm/opportunities": ("opportunity_events", "account_num, opp_seq"),
    "crm/activities": ("activity_events", "account_num, activity_seq"),
    "billing/subscriptions": ("subscription_events", "account_num"),
    "billing/invoices": ("invoice_events", "account_num, invoice_seq"),
    "support/tickets": ("ticket_events", "account_num, ticket_seq"),
}


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_landing_zone` wrote.

    Attributes:
        out_dir: The landing root that was written.
        accounts: Number of accounts generated (including duplicates that get deleted).
        seed: The seed used.
        export_dates: Export folder dates, oldest first.
        rows_per_file: Data rows (header excluded) per written file, keyed by its path
            relative to ``out_dir`` with ``/`` separators.
    """

    out_dir: Path
    accounts: int
    seed: int
    export_dates: list[date]
    rows_per_file: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        """Rows written over all files."""
        return sum(self.rows_per_file.values())


def generate_landing_zone(
    out_dir: Path,
    *,
    accounts: int = 3000,
    seed: int = 42,
    end_date: date = date(2026, 11, 20),
    export_count: int = 3,
    history_months: int = 0,
    file_format: str = "csv",
    memory_limit: str = "2GB",
    threads: int | None = None,
    schemas_dir: Path | None = None,
) -> GenerationSummary:
    """Write a synthetic landing zone with a planted ICP to ``out_dir``.

    Files that already exist under the same names are overwritten; nothing else in
    ``out_dir`` is touched (use an empty folder to get exactly this data set).

    Args:
        out_dir: Landing root to write (created if missing).
        accounts: Number of accounts, 1 to 9,999,999.
        seed: Seed of every pseudo-random draw; same arguments give byte-identical files.
        end_date: Date of the last export; no event is later than the end of this day.
        export_count: Number of daily exports ending at ``end_date`` (first one a full
            snapshot, the others deltas).
        history_months: Monthly exports (every 30 days) before the daily ones, so that the
            landing zone holds the history a backtest or a backfill needs; the first export is
            then the snapshot and every later one a delta.
        file_format: ``"csv"``, ``"csv.gz"`` or ``"parquet"`` for the export files.
        memory_limit: DuckDB memory limit (e.g. ``"2GB"``); larger work spills to disk.
        threads: DuckDB threads (default: DuckDB's choice). Output does not depend on it.
        schemas_dir: Folder of the input contracts (default: ``$ICP_SCHEMAS_DIR`` or the
            repository's ``schemas/``); the files get exactly the columns listed there.

    Returns:
        A :class:`GenerationSummary` with the export dates and the rows of every file.

    Raises:
        ValueError: If an argument is out of range or the schemas name a column the
            generator does not produce.
    """
    _validate_arguments(accounts, seed, export_count, file_format)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(history_months, int) or not 0 <= history_months <= 48:
        raise ValueError("history_months must be an int from 0 to 48")
    daily = [end_date - timedelta(days=export_count - 1 - i) for i in range(export_count)]
    monthly = [daily[0] - timedelta(days=30 * k) for k in range(history_months, 0, -1)]
    export_dates = monthly + daily
    entity_columns = _entity_columns(schemas_dir or _default_schemas_dir())

    rows_per_file: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="icp-generate-") as work_dir:
        config: dict[str, str | bool | int] = {
            "memory_limit": memory_limit,
            "temp_directory": os.path.join(work_dir, "spill"),
            "preserve_insertion_order": True,
        }
        if threads is not None:
            config["threads"] = threads
        # An on-disk database keeps millions of child rows out of RAM; it lives only as
        # long as this call.
        con = duckdb.connect(os.path.join(work_dir, "generate.duckdb"), config=config)
        try:
            _set_variables(con, accounts, seed, end_date, export_dates)
            for statement in _BUILD_STATEMENTS:
                con.execute(statement)
            previous_cutoff = _PREHISTORY
            for export_date in export_dates:
                cutoff = _epoch(export_date + timedelta(days=1))
                for entity, columns in entity_columns.items():
                    relative = f"{export_date.isoformat()}/{entity}.{file_format}"
                    rows_per_file[relative] = _write_entity(
                        con,
                        entity,
                        columns,
                        out_dir / relative,
                        file_format,
                        cutoff=cutoff,
                        previous_cutoff=previous_cutoff,
                    )
                previous_cutoff = cutoff
            rows_per_file[_FX_RATES_FILE] = _copy(
                con,
                f"SELECT {_column_list(_FX_COLUMNS)} FROM fx_rates ORDER BY currency, date",
                out_dir / _FX_RATES_FILE,
                "csv",
            )
            rows_per_file[_TRUTH_FILE] = _copy(
                con,
                "SELECT account_id, planted_segment, anti_icp_reason "
                "FROM account_truth ORDER BY account_num",
                out_dir / _TRUTH_FILE,
                "csv",
            )
        finally:
            con.close()
    return GenerationSummary(
        out_dir=out_dir,
        accounts=accounts,
        seed=seed,
        export_dates=export_dates,
        rows_per_file=rows_per_file,
    )


# --------------------------------------------------------------------------------------
# Arguments, schemas, variables
# --------------------------------------------------------------------------------------

_PREHISTORY = -(2**62)  # "previous export cutoff" of the first export: include everything
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_FX_COLUMNS = ("date", "currency", "usd_per_unit")


def _validate_arguments(accounts: int, seed: int, export_count: int, file_format: str) -> None:
    if not isinstance(accounts, int) or not 1 <= accounts <= _MAX_ACCOUNTS:
        raise ValueError(f"accounts must be an int from 1 to {_MAX_ACCOUNTS}, got {accounts!r}")
    if not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must be a 64-bit int, got {seed!r}")
    if not isinstance(export_count, int) or not 1 <= export_count <= _MAX_EXPORTS:
        raise ValueError(f"export_count must be an int from 1 to {_MAX_EXPORTS}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")


def _default_schemas_dir() -> Path:
    # Same convention as dagster_project.ingest.contracts.default_schemas_dir; not imported
    # from there because that module loads pandera, which the generator does not need.
    configured = os.environ.get("ICP_SCHEMAS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "schemas"


def _entity_columns(schemas_dir: Path) -> dict[str, tuple[str, ...]]:
    """Column names per landing entity, in schema order, read from the contract YAML."""
    columns_by_entity: dict[str, tuple[str, ...]] = {}
    for entity in _ENTITY_TABLES:
        path = schemas_dir / f"{entity}.yaml"
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        columns = tuple(document["columns"])
        for column in columns:
            # Column names end up as SQL identifiers, so they must be plain names.
            if not _IDENTIFIER.match(column):
                raise ValueError(f"{path}: column name {column!r} is not a plain identifier")
            if column not in _ENTITY_EXPRESSIONS[entity]:
                raise ValueError(f"{path}: the generator does not produce column {column!r}")
        columns_by_entity[entity] = columns
    return columns_by_entity


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def _set_variables(
    con: duckdb.DuckDBPyConnection,
    accounts: int,
    seed: int,
    end_date: date,
    export_dates: Sequence[date],
) -> None:
    first_cutoff = _epoch(export_dates[0] + timedelta(days=1))
    last_cutoff = _epoch(end_date + timedelta(days=1))
    history_start = _epoch(end_date - timedelta(days=_HISTORY_DAYS))
    variables = {
        "seed": seed,
        "n_accounts": accounts,
        "history_start": history_start,
        "first_cutoff": first_cutoff,
        "last_cutoff": last_cutoff,
        "has_deltas": len(export_dates) > 1,
        "fx_first_day": _epoch(end_date - timedelta(days=_HISTORY_DAYS + 7)),
        "fx_days": _HISTORY_DAYS + 8,
    }
    for name, value in variables.items():
        con.execute(f"SET VARIABLE {name} = $value", {"value": value})


# --------------------------------------------------------------------------------------
# Building the entities (all times are epoch seconds, UTC)
# --------------------------------------------------------------------------------------

_MACROS = """
-- Uniform [0, 1) draw, a pure function of (seed, a, b, salt). The outer hash re-mixes the
-- bits: DuckDB's multi-argument hash alone gives strongly correlated draws for salts that
-- share a prefix ('refresh' vs 'refresh_at': correlation -0.9).
CREATE MACRO rnd(salt, a, b) AS
    (hash(hash(getvariable('seed'), a, b, salt)) >> 11)::DOUBLE / 9007199254740992.0;
CREATE MACRO pick(items, u) AS items[1 + floor(u * len(items))::BIGINT];
CREATE MACRO log_uniform(u, lo, hi) AS
    round(exp(ln(lo) + u * (ln(hi) - ln(lo))))::BIGINT;
CREATE MACRO exponential(u, mean) AS -ln(1 - u) * mean;
CREATE MACRO days(n) AS (n * 86400)::BIGINT;
CREATE MACRO ts(seconds) AS make_timestamp(seconds * 1000000);
-- Cutoff (exclusive end) of the first export that can see something that happened at t:
-- exports are consecutive days, each ending at the midnight after its date.
CREATE MACRO first_visible_cutoff(t) AS
    greatest(getvariable('first_cutoff'), (t // 86400 + 1) * 86400);
-- updated_at of a row's first version: after creation, before its first change and before
-- the end of the first export that contains it.
CREATE MACRO initial_touch(created, change, u) AS
    created + floor(u * (least(coalesce(change, getvariable('last_cutoff')),
                               first_visible_cutoff(created)) - created))::BIGINT;
CREATE MACRO opp_created(account_created, first_offset, gap, account_num, seq) AS
    account_created + first_offset + (seq - 1) * gap
    + floor(rnd('opp_jitter', account_num, seq) * 20 * 86400)::BIGINT;
-- Probability that an opportunity is won; activities use it too, so buying signals lead wins.
CREATE MACRO win_probability(segment, intent, seq) AS
    greatest(0.02, least(0.95,
        CASE segment WHEN 'icp' THEN 0.55 WHEN 'anti_icp' THEN 0.05 ELSE 0.13 END
        + 0.35 * (intent - 0.5) + CASE WHEN seq > 1 THEN 0.08 ELSE 0 END));
CREATE MACRO is_won_draw(segment, intent, account_num, seq) AS
    rnd('win', account_num, seq) < win_probability(segment, intent, seq);
-- MRR expansions strictly before t (at billing_start + s * interval, s = 1..12).
CREATE MACRO expansion_steps(t, billing_start, ended, step) AS
    CASE WHEN t <= billing_start THEN 0
         ELSE greatest(0, least(12,
             (least(t, coalesce(ended, t)) - 1 - billing_start) // step))
    END;
"""

_ACCOUNTS = """
CREATE TABLE account_truth AS
WITH base AS (
    SELECT
        range + 1 AS account_num,
        rnd('segment', range + 1, 0) AS u_segment,
        rnd('anti_trait', range + 1, 0) AS u_trait,
        rnd('broken_rule', range + 1, 0) AS u_rule,
        rnd('intent', range + 1, 0) AS intent,
        getvariable('history_start') + floor(sqrt(rnd('created', range + 1, 0))
            * (getvariable('last_cutoff') - getvariable('history_start')))::BIGINT AS created_at
    FROM range(getvariable('n_accounts'))
), segmented AS (
    SELECT
        *,
        CASE WHEN u_segment < 0.22 THEN 'icp' WHEN u_segment < 0.50 THEN 'anti_icp'
             ELSE 'neutral' END AS planted_segment,
        CASE WHEN u_segment >= 0.22 AND u_segment < 0.50 THEN
            CASE WHEN u_trait < 0.40 THEN 'agency' WHEN u_trait < 0.75 THEN 'too_small'
                 ELSE 'on_prem' END
        END AS anti_icp_reason,
        CASE WHEN u_segment >= 0.50 THEN pick(['business_model', 'industry', 'employee_count',
            'country', 'deployment', 'tech_stack', 'funding_stage'], u_rule) END AS broken_rule,
        rnd('duplicate', account_num, 0) < 0.012 AND getvariable('has_deltas')
            AND created_at < getvariable('first_cutoff') AS is_duplicate
    FROM base
), firmographics AS (
    SELECT
        *,
        CASE
            WHEN planted_segment = 'icp' THEN 'b2b_saas'
            WHEN anti_icp_reason = 'agency' THEN 'agency'
            WHEN broken_rule = 'business_model' OR rnd('bm_saas', account_num, 0) >= 0.5
                THEN pick(['ecommerce', 'services', 'marketplace', 'nonprofit'],
                          rnd('bm', account_num, 0))
            ELSE 'b2b_saas'
        END AS business_model,
        CASE
            WHEN planted_segment = 'icp' THEN
                CASE WHEN rnd('ind', account_num, 0) < 0.65 THEN 'software' ELSE 'fintech' END
            WHEN anti_icp_reason = 'agency' THEN
                CASE WHEN rnd('ind', account_num, 0) < 0.7 THEN 'marketing' ELSE 'media' END
            WHEN broken_rule = 'industry' OR rnd('ind', account_num, 0) >= 0.4 THEN
                pick(['healthcare', 'retail', 'manufacturing', 'marketing', 'education',
                      'logistics', 'media', 'financial_services', 'real_estate'],
                     rnd('ind_other', account_num, 0))
            WHEN rnd('ind_tech', account_num, 0) < 0.75 THEN 'software'
            ELSE 'fintech'
        END AS industry_key,
        CASE
            WHEN planted_segment = 'icp' THEN log_uniform(rnd('emp', account_num, 0), 100, 1000)
            WHEN anti_icp_reason = 'too_small' THEN log_uniform(rnd('emp', account_num, 0), 1, 19)
            WHEN anti_icp_reason = 'agency' THEN log_uniform(rnd('emp', account_num, 0), 5, 300)
            WHEN broken_rule = 'employee_count' THEN
                CASE WHEN rnd('emp_band', account_num, 0) < 0.5
                     THEN log_uniform(rnd('emp', account_num, 0), 20, 99)
                     ELSE log_uniform(rnd('emp', account_num, 0), 1001, 20000) END
            ELSE log_uniform(rnd('emp', account_num, 0), 20, 20000)
        END AS employees,
        CASE
            WHEN planted_segment <> 'icp' AND (broken_rule = 'country'
                 OR rnd('country_icp', account_num, 0) >= 0.7)
                THEN pick(['FR', 'AU', 'IN', 'BR', 'ES', 'JP', 'SG', 'SE'],
                          rnd('country', account_num, 0))
            WHEN rnd('country', account_num, 0) < 0.50 THEN 'US'
            WHEN rnd('country', account_num, 0) < 0.65 THEN 'GB'
            WHEN rnd('country', account_num, 0) < 0.77 THEN 'DE'
            WHEN rnd('country', account_num, 0) < 0.85 THEN 'NL'
            ELSE 'CA'
        END AS true_country,
        CASE
            WHEN planted_segment = 'icp' THEN 'cloud'
            WHEN anti_icp_reason = 'on_prem' THEN 'on_prem'
            WHEN broken_rule = 'deployment' OR rnd('deploy', account_num, 0) >= 0.7 THEN 'hybrid'
            ELSE 'cloud'
        END AS true_deployment,
        CASE
            WHEN planted_segment = 'icp' THEN true
            WHEN broken_rule = 'tech_stack' THEN false
            ELSE rnd('modern', account_num, 0) < 0.45
        END AS has_modern_stack,
        CASE
            WHEN planted_segment = 'icp' THEN
                CASE WHEN rnd('fund', account_num, 0) < 0.35 THEN 'series_a'
                     WHEN rnd('fund', account_num, 0) < 0.70 THEN 'series_b'
                     ELSE 'series_c_plus' END
            WHEN broken_rule = 'funding_stage' THEN
                CASE WHEN rnd('fund', account_num, 0) < 0.45 THEN 'bootstrapped'
                     WHEN rnd('fund', account_num, 0) < 0.80 THEN 'seed'
                     ELSE 'public' END
            WHEN rnd('fund', account_num, 0) < 0.27 THEN 'bootstrapped'
            WHEN rnd('fund', account_num, 0) < 0.48 THEN 'seed'
            WHEN rnd('fund', account_num, 0) < 0.67 THEN 'series_a'
            WHEN rnd('fund', account_num, 0) < 0.83 THEN 'series_b'
            WHEN rnd('fund', account_num, 0) < 0.93 THEN 'series_c_plus'
            ELSE 'public'
        END AS funding_v0
    FROM segmented
), money AS (
    SELECT
        *,
        CASE true_country WHEN 'GB' THEN 'GBP' WHEN 'DE' THEN 'EUR' WHEN 'NL' THEN 'EUR'
             WHEN 'FR' THEN 'EUR' WHEN 'ES' THEN 'EUR' ELSE 'USD' END AS currency,
        CASE true_country WHEN 'GB' THEN 1.27 WHEN 'DE' THEN 1.08 WHEN 'NL' THEN 1.08
             WHEN 'FR' THEN 1.08 WHEN 'ES' THEN 1.08 ELSE 1.0 END AS usd_per_unit,
        CASE
            WHEN anti_icp_reason = 'too_small' THEN 49 + rnd('mrr', account_num, 0) * 150
            ELSE least(30000, greatest(99, employees * (1.5 + 3 * rnd('mrr', account_num, 0))))
                 * CASE WHEN planted_segment = 'icp' THEN 1.2 ELSE 1.0 END
        END AS mrr_base_usd,
        CASE
            WHEN is_duplicate OR rnd('n_opps', account_num, 0) < 0.12 THEN 0
            ELSE 1 + (rnd('n_opps_2', account_num, 0) < 0.35)::INT
                   + (rnd('n_opps_3', account_num, 0) < 0.12)::INT
        END AS n_opps,
        days(1 + rnd('first_opp', account_num, 0) * 150) AS first_opp_offset,
        days(90 + rnd('opp_gap', account_num, 0) * 300) AS opp_gap,
        CASE WHEN NOT is_duplicate AND getvariable('has_deltas')
                  AND created_at < getvariable('first_cutoff')
                  AND rnd('refresh', account_num, 0) < 0.06
             THEN getvariable('first_cutoff') + floor(rnd('refresh_at', account_num, 0)
                  * (getvariable('last_cutoff') - getvariable('first_cutoff')))::BIGINT
        END AS refresh_at,
        CASE WHEN is_duplicate
             THEN getvariable('first_cutoff') + floor(rnd('deleted_at', account_num, 0)
                  * (getvariable('last_cutoff') - getvariable('first_cutoff')))::BIGINT
        END AS deleted_at
    FROM firmographics
), versions AS (
    SELECT
        *,
        initial_touch(created_at, coalesce(refresh_at, deleted_at),
                      rnd('touch', account_num, 0)) AS initial_updated_at,
        round(employees * (0.004 + 0.05 * intent * intent)
              * (0.5 + rnd('roles', account_num, 0)))::BIGINT AS open_roles_v0,
        -- Bands keep an enriched account in its segment (1-19, 20-99, 100-1000, >1000).
        CASE
            WHEN employees < 20 THEN least(19, greatest(1, round(employees * (0.85
                + 0.5 * rnd('emp_v1', account_num, 0)))))
            WHEN employees < 100 THEN least(99, greatest(20, round(employees * (0.85
                + 0.5 * rnd('emp_v1', account_num, 0)))))
            WHEN employees <= 1000 THEN least(1000, greatest(100, round(employees * (0.85
                + 0.5 * rnd('emp_v1', account_num, 0)))))
            ELSE greatest(1001, round(employees * (0.85 + 0.5 * rnd('emp_v1', account_num, 0))))
        END::BIGINT AS employees_v1,
        -- A new round only moves series_a -> b -> c_plus, so the planted segment holds.
        intent > 0.5 AND funding_v0 IN ('series_a', 'series_b')
            AND rnd('new_round', account_num, 0) < 0.5 AS has_new_round
    FROM money
), named AS (
    SELECT
        *,
        pick(['Blue', 'North', 'Bright', 'Silver', 'Quantum', 'Apex', 'Cedar', 'Summit',
              'Nimbus', 'Vertex', 'Harbor', 'Granite', 'Crimson', 'Lumen', 'Nova', 'Orbit',
              'Pioneer', 'Redwood', 'Sapphire', 'Tidal', 'Atlas', 'Beacon', 'Cobalt', 'Delta',
              'Ember', 'Falcon', 'Glacier', 'Horizon', 'Ionic', 'Juniper', 'Keystone',
              'Lattice', 'Meridian', 'Nexus', 'Onyx', 'Pinnacle', 'Quill', 'Radiant',
              'Sterling', 'Trident', 'Vantage', 'Willow', 'Zenith', 'Bärenwald', 'Élan',
              'Fjord', 'Kestrel', 'Larch', 'Mistral', 'Nordlicht'],
             rnd('name_1', account_num, 0)) AS name_first,
        CASE
            WHEN business_model = 'agency' THEN
                pick(['Creative', 'Media', 'Digital', 'Studio', 'Partners', 'Collective',
                      'Agency', 'Marketing'], rnd('name_2', account_num, 0))
            WHEN business_model = 'b2b_saas' OR rnd('name_kind', account_num, 0) < 0.3 THEN
                pick(['Analytics', 'Systems', 'Labs', 'Cloud', 'Software', 'Data', 'Networks',
                      'Technologies', 'Platforms', 'Logic', 'Metrics', 'Stack', 'Works',
                      'Dynamics', 'Security', 'AI'], rnd('name_2', account_num, 0))
            ELSE
                pick(['Logistics', 'Health', 'Retail', 'Manufacturing', 'Foods', 'Learning',
                      'Energy', 'Group', 'Supply', 'Outfitters', 'Holdings', 'Realty'],
                     rnd('name_2', account_num, 0))
        END AS name_second,
        CASE true_country
            WHEN 'US' THEN pick(['Inc.', 'LLC', 'Corp.', ''], rnd('legal', account_num, 0))
            WHEN 'CA' THEN pick(['Inc.', 'Ltd.', ''], rnd('legal', account_num, 0))
            WHEN 'GB' THEN pick(['Ltd', 'Limited', 'plc', ''], rnd('legal', account_num, 0))
            WHEN 'DE' THEN pick(['GmbH', 'AG', 'GmbH & Co. KG'], rnd('legal', account_num, 0))
            WHEN 'NL' THEN pick(['B.V.', 'N.V.'], rnd('legal', account_num, 0))
            WHEN 'FR' THEN pick(['SAS', 'SA'], rnd('legal', account_num, 0))
            WHEN 'AU' THEN pick(['Pty Ltd', ''], rnd('legal', account_num, 0))
            WHEN 'IN' THEN pick(['Pvt Ltd', ''], rnd('legal', account_num, 0))
            WHEN 'ES' THEN pick(['S.L.', 'S.A.'], rnd('legal', account_num, 0))
            WHEN 'SE' THEN pick(['AB', ''], rnd('legal', account_num, 0))
            ELSE ''
        END AS legal_form,
        CASE true_country WHEN 'GB' THEN '.co.uk' WHEN 'DE' THEN '.de' WHEN 'NL' THEN '.nl'
             WHEN 'FR' THEN '.fr' WHEN 'ES' THEN '.es' WHEN 'AU' THEN '.com.au'
             WHEN 'IN' THEN '.in' WHEN 'SE' THEN '.se' WHEN 'JP' THEN '.jp'
             ELSE CASE WHEN business_model = 'b2b_saas'
                       AND rnd('tld', account_num, 0) < 0.4 THEN '.io' ELSE '.com' END
        END AS tld,
        CASE industry_key
            WHEN 'software' THEN ['Software', 'software', 'SOFTWARE', 'Software ', ' software']
            WHEN 'fintech' THEN ['Fintech', 'FinTech', 'fintech', 'Fin Tech', 'FINTECH',
                                 'Fin-Tech']
            WHEN 'financial_services' THEN ['Financial Services', 'financial services',
                                            'Financial services', 'FINANCIAL SERVICES']
            WHEN 'healthcare' THEN ['Healthcare', 'Health Care', 'healthcare', 'HealthCare']
            WHEN 'retail' THEN ['Retail', 'retail', 'RETAIL', 'Retail ']
            WHEN 'manufacturing' THEN ['Manufacturing', 'manufacturing', 'MANUFACTURING']
            WHEN 'marketing' THEN ['Marketing', 'marketing', 'MARKETING', ' Marketing']
            WHEN 'education' THEN ['Education', 'education', 'EDUCATION']
            WHEN 'logistics' THEN ['Logistics', 'logistics', 'LOGISTICS']
            WHEN 'media' THEN ['Media', 'media', 'MEDIA']
            WHEN 'real_estate' THEN ['Real Estate', 'real estate', 'Real-Estate', 'REAL ESTATE']
        END AS industry_spellings,
        concat_ws(';',
            CASE WHEN rnd('t_salesforce', account_num, 0) < 0.5 THEN 'salesforce' END,
            CASE WHEN rnd('t_hubspot', account_num, 0) < 0.35 THEN 'hubspot' END,
            CASE WHEN has_modern_stack AND (rnd('t_modern', account_num, 0) < 1 / 3
                 OR rnd('t_snowflake', account_num, 0) < 0.3) THEN 'snowflake' END,
            CASE WHEN has_modern_stack AND (rnd('t_modern', account_num, 0) BETWEEN 1 / 3 AND 2 / 3
                 OR rnd('t_dbt', account_num, 0) < 0.3) THEN 'dbt' END,
            CASE WHEN has_modern_stack AND (rnd('t_modern', account_num, 0) > 2 / 3
                 OR rnd('t_segment', account_num, 0) < 0.3) THEN 'segment' END,
            CASE WHEN rnd('t_aws', account_num, 0) < 0.45 THEN 'aws' END,
            CASE WHEN rnd('t_gcp', account_num, 0) < 0.2 THEN 'gcp' END,
            CASE WHEN rnd('t_azure', account_num, 0) < 0.15 THEN 'azure' END,
            CASE WHEN rnd('t_bigquery', account_num, 0) < 0.1 THEN 'bigquery' END,
            CASE WHEN rnd('t_postgres', account_num, 0) < 0.3 THEN 'postgres' END,
            CASE WHEN rnd('t_mysql', account_num, 0) < 0.15 THEN 'mysql' END,
            CASE WHEN rnd('t_oracle', account_num, 0)
                 < CASE WHEN true_deployment = 'on_prem' THEN 0.5 ELSE 0.04 END THEN 'oracle' END,
            CASE WHEN rnd('t_sap', account_num, 0)
                 < CASE WHEN true_deployment = 'on_prem' THEN 0.3 ELSE 0.03 END THEN 'sap' END,
            CASE WHEN rnd('t_jira', account_num, 0) < 0.35 THEN 'jira' END,
            CASE WHEN rnd('t_zendesk', account_num, 0) < 0.25 THEN 'zendesk' END,
            CASE WHEN rnd('t_shopify', account_num, 0)
                 < CASE WHEN business_model = 'ecommerce' THEN 0.6 ELSE 0.02 END
                 THEN 'shopify' END,
            CASE WHEN rnd('t_wordpress', account_num, 0)
                 < CASE WHEN business_model = 'agency' THEN 0.5 ELSE 0.05 END
                 THEN 'wordpress' END
        ) AS tools
    FROM versions
)
SELECT
    account_num,
    'ACC-' || lpad(account_num::VARCHAR, 7, '0') AS account_id,
    planted_segment,
    anti_icp_reason,
    is_duplicate,
    intent,
    created_at,
    initial_updated_at,
    refresh_at,
    deleted_at,
    coalesce(refresh_at, deleted_at) AS changed_at,
    -- Displayed (messy) attributes; the truth above is unaffected by them.
    CASE
        WHEN rnd('tricky_name', account_num, 0) < 0.003 THEN
            pick(['Alpha, Beta & Gamma Ltd', 'The "Quoted" Widget Co.', 'Semi;Colon Systems',
                  'Double--Dash Data', 'さくらデータ株式会社', 'Облако Софт',
                  'Δέλτα Analytics', '数据云科技有限公司', 'Zürich Präzision AG',
                  'O''Hare Logistics'], rnd('tricky_pick', account_num, 0))
        ELSE name_first || ' ' || name_second || CASE WHEN legal_form = '' THEN ''
             ELSE ' ' || legal_form END
             || CASE WHEN rnd('name_space', account_num, 0) < 0.01 THEN ' ' ELSE '' END
    END AS account_name,
    CASE WHEN rnd('show_domain', account_num, 0) >= 0.04 THEN
        lower(regexp_replace(strip_accents(name_first || name_second), '[^A-Za-z0-9]', '', 'g'))
        || tld END AS domain,
    CASE WHEN rnd('show_industry', account_num, 0) >= 0.05 THEN
        CASE WHEN rnd('spelling', account_num, 0) < 0.6 THEN industry_spellings[1]
             ELSE industry_spellings[2 + floor(rnd('spelling_pick', account_num, 0)
                  * (len(industry_spellings) - 1))::BIGINT] END
    END AS industry,
    CASE WHEN rnd('show_employees', account_num, 0) >= 0.06 THEN employees END
        AS employee_count_v0,
    CASE WHEN rnd('show_employees', account_num, 0) >= 0.06 THEN employees_v1 END
        AS employee_count_v1,
    CASE WHEN rnd('show_revenue', account_num, 0) >= 0.15 THEN
        (round(employees * (60000 + 190000 * rnd('revenue', account_num, 0))
               / usd_per_unit / 1000) * 1000)::DECIMAL(18, 2) END AS annual_revenue,
    currency,
    CASE WHEN rnd('show_country', account_num, 0) >= 0.03 THEN true_country END AS country,
    CASE WHEN rnd('show_bm', account_num, 0) >= 0.03 THEN business_model END AS business_model,
    CASE WHEN rnd('show_deploy', account_num, 0) >= 0.04 THEN true_deployment END AS deployment,
    CASE WHEN rnd('show_stack', account_num, 0) >= 0.07 AND tools <> '' THEN
        CASE WHEN rnd('stack_style', account_num, 0) < 0.10 THEN replace(tools, ';', '; ')
             WHEN rnd('stack_style', account_num, 0) < 0.25 THEN array_to_string(
                 list_transform(string_split(tools, ';'), lambda t: upper(t[1]) || t[2:]), ';')
             ELSE tools END
    END AS tech_stack,
    rnd('show_funding', account_num, 0) >= 0.05 AS shows_funding,
    funding_v0,
    CASE WHEN has_new_round THEN
        CASE funding_v0 WHEN 'series_a' THEN 'series_b' ELSE 'series_c_plus' END
        ELSE funding_v0 END AS funding_v1,
    CASE WHEN funding_v0 IN ('seed', 'series_a', 'series_b', 'series_c_plus') THEN
        ts(initial_updated_at - days(15 + (1 - intent) * 600
                                     + 200 * rnd('funded', account_num, 0)))::DATE
    END AS last_funding_v0,
    CASE WHEN has_new_round AND refresh_at IS NOT NULL THEN
        ts(refresh_at - days(floor(10 * rnd('funded_v1', account_num, 0))))::DATE
    END AS new_round_at,
    rnd('show_roles', account_num, 0) >= 0.05 AS shows_open_roles,
    open_roles_v0,
    round(open_roles_v0 * (0.6 + 1.2 * rnd('roles_v1', account_num, 0))
          + intent * employees * 0.01)::BIGINT AS open_roles_v1,
    usd_per_unit,
    mrr_base_usd,
    n_opps,
    first_opp_offset,
    opp_gap
FROM named
"""

_OPPORTUNITIES = """
CREATE TABLE opportunity_events AS
WITH expanded AS (
    SELECT account_num, account_id, planted_segment, intent, currency, usd_per_unit,
           mrr_base_usd, created_at AS account_created_at, first_opp_offset, opp_gap,
           unnest(range(1, n_opps + 1)) AS opp_seq
    FROM account_truth
    WHERE n_opps > 0
), timed AS (
    SELECT
        *,
        opp_created(account_created_at, first_opp_offset, opp_gap, account_num, opp_seq)
            AS created_at,
        days((10 + pow(rnd('cycle', account_num, opp_seq), 1.3) * 170)
             * CASE planted_segment WHEN 'icp' THEN 0.7 WHEN 'anti_icp' THEN 1.1 ELSE 1.0 END)
            AS sales_cycle
    FROM expanded
), closed AS (
    SELECT
        *,
        CASE WHEN created_at + sales_cycle < getvariable('last_cutoff')
             THEN created_at + sales_cycle END AS closed_at,
        is_won_draw(planted_segment, intent, account_num, opp_seq) AS is_won
    FROM timed
    WHERE created_at < getvariable('last_cutoff')
)
SELECT
    account_num,
    opp_seq,
    'OPP-' || lpad(account_num::VARCHAR, 7, '0') || '-' || opp_seq AS opportunity_id,
    account_id,
    created_at,
    closed_at,
    closed_at AS changed_at,
    initial_touch(created_at, closed_at, rnd('opp_touch', account_num, opp_seq))
        AS initial_updated_at,
    is_won,
    CASE WHEN rnd('show_amount', account_num, opp_seq) >= 0.04 THEN
        round(mrr_base_usd * 12 * (0.8 + 0.4 * rnd('amount', account_num, opp_seq))
              * CASE WHEN opp_seq = 1 THEN 1.0 ELSE 0.35 END / usd_per_unit, 2)::DECIMAL(18, 2)
    END AS amount,
    currency,
    CASE WHEN NOT is_won AND rnd('show_lost', account_num, opp_seq) >= 0.15 THEN
        pick(['price', 'competitor', 'no_decision', 'timing', 'missing_feature', 'budget'],
             rnd('lost_reason', account_num, opp_seq))
    END AS final_lost_reason
FROM closed
"""

_SUBSCRIPTIONS = """
CREATE TABLE subscription_events AS
WITH first_win AS (
    SELECT account_num, min(closed_at) AS won_at
    FROM opportunity_events
    WHERE is_won AND closed_at IS NOT NULL
    GROUP BY account_num
), started AS (
    SELECT
        a.account_num, a.account_id, a.planted_segment, a.currency, a.usd_per_unit,
        a.mrr_base_usd,
        w.won_at + floor(rnd('start_lag', a.account_num, 0) * 3 * 86400)::BIGINT AS started_at,
        rnd('trial', a.account_num, 0) < 0.3 AS has_trial,
        greatest(days(20), CASE a.planted_segment
            WHEN 'icp' THEN days(exponential(rnd('life', a.account_num, 0), 2600))
            WHEN 'neutral' THEN days(exponential(rnd('life', a.account_num, 0), 900))
            ELSE CASE WHEN rnd('fast_churn', a.account_num, 0) < 0.55
                      THEN days(20 + 70 * rnd('life', a.account_num, 0))
                      ELSE days(20 + exponential(rnd('life', a.account_num, 0), 365)) END
        END) AS lifetime,
        rnd('payment_failure', a.account_num, 0) < CASE a.planted_segment
            WHEN 'icp' THEN 0.01 WHEN 'neutral' THEN 0.08 ELSE 0.5 END AS has_payment_failure,
        CASE a.planted_segment
            WHEN 'icp' THEN days(150 + 150 * rnd('exp_step', a.account_num, 0))
            WHEN 'neutral' THEN days(240 + 300 * rnd('exp_step', a.account_num, 0))
            ELSE days(720 + 780 * rnd('exp_step', a.account_num, 0))
        END AS expansion_interval,
        CASE a.planted_segment
            WHEN 'icp' THEN 0.15 + 0.20 * rnd('exp_rate', a.account_num, 0)
            WHEN 'neutral' THEN 0.05 + 0.15 * rnd('exp_rate', a.account_num, 0)
            ELSE 0.10 * rnd('exp_rate', a.account_num, 0)
        END AS expansion_rate
    FROM account_truth AS a
    INNER JOIN first_win AS w ON w.account_num = a.account_num
), lifecycle AS (
    SELECT
        *,
        CASE WHEN has_trial THEN started_at + days(14) END AS trial_end_at,
        started_at + CASE WHEN has_trial THEN days(14) ELSE 0 END AS billing_start,
        CASE WHEN started_at + lifetime < getvariable('last_cutoff')
             THEN started_at + lifetime END AS ended_at
    FROM started
    WHERE started_at < getvariable('last_cutoff')
)
SELECT
    *,
    'SUB-' || lpad(account_num::VARCHAR, 7, '0') AS subscription_id,
    CASE
        WHEN has_payment_failure AND ended_at IS NOT NULL
             AND ended_at - days(21) > billing_start THEN ended_at - days(21)
        WHEN has_payment_failure AND ended_at IS NULL
             AND rnd('open_past_due', account_num, 0) < 0.3
             AND getvariable('last_cutoff') - days(20 * rnd('past_due_at', account_num, 0))
                 > billing_start
            THEN getvariable('last_cutoff')
                 - days(20 * rnd('past_due_at', account_num, 0))
    END AS past_due_at
FROM lifecycle
"""

_INVOICES = """
CREATE TABLE invoice_events AS
WITH billed AS (
    SELECT
        *,
        coalesce(ended_at, getvariable('last_cutoff')) AS billing_end
    FROM subscription_events
), months AS (
    SELECT
        *,
        unnest(range(0, datediff('month', ts(billing_start), ts(billing_end)) + 2))
            AS month_index
    FROM billed
    WHERE billing_start < billing_end
), issued AS (
    SELECT
        *,
        epoch(ts(billing_start) + to_months(month_index))::BIGINT AS issued_at
    FROM months
), outcomes AS (
    SELECT
        *,
        CASE
            WHEN past_due_at IS NOT NULL AND issued_at >= past_due_at - days(30)
                THEN 'uncollectible'
            WHEN rnd('void', account_num, month_index) < 0.01 THEN 'void'
            ELSE 'paid'
        END AS outcome
    FROM issued
    WHERE issued_at < billing_end
)
SELECT
    account_num,
    month_index + 1 AS invoice_seq,
    'INV-' || lpad(account_num::VARCHAR, 7, '0') || '-' || lpad((month_index + 1)::VARCHAR, 4, '0')
        AS invoice_id,
    account_id,
    subscription_id,
    issued_at,
    round(mrr_base_usd
          * pow(1 + expansion_rate,
                expansion_steps(issued_at, billing_start, ended_at, expansion_interval))
          / usd_per_unit, 2)::DECIMAL(18, 2) AS amount,
    currency,
    outcome,
    -- Uncollectible invoices are written off when the subscription is canceled; until then
    -- (and for every invoice before it is paid) they are open.
    CASE outcome
        WHEN 'uncollectible' THEN ended_at
        WHEN 'void' THEN issued_at + days(1 + 4 * rnd('void_at', account_num, month_index))
        ELSE issued_at + days(least(60, 0.2 + exponential(rnd('pay', account_num, month_index),
            CASE planted_segment WHEN 'anti_icp' THEN 12 ELSE 6 END)))
    END AS resolved_at
FROM outcomes
"""

_TICKETS = """
CREATE TABLE ticket_events AS
WITH windowed AS (
    SELECT
        account_num, account_id, planted_segment, started_at,
        coalesce(ended_at, getvariable('last_cutoff')) AS support_end
    FROM subscription_events
), counted AS (
    SELECT
        *,
        least(500, floor(
            CASE planted_segment WHEN 'icp' THEN 0.25 WHEN 'neutral' THEN 0.5 ELSE 1.6 END
            * (support_end - started_at) / days(30)
            * (0.6 + 0.8 * rnd('n_tickets', account_num, 0))
            + rnd('n_tickets_extra', account_num, 0)))::BIGINT AS n_tickets
    FROM windowed
), expanded AS (
    SELECT *, unnest(range(n_tickets)) AS ticket_index FROM counted
), drawn AS (
    SELECT
        *,
        started_at + floor(rnd('ticket_at', account_num, ticket_index)
                           * (support_end - started_at))::BIGINT AS created_at,
        rnd('priority', account_num, ticket_index) AS u_priority,
        rnd('csat', account_num, ticket_index) AS u_csat
    FROM expanded
)
SELECT
    account_num,
    ticket_index + 1 AS ticket_seq,
    'TKT-' || lpad(account_num::VARCHAR, 7, '0') || '-' || lpad((ticket_index + 1)::VARCHAR, 4, '0')
        AS ticket_id,
    account_id,
    created_at,
    created_at + 60 + floor(3600 * exponential(rnd('solve', account_num, ticket_index),
        CASE planted_segment WHEN 'icp' THEN 12 WHEN 'neutral' THEN 24 ELSE 48 END))::BIGINT
        AS solved_at,
    CASE
        WHEN rnd('show_priority', account_num, ticket_index) < 0.05 THEN NULL
        WHEN planted_segment = 'icp' THEN
            CASE WHEN u_priority < 0.03 THEN 'urgent' WHEN u_priority < 0.15 THEN 'high'
                 WHEN u_priority < 0.70 THEN 'normal' ELSE 'low' END
        WHEN planted_segment = 'neutral' THEN
            CASE WHEN u_priority < 0.08 THEN 'urgent' WHEN u_priority < 0.28 THEN 'high'
                 WHEN u_priority < 0.78 THEN 'normal' ELSE 'low' END
        ELSE
            CASE WHEN u_priority < 0.25 THEN 'urgent' WHEN u_priority < 0.55 THEN 'high'
                 WHEN u_priority < 0.90 THEN 'normal' ELSE 'low' END
    END AS priority,
    CASE
        WHEN planted_segment = 'anti_icp' AND rnd('billing_ticket', account_num, ticket_index) < 0.3
            THEN 'billing'
        ELSE pick(['how_to', 'bug', 'billing', 'integration', 'performance', 'onboarding',
                   'feature_request'], rnd('category', account_num, ticket_index))
    END AS category,
    rnd('pending', account_num, ticket_index) < 0.3 AS is_pending_while_open,
    CASE
        WHEN rnd('responded', account_num, ticket_index) >= 0.55 THEN NULL
        WHEN planted_segment = 'icp' THEN
            CASE WHEN u_csat < 0.55 THEN 5 WHEN u_csat < 0.85 THEN 4 WHEN u_csat < 0.95 THEN 3
                 WHEN u_csat < 0.98 THEN 2 ELSE 1 END
        WHEN planted_segment = 'neutral' THEN
            CASE WHEN u_csat < 0.30 THEN 5 WHEN u_csat < 0.65 THEN 4 WHEN u_csat < 0.85 THEN 3
                 WHEN u_csat < 0.95 THEN 2 ELSE 1 END
        ELSE
            CASE WHEN u_csat < 0.05 THEN 5 WHEN u_csat < 0.15 THEN 4 WHEN u_csat < 0.40 THEN 3
                 WHEN u_csat < 0.70 THEN 2 ELSE 1 END
    END::BIGINT AS final_csat
FROM drawn
"""

_ACTIVITIES = """
CREATE TABLE activity_events AS
WITH counted AS (
    SELECT
        account_num, account_id, planted_segment, created_at AS account_created_at, intent,
        n_opps, first_opp_offset, opp_gap,
        1 + floor(rnd('n_activities', account_num, 0) * 8 * (0.4 + intent))::BIGINT
            AS n_activities
    FROM account_truth
    WHERE NOT is_duplicate
), expanded AS (
    SELECT *, unnest(range(n_activities)) AS activity_index FROM counted
), targeted AS (
    SELECT
        *,
        1 + floor(rnd('anchor_opp', account_num, activity_index) * n_opps)::BIGINT AS anchor_seq
    FROM expanded
), anchored AS (
    SELECT
        *,
        -- Buyers research, ask for demos and meet before their opportunities open, more so
        -- with high intent and before deals they go on to win.
        CASE WHEN n_opps > 0 AND rnd('anchored', account_num, activity_index)
                  < 0.1 + 0.4 * intent
                    + CASE WHEN is_won_draw(planted_segment, intent, account_num, anchor_seq)
                           THEN 0.35 ELSE 0 END
             THEN opp_created(account_created_at, first_opp_offset, opp_gap, account_num,
                              anchor_seq)
        END AS anchor_at
    FROM targeted
), placed AS (
    SELECT
        *,
        anchor_at IS NOT NULL AND anchor_at < getvariable('last_cutoff') AS is_buying_signal,
        rnd('activity_type', account_num, activity_index) AS u_type
    FROM anchored
)
SELECT
    account_num,
    activity_index + 1 AS activity_seq,
    'ACT-' || lpad(account_num::VARCHAR, 7, '0') || '-'
        || lpad((activity_index + 1)::VARCHAR, 4, '0') AS activity_id,
    account_id,
    CASE WHEN is_buying_signal THEN
        greatest(account_created_at, anchor_at
                 - days(45 * rnd('lead_time', account_num, activity_index)))
    ELSE account_created_at + floor(rnd('activity_at', account_num, activity_index)
         * (getvariable('last_cutoff') - account_created_at))::BIGINT
    END AS occurred_at,
    CASE WHEN is_buying_signal THEN
        CASE WHEN u_type < 0.30 THEN 'demo_request' WHEN u_type < 0.65 THEN 'pricing_page_visit'
             WHEN u_type < 0.90 THEN 'meeting' ELSE 'webinar' END
    ELSE
        CASE WHEN u_type < 0.45 THEN 'email_open' WHEN u_type < 0.60 THEN 'content_download'
             WHEN u_type < 0.70 THEN 'email_reply' WHEN u_type < 0.80 THEN 'webinar'
             WHEN u_type < 0.88 THEN 'pricing_page_visit' WHEN u_type < 0.92 THEN 'demo_request'
             ELSE 'meeting' END
    END AS activity_type
FROM placed
"""

_FX_RATES = """
CREATE TABLE fx_rates AS
WITH days AS (
    SELECT range AS day_index, ts(getvariable('fx_first_day') + range * 86400)::DATE AS date
    FROM range(getvariable('fx_days'))
), currencies AS (
    SELECT * FROM (VALUES ('EUR', 1.08, 0.0), ('GBP', 1.27, 1.7)) AS c(currency, base, phase)
)
SELECT
    d.date,
    c.currency,
    round(c.base * (1 + 0.06 * sin(d.day_index / 150.0 + c.phase)
                    + 0.02 * sin(d.day_index / 23.0 + 2 * c.phase)
                    + 0.004 * (rnd('fx', d.day_index, c.currency) - 0.5)), 6)::DECIMAL(12, 6)
        AS usd_per_unit
FROM days AS d
CROSS JOIN currencies AS c
"""

_BUILD_STATEMENTS: tuple[str, ...] = (
    *[s.strip() for s in _MACROS.split(";\n") if s.strip()],
    _ACCOUNTS,
    _OPPORTUNITIES,
    _SUBSCRIPTIONS,
    _INVOICES,
    _TICKETS,
    _ACTIVITIES,
    _FX_RATES,
)

# --------------------------------------------------------------------------------------
# Writing exports: the state of each row at the export's cutoff ($cutoff, exclusive)
# --------------------------------------------------------------------------------------

#: Per entity: SQL expression of each contract column, evaluated against the entity's table
#: with ``$cutoff`` (end of the export day) bound.
_ENTITY_EXPRESSIONS: dict[str, dict[str, str]] = {
    "crm/accounts": {
        "account_id": "account_id",
        "account_name": "account_name",
        "domain": "domain",
        "industry": "industry",
        "employee_count": "CASE WHEN refresh_at < $cutoff THEN employee_count_v1 "
        "ELSE employee_count_v0 END",
        "annual_revenue": "annual_revenue",
        "currency": "currency",
        "country": "country",
        "business_model": "business_model",
        "deployment": "deployment",
        "tech_stack": "tech_stack",
        "funding_stage": "CASE WHEN NOT shows_funding THEN NULL WHEN refresh_at < $cutoff "
        "THEN funding_v1 ELSE funding_v0 END",
        "last_funding_at": "CASE WHEN NOT shows_funding THEN NULL "
        "WHEN refresh_at < $cutoff AND new_round_at IS NOT NULL THEN new_round_at "
        "ELSE last_funding_v0 END",
        "open_roles": "CASE WHEN NOT shows_open_roles THEN NULL WHEN refresh_at < $cutoff "
        "THEN open_roles_v1 ELSE open_roles_v0 END",
        # The generator's churn lives in the subscriptions; the column stays empty.
        "churned_at": "CAST(NULL AS VARCHAR)",
        "created_at": "ts(created_at)",
        "updated_at": "ts(updated_at_at_cutoff)",
        "is_deleted": "coalesce(deleted_at < $cutoff, false)",
    },
    "crm/opportunities": {
        "opportunity_id": "opportunity_id",
        "account_id": "account_id",
        "created_at": "ts(created_at)",
        "closed_at": "CASE WHEN closed_at < $cutoff THEN ts(closed_at) END",
        "stage": "CASE WHEN closed_at < $cutoff THEN CASE WHEN is_won THEN 'won' ELSE 'lost' END "
        "ELSE 'open' END",
        "amount": "amount",
        "currency": "currency",
        "lost_reason": "CASE WHEN closed_at < $cutoff THEN final_lost_reason END",
        "updated_at": "ts(updated_at_at_cutoff)",
        "is_deleted": "false",
    },
    "crm/activities": {
        "activity_id": "activity_id",
        "account_id": "account_id",
        "occurred_at": "ts(occurred_at)",
        "activity_type": "activity_type",
        "updated_at": "ts(occurred_at)",
    },
    "billing/subscriptions": {
        "subscription_id": "subscription_id",
        "account_id": "account_id",
        "plan": "CASE WHEN mrr_usd_at_cutoff < 300 THEN 'starter' "
        "WHEN mrr_usd_at_cutoff < 2500 THEN 'growth' ELSE 'enterprise' END",
        "mrr": "round(mrr_usd_at_cutoff / usd_per_unit, 2)::DECIMAL(18, 2)",
        "currency": "currency",
        "started_at": "ts(started_at)",
        "ended_at": "CASE WHEN ended_at < $cutoff THEN ts(ended_at) END",
        "status": "CASE WHEN ended_at < $cutoff THEN 'canceled' "
        "WHEN past_due_at < $cutoff THEN 'past_due' "
        "WHEN trial_end_at >= $cutoff THEN 'trialing' ELSE 'active' END",
        "updated_at": "ts(updated_at_at_cutoff)",
        "is_deleted": "false",
    },
    "billing/invoices": {
        "invoice_id": "invoice_id",
        "account_id": "account_id",
        "subscription_id": "subscription_id",
        "issued_at": "ts(issued_at)",
        "amount": "amount",
        "currency": "currency",
        "status": "CASE WHEN resolved_at < $cutoff THEN outcome ELSE 'open' END",
        "paid_at": "CASE WHEN resolved_at < $cutoff AND outcome = 'paid' THEN ts(resolved_at) END",
        "updated_at": "ts(updated_at_at_cutoff)",
    },
    "support/tickets": {
        "ticket_id": "ticket_id",
        "account_id": "account_id",
        "created_at": "ts(created_at)",
        "solved_at": "CASE WHEN solved_at < $cutoff THEN ts(solved_at) END",
        "priority": "priority",
        "status": "CASE WHEN solved_at < $cutoff THEN 'solved' "
        "WHEN is_pending_while_open THEN 'pending' ELSE 'open' END",
        "category": "category",
        "csat": "CASE WHEN solved_at < $cutoff THEN final_csat END",
        "updated_at": "ts(updated_at_at_cutoff)",
    },
}

#: Per entity: (when the row first exists, its updated_at at $cutoff). A row is in an export
#: when it exists at the cutoff and its updated_at is not before the previous export's cutoff.
_ENTITY_TIMELINES: dict[str, tuple[str, str]] = {
    "crm/accounts": (
        "created_at",
        "CASE WHEN changed_at < $cutoff THEN changed_at ELSE initial_updated_at END",
    ),
    "crm/opportunities": (
        "created_at",
        "CASE WHEN changed_at < $cutoff THEN changed_at ELSE initial_updated_at END",
    ),
    "crm/activities": ("occurred_at", "occurred_at"),
    "billing/subscriptions": (
        "started_at",
        "greatest(started_at, "
        "CASE WHEN trial_end_at < $cutoff THEN trial_end_at END, "
        "CASE WHEN expansion_steps($cutoff, billing_start, ended_at, expansion_interval) > 0 "
        "THEN billing_start + expansion_interval "
        "* expansion_steps($cutoff, billing_start, ended_at, expansion_interval) END, "
        "CASE WHEN past_due_at < $cutoff THEN past_due_at END, "
        "CASE WHEN ended_at < $cutoff THEN ended_at END)",
    ),
    "billing/invoices": (
        "issued_at",
        "CASE WHEN resolved_at < $cutoff THEN resolved_at ELSE issued_at END",
    ),
    "support/tickets": (
        "created_at",
        "CASE WHEN solved_at < $cutoff THEN solved_at ELSE created_at END",
    ),
}

_EXTRA_STATE = {
    "billing/subscriptions": "mrr_base_usd * pow(1 + expansion_rate, expansion_steps("
    "$cutoff, billing_start, ended_at, expansion_interval)) AS mrr_usd_at_cutoff",
}


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(f'"{column}"' for column in columns)


def _export_query(entity: str, columns: Sequence[str]) -> str:
    """SELECT of one export file of ``entity``; binds ``$cutoff`` and ``$previous_cutoff``."""
    table, order_by = _ENTITY_TABLES[entity]
    exists_from, updated_at = _ENTITY_TIMELINES[entity]
    expressions = _ENTITY_EXPRESSIONS[entity]
    extra = f", {_EXTRA_STATE[entity]}" if entity in _EXTRA_STATE else ""
    selected = ",\n    ".join(f'{expressions[column]} AS "{column}"' for column in columns)
    # Only constant SQL fragments defined in this module and schema column names checked
    # against _IDENTIFIER are joined here; values are bound parameters.
    return (
        f"SELECT\n    {selected}\n"
        f"FROM (SELECT *, {updated_at} AS updated_at_at_cutoff{extra} FROM {table}\n"
        f"      WHERE {exists_from} < $cutoff) AS state\n"
        f"WHERE updated_at_at_cutoff >= $previous_cutoff\n"
        f"ORDER BY {order_by}"
    )


def _write_entity(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    columns: Sequence[str],
    path: Path,
    file_format: str,
    *,
    cutoff: int,
    previous_cutoff: int,
) -> int:
    return _copy(
        con,
        _export_query(entity, columns),
        path,
        file_format,
        {"cutoff": cutoff, "previous_cutoff": previous_cutoff},
    )


_COPY_OPTIONS = {
    "csv": "FORMAT csv, HEADER true, DELIMITER ',', "
    "TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%SZ', DATEFORMAT '%Y-%m-%d'",
    "csv.gz": "FORMAT csv, HEADER true, DELIMITER ',', COMPRESSION gzip, "
    "TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%SZ', DATEFORMAT '%Y-%m-%d'",
    "parquet": "FORMAT parquet, COMPRESSION zstd",
}


def _copy(
    con: duckdb.DuckDBPyConnection,
    query: str,
    path: Path,
    file_format: str,
    parameters: dict[str, int] | None = None,
) -> int:
    """Write ``query``'s rows to ``path``; return the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = con.execute(
        f"COPY ({query}) TO $path ({_COPY_OPTIONS[file_format]})",
        {**(parameters or {}), "path": str(path)},
    ).fetchone()
    return int(result[0]) if result else 0
