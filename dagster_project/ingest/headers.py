"""Matching a file's header names to contract columns, and naming the near misses.

A header name is a contract column when the two have the same :func:`header_key`: Unicode
NFKC (full-width letters, ligatures), invisible characters removed (zero-width spaces and
joiners, byte-order marks, soft hyphens, control characters), case folded and separators
(spaces, ``_``, ``-``, ``.``) dropped, so ``Employee Count``, ``employee-count``,
``EmployeeCount`` and ``country`` followed by a zero-width space all match.

A name that matches no column but nearly matches one the file lacks (a small edit distance,
or a synonym the contract lists such as ``employees`` for ``employee_count``) is not guessed
into that column: :func:`near_miss_warnings` names it, so the run summary says so.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from dagster_project.ingest.contracts import EntityContract

__all__ = ["header_key", "near_miss_warnings", "probable_column"]

_SEPARATORS = re.compile(r"[\s_\-.]+")


def header_key(name: str) -> str:
    """The matching key of a header name (see the module doc)."""
    text = unicodedata.normalize("NFKC", name)
    # Cf: zero-width space/joiners, BOM, soft hyphen, bidi marks; Cc: control characters.
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc"))
    return _SEPARATORS.sub("", text.casefold())


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a swap of two letters counts 1), capped at limit+1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def probable_column(
    contract: EntityContract, name: str, candidates: Iterable[str]
) -> tuple[str, str] | None:
    """(contract column, why) that the header ``name`` probably is, among ``candidates``
    (the contract columns the file lacks); None when it resembles none of them."""
    key = header_key(name)
    if not key:
        return None
    candidates = list(candidates)
    for column in candidates:
        synonyms = {header_key(s) for s in contract.column_synonyms.get(column, ())}
        if key in synonyms:
            return column, "a known synonym"
    # One edit in a short name, two in a longer one: 'countyr', 'employe_count', 'domian'.
    limit = 1 if len(key) <= 6 else 2
    scored = [
        (_edit_distance(key, header_key(column), limit), column)
        for column in candidates
        if len(header_key(column)) > 3
    ]
    close = sorted(item for item in scored if item[0] <= limit)
    if close:
        return close[0][1], f"{close[0][0]} edit(s) away"
    return None


def near_miss_warnings(
    contract: EntityContract, file: str, unmatched: Iterable[str], missing: Iterable[str]
) -> list[str]:
    """A warning per unmatched header name that is probably one of the ``missing`` columns."""
    missing = list(missing)
    warnings = []
    for name in unmatched:
        guess = probable_column(contract, name, missing)
        if guess is not None:
            column, why = guess
            warnings.append(
                f"{file}: header {name!r} is probably the column {column} ({why}) but is not "
                f"read as it, so {column} is NULL in every row of this file; rename the "
                f"column, or map it in a mapping profile (docs/contract.md). The values are "
                "kept in _extra_columns"
            )
    return warnings
