"""Great Expectations suites on a published Parquet version, before it is swapped in.

The suites are declarative, in GE's own suite JSON (``schemas/expectations/<table>.json``),
and loaded with GE's API. GE 1.24 has no DuckDB engine, so each table is read from the new
Parquet version through DuckDB in Arrow batches of ``chunk_rows`` rows and validated as
pandas batches: 1,000,000 accounts never sit in memory at once. Each expectation belongs to
one of three kinds, and each kind is evaluated where its verdict over the whole table is
exact:

* **row** expectations (values not null, in a set, between bounds, pairs ordered, a regex,
  conditioned on another column): GE on every chunk; the counts of the chunks are summed
  (a row's verdict does not depend on the other rows);
* **schema** expectations (the column set): GE on one small batch with every column (the
  columns are the table's, whatever the rows); the row chunks then read only the columns
  the row expectations use;
* **whole-table** expectations (unique values, unique column combinations, the row count):
  GE when the table fits one chunk; otherwise DuckDB over the whole Parquet table, with the
  same counting as GE (every row of a duplicated value is unexpected; NULLs ignored), so a
  duplicate split across two chunks is still caught.

Values reach pandas as DuckDB reads them, except: DECIMAL as DOUBLE, DATE as ISO text
(``2026-12-01``), and nested columns (lists, structs) as their JSON text (``[]``,
``["too_small"]``), because GE's pandas engine compares scalars.

GE is imported inside the functions that use it (it takes seconds to import), never when the
Dagster definitions load; its context is ephemeral (nothing is written to the repository)
and sends no analytics.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from dagster_project.settings import PROJECT_ROOT
from dagster_project.sql import quote_identifier, string_literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "QUALITY_DOCS_DIR",
    "SUITES_DIR",
    "VALIDATED_TABLES",
    "ExpectationOutcome",
    "QualityReport",
    "TableOutcome",
    "load_suite_document",
    "suite_parameters",
    "validate_published_tables",
]

SUITES_DIR = PROJECT_ROOT / "schemas" / "expectations"
VALIDATED_TABLES: tuple[str, ...] = ("account_fit_scores", "fct_account_metrics", "icp_profile")
# 250k rows of the widest validated projection stay well under 1 GB in pandas.
DEFAULT_CHUNK_ROWS = 250_000
# Data Docs of the last validation, relative to the published folder.
QUALITY_DOCS_DIR = Path("report") / "quality"
_DOCS_VERSION_PREFIX = ".quality-"
_DOCS_LINK_PREFIX = ".quality-link-"
_SCHEMA_SAMPLE_ROWS = 1_000
_EXAMPLES = 5
_INDEX = "icp_suite_index"

_SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
    }
)
_WHOLE_TABLE_TYPES = frozenset(
    {
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_table_row_count_to_be_between",
    }
)
# Expectations whose verdict on the whole table is not the sum of their verdicts on chunks
# (distinct-value sets, means, quantiles, ...): a suite holding one is refused rather than
# given a wrong verdict on a large table.
_ROW_TYPE_PREFIXES = ("expect_column_values_to_", "expect_column_pair_values_")
_ROW_TYPES_EXTRA = frozenset({"expect_column_value_lengths_to_be_between"})


@dataclass(frozen=True)
class ExpectationOutcome:
    """The verdict of one expectation over a whole table."""

    expectation_type: str
    kwargs: dict[str, Any]
    success: bool
    evaluated_by: str
    element_count: int | None = None
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()
    observed_value: Any = None
    error: str | None = None
    why: str | None = None

    @property
    def label(self) -> str:
        """``expect_x(column=...)``: the expectation and the columns it is about."""
        about = {
            key: self.kwargs[key]
            for key in ("column", "column_A", "column_B", "column_list", "value_set")
            if key in self.kwargs
        }
        if "row_condition" in self.kwargs:
            about["row_condition"] = self.kwargs["row_condition"]
        return f"{self.expectation_type}({json.dumps(about, default=str)})"

    def summary(self) -> str:
        """One line: what failed, how often, with examples."""
        if self.error:
            return f"{self.label}: error {self.error}"
        if self.unexpected_count is not None:
            return (
                f"{self.label}: {self.unexpected_count} of {self.element_count} rows unexpected, "
                f"e.g. {list(self.examples)}"
            )
        return f"{self.label}: observed {self.observed_value}"


@dataclass(frozen=True)
class TableOutcome:
    """One table's suite over the whole Parquet table."""

    table: str
    suite: str
    rows: int
    chunks: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


