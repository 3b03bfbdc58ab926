"""Why an account scored what it did: every factor's points, flags and route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

__all__ = ["AccountExplanation", "ScoreChange", "explain_account"]


@dataclass(frozen=True)
class ScoreChange:
    """What moved between the previous scored date and this one, factor by factor."""

    previous_as_of_date: date
    previous_fit_score: Decimal
    previous_fit_tier: str
    previous_route: str
    previous_score_version: str
    factor_changes: list[tuple[str, Decimal, Decimal]]
    reasons_added: list[str]
    reasons_removed: list[str]


@dataclass(frozen=True)
class AccountExplanation:
    """A published score taken apart. ``factors`` add up exactly to ``fit_score``."""

    account_id: str
    as_of_date: date
    fit_score: Decimal
    fit_tier: str
    route: str
    is_anti_icp: bool
    anti_icp_reasons: list[str]
    factors: list[tuple[str, Decimal]]
    score_version: str
    scored_at: datetime
    change: ScoreChange | None = None
    #: Calibrated probability of becoming a best customer (None when not validated).
    fit_probability: float | None = None
    fit_confidence: str | None = None
    #: Factors (``attribute=value``) whose points stand on fewer labelled accounts than the
    #: prior behind every bin (``icp_profile.is_low_sample``): mostly prior, little evidence.
    low_sample_factors: frozenset[str] = frozenset()

    @property
    def factor_total(self) -> Decimal:
        return sum((points for _, points in self.factors), Decimal(0))


def explain_account(
    con: duckdb.DuckDBPyConnection, account_id: str, as_of: date | None = None
) -> AccountExplanation | None:
    """The account's score at ``as_of`` (default: the newest scored date), or None."""
    columns = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'account_fit_score_history'"
        ).fetchall()
    }
    # Scores published before 2026-12-01 have no probability or confidence.
    extra = ", ".join(
        name if name in columns else f"NULL AS {name}"
        for name in ("fit_probability", "fit_confidence", "icp_segment")
    )
    rows = con.execute(
        f"""
        SELECT account_id, as_of_date, fit_score, fit_tier, route, is_anti_icp,
               anti_icp_reasons, factor_points, score_version, scored_at, {extra}
        FROM marts.account_fit_score_history
        WHERE account_id = $account_id
          AND ($as_of IS NULL OR as_of_date <= CAST($as_of AS DATE))
        ORDER BY as_of_date DESC
        LIMIT 2
        """,
        {"account_id": account_id, "as_of": as_of},
    ).fetchall()
    if not rows or (as_of is not None and rows[0][1] != as_of):
        return None
    row = rows[0]
    change = _change(row, rows[1]) if len(rows) > 1 else None
    return AccountExplanation(
        account_id=row[0],
        as_of_date=row[1],
        fit_score=row[2],
        fit_tier=row[3],
        route=row[4],
        is_anti_icp=row[5],
        anti_icp_reasons=list(row[6]),
        factors=[(item["factor"], item["points"]) for item in row[7]],
        score_version=row[8],
        scored_at=row[9],
        change=change,
        fit_probability=row[10],
        fit_confidence=row[11],
        low_sample_factors=_low_sample_factors(con, row[1], row[12]),
    )


def _low_sample_factors(con, as_of: date, segment: str | None) -> frozenset[str]:
    if segment is None:
        return frozenset()
    (has_profile,) = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'marts' AND table_name = 'icp_profile'"
    ).fetchone()
    if not has_profile:
        return frozenset()
    rows = con.execute(
        "SELECT attribute || '=' || value FROM marts.icp_profile WHERE as_of_date = $as_of "
        "AND icp_segment = $segment AND is_scored AND is_low_sample",
        {"as_of": as_of, "segment": segment},
    ).fetchall()
    return frozenset(factor for (factor,) in rows)


def _change(current: tuple, previous: tuple) -> ScoreChange:
    now = {item["factor"]: item["points"] for item in current[7]}
    before = {item["factor"]: item["points"] for item in previous[7]}
    changes = [
        (factor, before.get(factor, Decimal(0)), now.get(factor, Decimal(0)))
        for factor in sorted(set(now) | set(before))
        if before.get(factor, Decimal(0)) != now.get(factor, Decimal(0))
    ]
    changes.sort(key=lambda item: abs(item[2] - item[1]), reverse=True)
    return ScoreChange(
        previous_as_of_date=previous[1],
        previous_fit_score=previous[2],
        previous_fit_tier=previous[3],
        previous_route=previous[4],
        previous_score_version=previous[8],
        factor_changes=changes,
        reasons_added=sorted(set(current[6]) - set(previous[6])),
        reasons_removed=sorted(set(previous[6]) - set(current[6])),
    )
