"""Multi-ICP: do the best customers form distinct groups?

Best customers are clustered on their attribute bins (one-hot, k-means for k = 2..max); a
split is kept only when it is clear (silhouette >= ``min_silhouette``) and every group holds at
least ``min_segment_share`` of the best customers. Otherwise there is one ICP, ``core``.
Each segment is named by the attribute values that set it apart from the other best customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from dagster_project.scoring.learned import BIN_TABLE, LABEL_TABLE, MISSING_BIN, OTHER_BIN

__all__ = ["CORE_SEGMENT", "SEGMENT_TABLE", "IcpSegment", "find_icp_segments"]

CORE_SEGMENT = "core"
SEGMENT_TABLE = "best_customer_segments"


@dataclass(frozen=True)
class IcpSegment:
    name: str
    best_customers: int
    silhouette: float | None


def find_icp_segments(
    con: duckdb.DuckDBPyConnection,
    max_segments: int,
    min_silhouette: float,
    min_segment_share: float,
    seed: int = 0,
) -> list[IcpSegment]:
    """Cluster the best customers; writes ``best_customer_segments (account_id, icp_segment)``."""
    rows = con.execute(
        f"""
        SELECT account_bins.account_id, account_bins.attribute || '=' || account_bins.bin
        FROM {BIN_TABLE} AS account_bins
        INNER JOIN {LABEL_TABLE} AS labels USING (account_id)
        WHERE labels.outcome_label = 'best'
          AND account_bins.bin NOT IN ('{MISSING_BIN}', '{OTHER_BIN}', 'no')
        ORDER BY 1, 2
        """
    ).fetchall()
    accounts = sorted({account for account, _ in rows})
    traits = sorted({trait for _, trait in rows})
    best_count = len(accounts)
    chosen: tuple[int, np.ndarray, float] | None = None
    if best_count >= 20 and traits:
        row_accounts = np.array([account for account, _ in rows])
        row_traits = np.array([trait for _, trait in rows])
        matrix = np.zeros((best_count, len(traits)))
        matrix[np.searchsorted(accounts, row_accounts), np.searchsorted(traits, row_traits)] = 1.0
        for k in range(2, max_segments + 1):
            if best_count < k * 10:
                break
            labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(matrix)
            shares = np.bincount(labels, minlength=k) / best_count
            # A sample keeps this linear in the number of best customers (it is quadratic).
            silhouette = float(
                silhouette_score(
                    matrix, labels, sample_size=min(best_count, 5000), random_state=seed
                )
            )
            if silhouette >= min_silhouette and shares.min() >= min_segment_share:
                if chosen is None or silhouette > chosen[2]:
                    chosen = (k, labels, silhouette)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SEGMENT_TABLE} (account_id VARCHAR, icp_segment VARCHAR)"
    )
    if chosen is None:
        con.execute(
            f"INSERT INTO {SEGMENT_TABLE} SELECT account_id, $core FROM {LABEL_TABLE} "
            "WHERE outcome_label = 'best'",
            {"core": CORE_SEGMENT},
        )
        return [IcpSegment(CORE_SEGMENT, best_count, None)]
    k, labels, silhouette = chosen
    segments = []
    for cluster in range(k):
        members = matrix[labels == cluster]
        others = matrix[labels != cluster]
        distinctness = members.mean(axis=0) - others.mean(axis=0)
        # Ties (common: a trait every member has and no other best customer) go alphabetically,
        # so a segment keeps its name from run to run.
        order = np.argsort(-distinctness, kind="stable")
        top = [traits[i] for i in order[:2] if distinctness[i] > 0]
        name = " & ".join(top) or f"segment_{cluster + 1}"
        segments.append(IcpSegment(name, int((labels == cluster).sum()), silhouette))
        con.executemany(
            f"INSERT INTO {SEGMENT_TABLE} VALUES (?, ?)",
            [(accounts[i], name) for i in np.flatnonzero(labels == cluster)],
        )
    return segments
