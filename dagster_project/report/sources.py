"""Where the report reads from: the published marts file, and the warehouse when it can.

The report is built from the **published** copy (``<published>/icp_marts.duckdb``), which
readers may open at any time. Only the quarantine (``raw.quarantined_rows``) is not
published; it is read from the warehouse file when that can be opened read-only (it cannot
while another process holds it: DuckDB allows one process per file). Both are attached
read-only to an in-memory DuckDB connection, so every aggregation runs inside DuckDB and
only small aggregated frames reach Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.publish import DB_FILE
from dagster_project.sql import quote_identifier, string_literal

__all__ = ["PUBLISHED", "WAREHOUSE", "ReportError", "ReportSources", "open_sources"]

#: Catalog names of the two attached files.
PUBLISHED = "published"
WAREHOUSE = "warehouse"
# DuckDB's own default is 80% of RAM; the report's queries are aggregations that stream,
# so a small limit keeps a report at 1,000,000 accounts from competing with the pipeline.
_MEMORY_LIMIT = "1GB"


class ReportError(RuntimeError):
    """The report cannot be built (no published file, an unknown as-of date, ...)."""


@dataclass(frozen=True)
class ReportSources:
    """The open connection and what it could attach.

    Attributes:
        con: An in-memory DuckDB connection with ``published`` (and maybe ``warehouse``)
            attached read-only.
        published_db: The published marts file.
        quarantine_table: The fully qualified quarantine table, or None when the warehouse
            could not be read.
        quarantine_note: Why the quarantine is missing, or where it was read from.
    """

    con: duckdb.DuckDBPyConnection
    published_db: Path
    quarantine_table: str | None
    quarantine_note: str

    def table(self, name: str) -> str:
        """The quoted name of the published mart ``name`` (schema ``marts``)."""
        return f"{quote_identifier(PUBLISHED)}.marts.{quote_identifier(name)}"


@contextmanager
def open_sources(published_db: Path, warehouse: Path | None = None) -> Iterator[ReportSources]:
    """Attach the published file (and the warehouse, if it opens) read-only.

    Args:
        published_db: ``<published>/icp_marts.duckdb``.
        warehouse: The pipeline's warehouse file, for the quarantine; optional.

    Yields:
        The sources; the connection is closed on exit.

    Raises:
        ReportError: When the published file is missing or cannot be opened.
    """
    published_db = Path(published_db)
    if not published_db.is_file():
        raise ReportError(
            f"no published marts at {published_db}: a successful run publishes them "
            f"({DB_FILE}); run `icp run` first"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = {string_literal(_MEMORY_LIMIT)}")
        try:
            con.execute(
                f"ATTACH {string_literal(published_db)} AS {quote_identifier(PUBLISHED)} "
                "(READ_ONLY)"
            )
        except duckdb.Error as error:
            raise ReportError(f"cannot open {published_db}: {error}") from error
        quarantine_table, note = _attach_warehouse(con, warehouse)
        yield ReportSources(con, published_db, quarantine_table, note)
    finally:
        con.close()


def _attach_warehouse(
    con: duckdb.DuckDBPyConnection, warehouse: Path | None
) -> tuple[str | None, str]:
    if warehouse is None:
        return None, "only the published file was given: the quarantine is not published"
    if not Path(warehouse).is_file():
        return None, f"no warehouse at {warehouse}: only the published file is available"
    try:
        con.execute(
            f"ATTACH {string_literal(warehouse)} AS {quote_identifier(WAREHOUSE)} (READ_ONLY)"
        )
    except duckdb.Error as error:
        # Most often another process (a running pipeline) holds the file.
        first_line = str(error).splitlines()[0]
        return None, (
            f"the warehouse {warehouse} could not be opened ({first_line}): only the "
            "published file is available"
        )
    # Imported here: the loader module brings pandera, seconds of import for one name.
    from dagster_project.ingest.loader import QUARANTINE_TABLE

    schema, table = QUARANTINE_TABLE.split(".")
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = $catalog AND schema_name = $schema AND table_name = $table",
        {"catalog": WAREHOUSE, "schema": schema, "table": table},
    ).fetchone()[0]
    if not exists:
        return None, f"the warehouse {warehouse} has no {QUARANTINE_TABLE}"
    qualified = ".".join(quote_identifier(part) for part in (WAREHOUSE, schema, table))
    return qualified, f"{QUARANTINE_TABLE} of {warehouse}, as the last run rebuilt it"