@dataclass
class QualityReport:
    """Every suite's verdict on one Parquet version, and where its Data Docs are."""

    version: str
    tables: list[TableOutcome]
    chunk_rows: int
    seconds: float
    docs_index: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(t.success for t in self.tables)

    def failure_lines(self) -> list[str]:
        """``<table>: <expectation summary>`` per failed expectation."""
        return [f"{t.table}: {o.summary()}" for t in self.tables for o in t.failures]

    def to_metadata(self) -> dict[str, Any]:
        """Plain JSON-able facts for the Dagster asset check."""
        return {
            "version": self.version,
            "suites": [t.suite for t in self.tables],
            "expectations_evaluated": sum(len(t.outcomes) for t in self.tables),
            "expectations_failed": sum(len(t.failures) for t in self.tables),
            "rows": {t.table: t.rows for t in self.tables},
            "chunks": {t.table: t.chunks for t in self.tables},
            "chunk_rows": self.chunk_rows,
            "unexpected_counts": {
                f"{t.table}: {o.label}": o.unexpected_count
                for t in self.tables
                for o in t.outcomes
                if o.unexpected_count
            },
            "failures": self.failure_lines()[:20],
            "validation_seconds": self.seconds,
            "timings": self.timings,
            "data_docs": str(self.docs_index) if self.docs_index else None,
        }


