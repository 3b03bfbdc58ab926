"""The row rules of the contract as DuckDB SQL: each column's text, its typed value, and the
condition of every rule it can break (see the rules table in docs/contract.md).

The SQL reads the landing rows under the alias ``landing``; it is built only from the
contract (quoted identifiers) and this module's own constants. Values the caller binds
(allowed values, patterns, the valid date range) go into ``params``.
"""

from __future__ import annotations

from datetime import date

from dagster_project.ingest.contracts import TIMESTAMP_DTYPE, ColumnContract, EntityContract
from dagster_project.sql import quote_identifier, string_literal

__all__ = [
    "TRIM_CHARACTERS",
    "column_rules",
    "key_value",
    "qualified",
    "timestamp_parts_column",
    "timestamp_parts_expression",
    "trim_expression",
    "trimmed",
    "trimmed_column",
    "typed_value",
]

#: Trimmed from both ends of every value (before the rules) and of every key (stored so):
#: ASCII and Unicode spaces (NBSP, ideographic space, ...) and invisible zero-width
#: characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM), which exports and spreadsheets leave.
TRIM_CHARACTERS = (
    " \t\n\r\v\f\u0085\u00a0\u1680\u180e"
    + "".join(chr(c) for c in range(0x2000, 0x200E))
    + "\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
# trim_expression leaves a value with printable ASCII ends as it is: none may be trimmed.
assert not any("!" <= character <= "~" for character in TRIM_CHARACTERS)

#: ISO 8601 date or date-time (``T`` or a space), optional fraction, ``Z`` or an offset.
#: Groups: 1 date, 2 hour, 3 minute, 4 second, 5 fraction, 6 zone.
_TIMESTAMP = (
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
#: A plain decimal number, optionally with an exponent (no ``1_000``, ``0x10``, ``$1,200``).
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
#: An integer; an integral decimal such as ``10.0`` (pandas writes those) is exact.
_INTEGER = r"[+-]?\d+(\.0*)?"
#: What DuckDB (and pandas, and spreadsheets) read as a non-finite float.
_NON_FINITE = r"[+-]?(nan|inf|infinity)"
#: Widest UTC offset in use (UTC-12:00 .. UTC+14:00); anything past +-14:00 is not a zone.
_MAX_OFFSET_MINUTES = 14 * 60


def qualified(column: ColumnContract) -> str:
    # Qualified so that a correlated subquery (fx rates, parent keys) cannot capture the name.
    return f"landing.{quote_identifier(column.name)}"


def trim_expression(column: ColumnContract) -> str:
    """The value without surrounding (Unicode) spaces and zero-width characters; NULL if empty.

    Computed once per row into :func:`trimmed_column` before the rules run: every rule of a
    column reads the trimmed value, and DuckDB evaluating the trim (and what builds on it)
    inside each rule's CASE cost several times the rules themselves at millions of rows.

    A value that starts and ends with a printable ASCII character (``!`` to ``~``, none of
    them in TRIM_CHARACTERS) is already trimmed: it skips ``trim`` with a character set,
    which costs about 15 times that test per value (most values of a real export)."""
    value = qualified(column)
    already_trimmed = " AND ".join(
        f"ascii({end}({value}, 1)) BETWEEN {ord('!')} AND {ord('~')}" for end in ("left", "right")
    )
    return (
        f"nullif(CASE WHEN {already_trimmed} THEN {value} "
        f"ELSE trim({value}, {string_literal(TRIM_CHARACTERS)}) END, '')"
    )


def trimmed_column(column: ColumnContract) -> str:
    """The name of the column holding the trimmed value of ``column`` in the checked rows."""
    return f"__trimmed__{column.name}"


def trimmed(column: ColumnContract) -> str:
    """The trimmed value of ``column`` (see :func:`trim_expression`), as the rules read it."""
    return f"landing.{quote_identifier(trimmed_column(column))}"


def key_value(column: ColumnContract) -> str:
    """A key as compared and stored: trimmed, case kept (keys are case-sensitive)."""
    return trimmed(column)


def _matches(value: str, pattern: str) -> str:
    return f"regexp_full_match({value}, {string_literal(pattern)})"


#: The groups of _TIMESTAMP, in order.
_TIMESTAMP_GROUPS = ("day", "hour", "minute", "second", "fraction", "zone")


def timestamp_parts_column(column: ColumnContract) -> str:
    """The column of the checked rows holding the parts of a timestamp column's value."""
    return f"__parts__{column.name}"


def timestamp_parts_expression(column: ColumnContract) -> str:
    """The groups of _TIMESTAMP in the trimmed value, as a struct, computed once per row
    into :func:`timestamp_parts_column` (each rule extracting the part it reads cost about
    eight regular-expression evaluations per value); empty strings where it does not match."""
    names = ", ".join(string_literal(group) for group in _TIMESTAMP_GROUPS)
    return f"regexp_extract({trimmed(column)}, {string_literal(_TIMESTAMP)}, [{names}])"


def _well_formed_timestamp(column: ColumnContract) -> str:
    """The value matches _TIMESTAMP: its date group, which the pattern requires, is there
    (a value that does not match has empty groups; NULL has none)."""
    return f"({_timestamp_part(column, 'day')} <> '')"


def _timestamp_part(column: ColumnContract, group: str) -> str:
    """One of _TIMESTAMP_GROUPS of the value, from :func:`timestamp_parts_column`."""
    parts = quote_identifier(timestamp_parts_column(column))
    return f"landing.{parts}.{quote_identifier(group)}"


def _converted_to_usd(contract: EntityContract, column: ColumnContract, number: str) -> str:
    """``number`` times the largest fx rate of the row's currency (1 for USD or none): the
    biggest value staging's conversion to USD can produce for it."""
    currency = trimmed(contract.column("currency"))
    return (
        f"({number} * coalesce((SELECT max(fx.usd_per_unit) FROM raw.fx_rates AS fx "
        f"WHERE fx.currency = upper({currency})), 1))"
    )


def _is_money(contract: EntityContract, column: ColumnContract) -> bool:
    # The amounts of an entity with a currency are converted to USD in staging (to_usd).
    return (
        column.dtype == "Float64"
        and not contract.is_reference
        and "currency" in contract.column_names
    )


def typed_value(contract: EntityContract, column: ColumnContract) -> str:
    """SQL turning the text of ``column`` into its contract type (NULL when it does not parse).

    Free text is kept exactly as read; keys, codes and enum values (a pattern or a value set)
    are stored trimmed, as the rules checked them.
    """
    value = trimmed(column)
    if column.dtype == "str":
        is_code = column.pattern is not None or column.allowed_values is not None
        if column.name in contract.key_columns or is_code:
            return value
        return qualified(column)
    if column.dtype == TIMESTAMP_DTYPE:
        # Offsets are honoured and the result stored as UTC; the session time zone is UTC,
        # so a value without an offset is read as UTC.
        typed = f"timezone('UTC', try_cast({value} AS TIMESTAMPTZ))"
        return f"(CASE WHEN {_well_formed_timestamp(column)} THEN {typed} END)"
    if column.dtype == "Float64":
        number = f"try_cast({value} AS DOUBLE)"
        typed = f"(CASE WHEN isfinite({number}) THEN {number} END)"
        return f"(CASE WHEN {_matches(value, _NUMBER)} THEN {typed} END)"
    typed = f"try_cast({value} AS {column.warehouse_type})"
    if column.dtype == "Int64":
        return f"(CASE WHEN {_matches(value, _INTEGER)} THEN {typed} END)"
    return typed


def _timestamp_rules(
    column: ColumnContract, params: dict[str, object], valid_dates: tuple[date, date]
) -> list[tuple[str, str]]:
    value = trimmed(column)
    well_formed = _well_formed_timestamp(column)
    numeric = _matches(value, _NUMBER)
    has_time = f"length({value}) > 10"

    def field(group: str) -> str:
        return f"coalesce(try_cast(nullif({_timestamp_part(column, group)}, '') AS INTEGER), 0)"

    zone_digits = f"replace(substr({_timestamp_part(column, 'zone')}, 2), ':', '')"
    offset_hours = f"coalesce(try_cast(left({zone_digits}, 2) AS INTEGER), 0)"
    offset_minutes = f"coalesce(try_cast(nullif(substr({zone_digits}, 3), '') AS INTEGER), 0)"
    fraction = f"rtrim({_timestamp_part(column, 'fraction')}, '0')"
    params["valid_from_date"] = valid_dates[0].isoformat()
    params["valid_to_date"] = valid_dates[1].isoformat()
    impossible = (
        f"try_cast(left({value}, 10) AS DATE) IS NULL OR ({has_time} AND "
        f"({field('hour')} > 23 OR {field('minute')} > 59 OR {field('second')} > 59))"
    )
    offset_bad = (
        f"{has_time} AND ({offset_minutes} > 59 "
        f"OR {offset_hours} * 60 + {offset_minutes} > {_MAX_OFFSET_MINUTES})"
    )
    return [
        ("invalid_timestamp", f"{value} IS NOT NULL AND NOT {well_formed} AND NOT {numeric}"),
        # Epoch seconds or milliseconds, a spreadsheet serial day, 20261120: which is meant
        # would be a guess.
        ("numeric_timestamp", f"{value} IS NOT NULL AND {numeric}"),
        # 2026-02-29, 2026-02-30, T24:00:00 (DuckDB reads it as the next day), 23:59:60.
        (
            "impossible_timestamp",
            f"{well_formed} AND ({impossible} OR (NOT ({offset_bad}) AND "
            f"try_cast({value} AS TIMESTAMPTZ) IS NULL))",
        ),
        ("offset_out_of_range", f"{well_formed} AND {offset_bad}"),
        # DuckDB keeps microseconds and would silently drop the rest of .123456789.
        (
            "timestamp_precision_loss",
            f"{well_formed} AND {has_time} AND length({fraction}) > 6",
        ),
        # 0001-01-01, 1899-12-30 (a spreadsheet's day zero), 9999-12-31: placeholders.
        (
            "sentinel_date",
            f"{well_formed} AND (left({value}, 10) < $valid_from_date "
            f"OR left({value}, 10) > $valid_to_date)",
        ),
    ]


def _number_rules(contract: EntityContract, column: ColumnContract) -> list[tuple[str, str]]:
    value = trimmed(column)
    well_formed = _matches(value, _NUMBER)
    non_finite_text = _matches(f"lower({value})", _NON_FINITE)
    number = f"try_cast({value} AS DOUBLE)"
    overflow = f"NOT isfinite({number})"
    if _is_money(contract, column):
        # 1.5e308 GBP is finite in the file and infinite in USD.
        overflow += f" OR NOT isfinite({_converted_to_usd(contract, column, number)})"
    return [
        ("invalid_number", f"{value} IS NOT NULL AND NOT {well_formed} AND NOT {non_finite_text}"),
        (
            "non_finite_number",
            f"{value} IS NOT NULL AND ({non_finite_text} OR ({well_formed} AND ({overflow})))",
        ),
    ]


_TYPE_RULES = {
    "Int64": "invalid_integer",
    "boolean": "invalid_boolean",
}


def column_rules(
    contract: EntityContract,
    column: ColumnContract,
    params: dict[str, object],
    valid_dates: tuple[date, date],
) -> list[tuple[str, str]]:
    """(``rule:column``, SQL condition true when the row breaks it) for one column."""
    value = trimmed(column)
    typed = typed_value(contract, column)
    rules: list[tuple[str, str]] = []
    if not column.nullable:
        rules.append(("missing_required_value", f"{value} IS NULL"))
    if column.dtype in _TYPE_RULES:
        rules.append((_TYPE_RULES[column.dtype], f"{value} IS NOT NULL AND {typed} IS NULL"))
    elif column.dtype == "Float64":
        rules += _number_rules(contract, column)
    elif column.dtype == TIMESTAMP_DTYPE:
        rules += _timestamp_rules(column, params, valid_dates)
    if column.allowed_values is not None:
        key = f"allowed_{column.name}"
        params[key] = list(column.allowed_values)
        rules.append(
            (
                "value_not_allowed",
                f"{value} IS NOT NULL AND NOT list_contains(${key}, lower({value}))",
            )
        )
    if column.min_value is not None:
        operator = "<=" if column.min_exclusive else "<"
        rules.append(("below_minimum", f"{typed} {operator} {float(column.min_value)!r}"))
    if column.max_value is not None:
        rules.append(("above_maximum", f"{typed} > {float(column.max_value)!r}"))
    if column.pattern is not None:
        key = f"pattern_{column.name}"
        params[key] = column.pattern
        rules.append(
            ("pattern_mismatch", f"{value} IS NOT NULL AND NOT regexp_full_match({value}, ${key})")
        )
    if column.name == "currency" and not contract.is_reference:
        rules.append(
            (
                "unknown_currency",
                f"{value} IS NOT NULL AND upper({value}) <> 'USD' AND NOT EXISTS "
                f"(SELECT 1 FROM raw.fx_rates AS fx WHERE fx.currency = upper({value}))",
            )
        )
    if column.name in contract.foreign_keys:
        parent_source, parent_entity = contract.foreign_keys[column.name].split("/")
        parent_table = f"raw.{parent_source}__{parent_entity}"
        # Point in time as of the as-of date: the parent raw table holds every export dated
        # <= it, so a parent exported after its child (an account snapshot sent at the end,
        # an export split by updated_at) still counts, and a snapshot and the same rows as
        # monthly exports get the same verdict. Parent keys are stored trimmed.
        rules.append(
            (
                "orphan_foreign_key",
                f"{value} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent_table} AS parent "
                f"WHERE parent.{quote_identifier(column.name)} = {key_value(column)})",
            )
        )
    return [(f"{rule}:{column.name}", condition) for rule, condition in rules]
