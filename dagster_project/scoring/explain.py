"""Why an account scored what it did: every factor's points, flags and route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

__all__ = ["AccountExplanation", "explain_account"]


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

    @property
    def factor_total(self) -> Decimal:
        return sum((points for _, points in self.factors), Decimal(0))


def explain_account(
    con: duckdb.DuckDBPyConnection, account_id: str, as_of: date | None = None
) -> AccountExplanation | None:
    """The account's score at ``as_of`` (default: the newest scored date), or None."""
    row = con.execute(
        """
        SELECT account_id, as_of_date, fit_score, fit_tier, route, is_anti_icp,
               anti_icp_reasons, factor_points, score_version, scored_at
        FROM marts.account_fit_score_history
        WHERE account_id = $account_id
          AND ($as_of IS NULL OR as_of_date = CAST($as_of AS DATE))
        ORDER BY as_of_date DESC
        LIMIT 1
        """,
        {"account_id": account_id, "as_of": as_of},
    ).fetchone()
    if row is None:
        return None
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
    )
