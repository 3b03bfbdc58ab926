"""How well a scored warehouse recovers the ICP planted by the generator.

Used by the tests and ``benchmarks/icp_quality.py``; reads ``_truth/planted_segments.csv``,
which only generated landing zones have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

__all__ = ["IcpQuality", "evaluate_against_truth"]

_BASELINE_CATEGORIES = [
    "industry",
    "country",
    "business_model",
    "deployment",
    "funding_stage",
    "tech_stack",
]
_BASELINE_NUMBERS = ["employee_count", "annual_revenue_usd"]


@dataclass(frozen=True)
class IcpQuality:
    """Recovery of the planted ICP by the published scores, and by an analyst's baseline."""

    accounts: int
    auc_fit_score: float
    auc_baseline: float
    anti_icp_precision: float
    anti_icp_recall: float
    win_rate_high: float | None
    win_rate_low: float | None
    high_tier_share: float
    #: Win rates of the planted ICP accounts and of all the others: what a perfect two-way
    #: split would show, the reference for the tier ratio on this data.
    win_rate_planted_icp: float | None
    win_rate_planted_rest: float | None
    #: Of the high tier, the share planted ICP (precision); of the planted ICP, the share in
    #: the high tier (recall).
    high_tier_precision: float | None = None
    high_tier_recall: float | None = None
    #: The high tier's share of accounts counting only accounts scored on validated learned
    #: points (``fit_confidence = 'validated'``): 0 when the run fell back to the rules.
    learned_high_tier_share: float = 0.0

    @property
    def win_rate_ratio(self) -> float | None:
        return _ratio(self.win_rate_high, self.win_rate_low)

    @property
    def planted_win_rate_ratio(self) -> float | None:
        return _ratio(self.win_rate_planted_icp, self.win_rate_planted_rest)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _win_rate(rows: pd.DataFrame) -> float | None:
    """Won / closed opportunities of the accounts in ``rows``."""
    closed = rows["opportunities_won"].sum() + rows["opportunities_lost"].sum()
    return float(rows["opportunities_won"].sum() / closed) if closed else None


def evaluate_against_truth(warehouse: Path, landing: Path) -> IcpQuality:
    """Compare ``marts.account_fit_scores`` with the planted segments of ``landing``."""
    truth_path = landing / "_truth" / "planted_segments.csv"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        scored = con.execute(
            """
            SELECT scores.account_id, scores.fit_score::DOUBLE AS fit_score, scores.fit_tier,
                   scores.is_anti_icp, truth.planted_segment,
                   coalesce(scores.fit_confidence = 'validated', false) AS is_validated,
                   metrics.opportunities_won, metrics.opportunities_lost,
                   accounts.* EXCLUDE (account_id)
            FROM marts.account_fit_scores AS scores
            INNER JOIN read_csv(?, all_varchar = true) AS truth USING (account_id)
            INNER JOIN marts.fct_account_metrics AS metrics
                ON metrics.account_id = scores.account_id
               AND metrics.as_of_date = scores.as_of_date
            INNER JOIN marts.dim_accounts AS accounts ON accounts.account_id = scores.account_id
            """,
            [str(truth_path)],
        ).df()
        labels = _labels(con, scored)
    is_icp = (scored["planted_segment"] == "icp").to_numpy()
    is_anti = (scored["planted_segment"] == "anti_icp").to_numpy()
    flagged = scored["is_anti_icp"].to_numpy()
    is_high = (scored["fit_tier"] == "high").to_numpy()
    return IcpQuality(
        accounts=len(scored),
        auc_fit_score=float(roc_auc_score(is_icp, scored["fit_score"])),
        auc_baseline=float(roc_auc_score(is_icp, _baseline_scores(scored, labels))),
        anti_icp_precision=float((flagged & is_anti).sum() / max(flagged.sum(), 1)),
        anti_icp_recall=float((flagged & is_anti).sum() / max(is_anti.sum(), 1)),
        win_rate_high=_win_rate(scored[scored["fit_tier"] == "high"]),
        win_rate_low=_win_rate(scored[scored["fit_tier"] == "low"]),
        high_tier_share=float((scored["fit_tier"] == "high").mean()),
        win_rate_planted_icp=_win_rate(scored[is_icp]),
        win_rate_planted_rest=_win_rate(scored[~is_icp]),
        high_tier_precision=float(is_icp[is_high].mean()) if is_high.any() else None,
        high_tier_recall=float(is_high[is_icp].mean()) if is_icp.any() else None,
        learned_high_tier_share=float((is_high & scored["is_validated"].to_numpy()).mean()),
    )


def _labels(con, scored: pd.DataFrame) -> pd.Series:
    """The learned model's best/worst labels, recomputed the same way (the labels are not
    published, so the baseline takes them from the scoring code itself)."""
    from dagster_project.scoring.config import load_scoring_config
    from dagster_project.scoring.learned import label_customers
    from dagster_project.settings import PROJECT_ROOT

    config = load_scoring_config(PROJECT_ROOT / "config" / "scoring.yaml")
    as_of = con.execute("SELECT max(as_of_date) FROM marts.account_fit_scores").fetchone()[0]
    work = duckdb.connect()
    work.register(
        "metrics_frame",
        con.execute("SELECT * FROM marts.fct_account_metrics WHERE as_of_date = ?", [as_of]).df(),
    )
    work.execute("CREATE SCHEMA marts")
    work.execute("CREATE TABLE marts.fct_account_metrics AS SELECT * FROM metrics_frame")
    label_customers(work, config.learned, as_of)
    labels = work.execute("SELECT account_id, outcome_label FROM customer_labels").df()
    return labels.set_index("account_id")["outcome_label"]


def _baseline_scores(scored: pd.DataFrame, labels: pd.Series) -> np.ndarray:
    """What an analyst writes in an afternoon: one-hot firmographics (as the CRM spells them),
    numeric size and revenue, logistic regression of the best customers (the top 20% of the
    composite) against every other customer."""
    frame = scored.set_index("account_id")
    training = labels[labels.isin(["best", "middle", "worst"])]
    x_train = frame.loc[training.index, _BASELINE_CATEGORIES + _BASELINE_NUMBERS]
    y_train = (training == "best").astype(int).to_numpy()
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "categories",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="missing"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    _BASELINE_CATEGORIES,
                ),
                (
                    "numbers",
                    make_pipeline(
                        SimpleImputer(strategy="median"),
                        FunctionTransformer(np.log1p),
                    ),
                    _BASELINE_NUMBERS,
                ),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    model.fit(x_train, y_train)
    return model.predict_proba(frame[_BASELINE_CATEGORIES + _BASELINE_NUMBERS])[:, 1]