def load_suite_document(table: str, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    """The suite JSON of ``table`` (``<suites_dir>/<table>.json``), checked to hold only
    expectations whose verdict is exact when the table is validated in chunks."""
    path = Path(suites_dir) / f"{table}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    for expectation in document.get("expectations", []):
        kind = _kind(expectation["type"])
        if kind is None:
            raise ValueError(
                f"{path.name}: {expectation['type']} cannot be validated in chunks; use a row, "
                "schema or whole-table expectation (see dagster_project/publish/quality.py)"
            )
    return document


def suite_parameters(as_of_date: date, routes: Mapping[str, str]) -> dict[str, Any]:
    """The ``$PARAMETER`` values of the suites: the as-of date being published and the routes
    of the scoring config (``routes:`` keys high, medium, low, anti_icp), so the suites read
    them instead of copying them."""
    anti_icp = routes["anti_icp"]
    pairs = [[tier, routes[tier]] for tier in ("high", "medium", "low")]
    pairs += [[tier, anti_icp] for tier in ("high", "medium", "low")]
    return {
        "as_of_date_set": [as_of_date.isoformat()],
        "routes": sorted(set(routes.values())),
        "anti_icp_route_set": [anti_icp],
        "tier_route_pairs": pairs,
    }


def validate_published_tables(
    version_dir: Path | str,
    *,
    version: str,
    parameters: Mapping[str, Any],
    docs_dir: Path | str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    tables: Sequence[str] = VALIDATED_TABLES,
    suites_dir: Path = SUITES_DIR,
) -> QualityReport:
    """Validate ``<version_dir>/<table>/**/*.parquet`` against each table's suite.

    Args:
        version_dir: a Parquet version folder (``parquet/v-...`` or its ``.tmp-v-...``).
        version: the version id, shown in the Data Docs as the run name.
        parameters: the suites' ``$PARAMETER`` values (:func:`suite_parameters`).
        docs_dir: where to write GE's Data Docs (``<published>/report/quality``); built
            aside and swapped in through a symlink, so a reader never sees half of it.
            None writes none.
        chunk_rows: rows per pandas batch; a table with more rows is validated in chunks.
        tables: the tables to validate.
        suites_dir: the folder holding ``<table>.json``.

    Returns:
        The verdict of every expectation over each whole table (never raises for a failed
        expectation: the caller decides).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    context, gx_api = _ephemeral_context()
    timings["import_and_context"] = round(time.perf_counter() - started, 3)
    version_dir = Path(version_dir)
    outcomes: list[TableOutcome] = []
    suite_results: list[tuple[str, Any]] = []
    with duckdb.connect() as con:
        for table in tables:
            table_started = time.perf_counter()
            document = load_suite_document(table, suites_dir)
            outcome, suite_result = _validate_table(
                con, context, gx_api, version_dir / table, table, document, parameters, chunk_rows
            )
            outcomes.append(outcome)
            suite_results.append((table, suite_result))
            timings[table] = round(time.perf_counter() - table_started, 3)
    report = QualityReport(
        version=version,
        tables=outcomes,
        chunk_rows=chunk_rows,
        seconds=0.0,
        timings=timings,
    )
    if docs_dir is not None:
        docs_started = time.perf_counter()
        report.docs_index = _write_data_docs(
            context, gx_api, suite_results, version, Path(docs_dir)
        )
        timings["data_docs"] = round(time.perf_counter() - docs_started, 3)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _kind(expectation_type: str) -> str | None:
    if expectation_type in _SCHEMA_TYPES:
        return "schema"
    if expectation_type in _WHOLE_TABLE_TYPES:
        return "whole_table"
    if expectation_type.startswith(_ROW_TYPE_PREFIXES) or expectation_type in _ROW_TYPES_EXTRA:
        return "row"
    return None


def disable_great_expectations_analytics() -> None:
    """No usage statistics (GE reads the variable at import; a user's own setting stands)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def _ephemeral_context() -> tuple[Any, Any]:
    """An in-memory GE context: no files, no analytics, no progress bars."""
    disable_great_expectations_analytics()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    return context, gx


def _parquet_source(folder: Path) -> str:
    return f"read_parquet({string_literal(folder / '**' / '*.parquet')}, hive_partitioning = true)"


def _has_rows(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _column_types(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {_parquet_source(folder)}").fetchall()
    return {name: str(data_type) for name, data_type, *_ in rows}


def _pandas_expression(column: str, data_type: str) -> str:
    """How a column reaches pandas (see the module docstring)."""
    quoted = quote_identifier(column)
    upper = data_type.upper()
    if upper.startswith("DECIMAL"):
        return f"CAST({quoted} AS DOUBLE) AS {quoted}"
    if upper == "DATE":
        return f"strftime({quoted}, '%Y-%m-%d') AS {quoted}"
    if upper.endswith("[]") or upper.startswith(("STRUCT", "MAP", "UNION")):
        return f"CAST(to_json({quoted}) AS VARCHAR) AS {quoted}"
    return quoted


def _chunks(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    columns: Sequence[str],
    types: Mapping[str, str],
    chunk_rows: int,
    limit: int | None = None,
) -> Iterator[pd.DataFrame]:
    """The table's ``columns`` as pandas frames of at most ``chunk_rows`` rows, streamed."""
    import pandas as pd

    if not _has_rows(folder):
        yield pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        return
    select = ", ".join(_pandas_expression(c, types[c]) for c in columns) or "NULL AS _none"
    query = f"SELECT {select} FROM {_parquet_source(folder)}"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    import pyarrow as pa

    # to_arrow_reader streams Arrow batches (no full result in memory); they may
    # be smaller than asked, so they are gathered into chunks of up to chunk_rows rows.
    # A cursor of its own: DuckDB 2.0 refuses new work on a connection whose last execute()
    # result is unfinished, and a relation's reader avoids the extra copy of a DB-API one.
    with con.cursor() as cursor:
        reader = cursor.sql(query).to_arrow_reader(chunk_rows)
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        emitted = False
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                emitted = True
                yield pa.Table.from_batches(pending).to_pandas()
                pending, pending_rows = [], 0
        if pending or not emitted:
            yield pa.Table.from_batches(pending, schema=reader.schema).to_pandas()


def _referenced_columns(
    expectations: Sequence[dict[str, Any]], available: Sequence[str]
) -> list[str]:
    """The columns the row expectations read (their own and their row conditions')."""
    wanted: set[str] = set()
    for expectation in expectations:
        kwargs = expectation["kwargs"]
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                wanted.add(kwargs[key])
        wanted.update(kwargs.get("column_list", []))
        condition = kwargs.get("row_condition")
        if isinstance(condition, dict):
            wanted.update(_condition_columns(condition))
    # A column the table lacks is passed on (and reported by GE as missing), not dropped.
    return [c for c in available if c in wanted] + sorted(wanted.difference(available))


def _condition_columns(condition: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    column = condition.get("column")
    if isinstance(column, dict) and "name" in column:
        found.add(column["name"])
    for key in ("conditions", "left", "right"):
        value = condition.get(key)
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                found |= _condition_columns(child)
    return found


def _validate_table(
    con: duckdb.DuckDBPyConnection,
    context: Any,
    gx_api: Any,
    folder: Path,
    table: str,
    document: dict[str, Any],
    parameters: Mapping[str, Any],
    chunk_rows: int,
) -> tuple[TableOutcome, Any]:
    from great_expectations.core.expectation_suite import ExpectationSuite

    expectations = document["expectations"]
    types = _column_types(con, folder) if _has_rows(folder) else {}
    rows = (
        con.execute(f"SELECT count(*) FROM {_parquet_source(folder)}").fetchone()[0]
        if _has_rows(folder)
        else 0
    )
    single_batch = rows <= chunk_rows
    kinds = [_kind(e["type"]) for e in expectations]
    in_chunks = [
        i for i, k in enumerate(kinds) if k == "row" or (k == "whole_table" and single_batch)
    ]
    schema_only = [i for i, k in enumerate(kinds) if k == "schema"]
    by_duckdb = [i for i, k in enumerate(kinds) if k == "whole_table" and not single_batch]

    # The full suite, for Data Docs and for the expectation configurations of the results.
    suite = context.suites.add(ExpectationSuite(**document))
    configs = [e.configuration for e in suite.expectations]
    source = context.data_sources.add_pandas(f"published_{table}")
    batch_definition = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(
        "chunk"
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": _EXAMPLES}

    def run(indices: list[int], frame: pd.DataFrame) -> list[tuple[int, Any]]:
        # GE does not return results in the suite's order: each expectation carries its index.
        part = ExpectationSuite(
            name=f"{document['name']}__part",
            expectations=[
                {**expectations[i], "meta": {**expectations[i].get("meta", {}), _INDEX: i}}
                for i in indices
            ],
        )
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        results = batch.validate(
            part, expectation_parameters=dict(parameters), result_format=result_format
        ).results
        indexed = [(int(r.expectation_config.meta[_INDEX]), r) for r in results]
        if sorted(i for i, _ in indexed) != sorted(indices):
            raise RuntimeError(f"{table}: Great Expectations returned an unexpected result set")
        return indexed

    merged: dict[int, _Merged] = {i: _Merged() for i in range(len(expectations))}
    chunks = 0
    if rows == 0:
        # The publish writes no Parquet file for an empty table, so there are no columns to
        # read: row expectations hold vacuously, the column set cannot be checked here (the
        # DuckDB file keeps the table's columns), and whole-table ones still count rows.
        by_duckdb = [i for i, k in enumerate(kinds) if k == "whole_table"]
        for i in schema_only + [i for i, k in enumerate(kinds) if k == "row"]:
            merged[i].set_skipped("no rows: nothing to validate")
        schema_only, in_chunks = [], []
    if schema_only:
        for frame in _chunks(con, folder, list(types), types, _SCHEMA_SAMPLE_ROWS, limit=1):
            for i, result in run(schema_only, frame):
                merged[i].add(result)
    if in_chunks:
        columns = _referenced_columns([expectations[i] for i in in_chunks], list(types))
        present = [c for c in columns if c in types]
        # A referenced column the table lacks is left out of the frame: GE then reports the
        # expectations on it as failed (missing column), as on any batch.
        for frame in _chunks(con, folder, present, types, chunk_rows):
            chunks += 1
            for i, result in run(in_chunks, frame):
                merged[i].add(result)
    for i in by_duckdb:
        merged[i].set_duckdb(_whole_table_outcome(con, folder, expectations[i], rows))

    outcomes = tuple(
        merged[i].outcome(expectations[i], "duckdb" if i in by_duckdb else "great_expectations")
        for i in range(len(expectations))
    )
    suite_result = _suite_result(gx_api, suite, configs, outcomes, table, rows, chunks)
    return (
        TableOutcome(
            table=table, suite=document["name"], rows=rows, chunks=chunks, outcomes=outcomes
        ),
        suite_result,
    )


@dataclass
class _Merged:
    """One expectation's results over the chunks, summed."""

    success: bool = True
    element_count: int | None = None
    unexpected_count: int | None = None
    missing_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    observed_value: Any = None
    error: str | None = None
    evaluated: bool = False
    evaluated_by: str | None = None

    def add(self, result: Any) -> None:
        self.evaluated = True
        self.success = self.success and bool(result.success)
        for info in _exception_infos(result.exception_info):
            message = str(info.get("exception_message") or "").splitlines()
            self.error = self.error or (message[0] if message else "exception")
            self.success = False
        details = result.result or {}
        for key in ("element_count", "unexpected_count", "missing_count"):
            value = details.get(key)
            if value is not None:
                setattr(self, key, (getattr(self, key) or 0) + int(value))
        for value in details.get("partial_unexpected_list") or []:
            if len(self.examples) < _EXAMPLES:
                self.examples.append(value)
        if "observed_value" in details:
            self.observed_value = details["observed_value"]

    def set_skipped(self, reason: str) -> None:
        self.evaluated = True
        self.evaluated_by = "skipped"
        self.element_count, self.unexpected_count = 0, 0
        self.observed_value = reason

    def set_duckdb(self, outcome: dict[str, Any]) -> None:
        self.evaluated = True
        self.success = outcome["success"]
        self.element_count = outcome.get("element_count")
        self.unexpected_count = outcome.get("unexpected_count")
        self.examples = list(outcome.get("examples", []))
        self.observed_value = outcome.get("observed_value")

    def outcome(self, expectation: dict[str, Any], evaluated_by: str) -> ExpectationOutcome:
        return ExpectationOutcome(
            expectation_type=expectation["type"],
            kwargs=dict(expectation["kwargs"]),
            success=self.success and self.evaluated,
            evaluated_by=self.evaluated_by or evaluated_by,
            element_count=self.element_count,
            unexpected_count=self.unexpected_count,
            examples=tuple(_plain(v) for v in self.examples),
            observed_value=_plain(self.observed_value),
            error=self.error if self.evaluated else "not evaluated",
            why=(expectation.get("meta") or {}).get("why"),
        )


def _exception_infos(exception_info: Any) -> list[dict[str, Any]]:
    """The exceptions GE raised for one expectation: its ``exception_info`` is one
    ``{raised_exception, exception_message, ...}`` or, for a failed metric (e.g. a missing
    column), a dict of them keyed by metric."""
    if not isinstance(exception_info, dict):
        return []
    if "raised_exception" in exception_info:
        return [exception_info] if exception_info["raised_exception"] else []
    return [
        info
        for info in exception_info.values()
        if isinstance(info, dict) and info.get("raised_exception")
    ]


def _plain(value: Any) -> Any:
    """A value JSON can hold (numpy scalars, dates and tuples become plain Python)."""
    return json.loads(json.dumps(value, default=str))


def _whole_table_outcome(
    con: duckdb.DuckDBPyConnection, folder: Path, expectation: dict[str, Any], rows: int
) -> dict[str, Any]:
    """A whole-table expectation over the whole Parquet table, counted as GE counts it."""
    kwargs = expectation["kwargs"]
    kind = expectation["type"]
    if kind == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        ok = (low is None or rows >= low) and (high is None or rows <= high)
        return {"success": ok, "observed_value": rows}
    if rows == 0:
        return {"success": True, "element_count": 0, "unexpected_count": 0, "examples": []}
    single = kind == "expect_column_values_to_be_unique"
    columns = [kwargs["column"]] if single else list(kwargs["column_list"])
    quoted = [quote_identifier(c) for c in columns]
    # The duplicated value (one column) or {column: value} (several), as GE lists examples.
    key = quoted[0] if single else "struct_pack(" + ", ".join(f"{q} := {q}" for q in quoted) + ")"
    # GE skips rows whose value is NULL (unique) or whose values are all NULL (compound).
    skipped = " AND ".join(f"{q} IS NULL" for q in quoted)
    base = f"SELECT {key} AS key FROM {_parquet_source(folder)} WHERE NOT ({skipped})"
    element_count = con.execute(f"SELECT count(*) FROM ({base})").fetchone()[0]
    unexpected, examples = con.execute(
        "SELECT CAST(coalesce(sum(n), 0) AS BIGINT), "
        f"list(key ORDER BY n DESC, key)[1:{_EXAMPLES}] "
        f"FROM (SELECT key, count(*) AS n FROM ({base}) GROUP BY key HAVING count(*) > 1)"
    ).fetchone()
    examples = list(examples or [])
    return {
        "success": int(unexpected) == 0,
        "element_count": element_count,
        "unexpected_count": int(unexpected),
        "examples": examples,
    }


def _suite_result(
    gx_api: Any,
    suite: Any,
    configs: Sequence[Any],
    outcomes: Sequence[ExpectationOutcome],
    table: str,
    rows: int,
    chunks: int,
) -> Any:
    """One GE suite validation result for the whole table (what Data Docs render)."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    results = []
    for config, outcome in zip(configs, outcomes, strict=True):
        details: dict[str, Any] = {}
        if outcome.element_count is not None:
            details["element_count"] = outcome.element_count
        if outcome.unexpected_count is not None:
            details["unexpected_count"] = outcome.unexpected_count
            details["unexpected_percent"] = (
                100.0 * outcome.unexpected_count / outcome.element_count
                if outcome.element_count
                else 0.0
            )
            details["partial_unexpected_list"] = list(outcome.examples)
        if outcome.observed_value is not None:
            details["observed_value"] = outcome.observed_value
        results.append(
            ExpectationValidationResult(
                success=outcome.success,
                expectation_config=config,
                result=details,
                exception_info={
                    "raised_exception": outcome.error is not None,
                    "exception_message": outcome.error,
                    "exception_traceback": None,
                },
                meta={"evaluated_by": outcome.evaluated_by},
            )
        )
    passed = sum(1 for o in outcomes if o.success)
    return ExpectationSuiteValidationResult(
        success=all(o.success for o in outcomes),
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(outcomes),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(outcomes) - passed,
            "success_percent": 100.0 * passed / len(outcomes) if outcomes else 100.0,
        },
        meta={
            "great_expectations_version": gx_api.__version__,
            "active_batch_definition": {
                "datasource_name": "published_parquet",
                "data_connector_name": "fluent",
                "data_asset_name": table,
                "batch_identifiers": {"rows": rows, "chunks": chunks},
            },
        },
    )


def _write_data_docs(
    context: Any, gx_api: Any, suite_results: Sequence[tuple[str, Any]], version: str, docs: Path
) -> Path:
    """Build Data Docs aside (``report/.quality-<version>``), then point the ``quality``
    symlink at them atomically; keep the previous build for a reader still on it."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    parent = docs.parent
    parent.mkdir(parents=True, exist_ok=True)
    build = parent / f"{_DOCS_VERSION_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    context.add_data_docs_site(
        "published_quality",
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(build),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    run_id = RunIdentifier(run_name=version)
    for table, result in suite_results:
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=run_id,
            batch_identifier=f"published-{table}",
        )
        context.validation_results_store.store_validation_results(result, key)
    context.build_data_docs(site_names=["published_quality"])
    if not (build / "index.html").is_file():
        raise RuntimeError(f"Great Expectations wrote no index.html in {build}")
    _add_plain_links(build, version, suite_results)
    _swap_symlink(docs, build.name)
    _prune_docs(parent, keep={build.name, _previous_target(parent, build.name)})
    return docs / "index.html"


def _add_plain_links(build: Path, version: str, suite_results: Sequence[tuple[str, Any]]) -> None:
    """Put plain links to each table's page at the top of index.html: GE draws its own list
    with scripts from public CDNs, which a reader offline does not get."""
    items = []
    for table, result in suite_results:
        pages = sorted((build / "validations" / result.suite_name).rglob("*.html"))
        verdict = "passed" if result.success else "FAILED"
        for page in pages:
            href = html.escape(page.relative_to(build).as_posix(), quote=True)
            items.append(f'<li><a href="{href}">{html.escape(table)}</a>: {verdict}</li>')
    section = (
        '<section id="icp-validations" style="margin:1em">'
        f"<h2>Published version {html.escape(version)}</h2><ul>{''.join(items)}</ul></section>"
    )
    index = build / "index.html"
    page = index.read_text(encoding="utf-8")
    at = page.find(">", page.find("<body")) + 1
    index.write_text(page[:at] + section + page[at:], encoding="utf-8")


def _swap_symlink(link: Path, target_name: str) -> None:
    if link.exists() and not link.is_symlink():
        # A real folder (written by hand or by an older version): moved aside, then pruned.
        os.replace(link, link.parent / f"{_DOCS_VERSION_PREFIX}moved-{uuid.uuid4().hex[:8]}")
    tmp_link = link.parent / f"{_DOCS_LINK_PREFIX}{uuid.uuid4().hex}"
    os.symlink(target_name, tmp_link, target_is_directory=True)
    os.replace(tmp_link, link)


def _previous_target(parent: Path, current: str) -> str:
    """The newest other build (by modification time): kept so a reader that resolved the
    symlink a moment ago can finish."""
    others = sorted(
        (p for p in parent.glob(f"{_DOCS_VERSION_PREFIX}*") if p.is_dir() and p.name != current),
        key=lambda p: p.stat().st_mtime,
    )
    return others[-1].name if others else current


def _prune_docs(parent: Path, keep: set[str]) -> None:
    for path in parent.glob(f"{_DOCS_VERSION_PREFIX}*"):
        if path.name in keep:
            continue
        if path.is_symlink():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
