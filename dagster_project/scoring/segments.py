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

from dagster_project.scoring.learned import (
    CUSTOMER_BIN_TABLE,
    LABEL_TABLE,
    MISSING_BIN,
    OTHER_BIN,
    long_bins_sql,
)

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
    # Imported here: the definitions load without scikit-learn (dagster_project/defs/preload.py).
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best_sql = f"SELECT account_id FROM {LABEL_TABLE} WHERE outcome_label = 'best'"
    # One row per best customer and trait, as positions into the sorted accounts and traits:
    # integers reach numpy, not a Python tuple per row.
    rows = con.execute(
        f"""
        WITH traits AS (
            SELECT account_id, attribute || '=' || bin AS trait
            FROM ({long_bins_sql(CUSTOMER_BIN_TABLE, best_sql)})
            WHERE bin NOT IN ('{MISSING_BIN}', '{OTHER_BIN}', 'no')
        )
        SELECT dense_rank() OVER (ORDER BY account_id) - 1 AS account_position,
               dense_rank() OVER (ORDER BY trait) - 1 AS trait_position,
               account_id, trait
        FROM traits
        """
    ).fetchnumpy()
    account_positions = np.asarray(rows["account_position"], dtype=np.int64)
    trait_positions = np.asarray(rows["trait_position"], dtype=np.int64)
    best_count = int(account_positions.max()) + 1 if len(account_positions) else 0
    accounts = np.empty(best_count, dtype=object)
    accounts[account_positions] = np.asarray(rows["account_id"], dtype=object)
    traits = np.empty(int(trait_positions.max()) + 1 if len(trait_positions) else 0, dtype=object)
    traits[trait_positions] = np.asarray(rows["trait"], dtype=object)
    traits = traits.tolist()
    chosen: tuple[int, np.ndarray, float] | None = None
    if best_count >= 20 and traits:
        matrix = np.zeros((best_count, len(traits)))
        matrix[account_positions, trait_positions] = 1.0
        for k in range(2, max_segments + 1):
            if best_count < k * 10:
                break
            labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(matrix)
            shares = np.bincount(labels, minlength=k) / best_count
            if shares.min() < min_segment_share:
                continue  # a group too small: no split, whatever its silhouette
            # A sample keeps this linear in the number of best customers (it is quadratic).
            silhouette = float(
                silhouette_score(
                    matrix, labels, sample_size=min(best_count, 5000), random_state=seed
                )
            )
            if silhouette >= min_silhouette and (chosen is None or silhouette > chosen[2]):
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
        con.execute(
            f"INSERT INTO {SEGMENT_TABLE} SELECT unnest($accounts), $name",
            {"accounts": [accounts[i] for i in np.flatnonzero(labels == cluster)], "name": name},
        )
    return segments
