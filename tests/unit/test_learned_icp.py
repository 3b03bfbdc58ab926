"""The data-derived ICP on hand-made marts: labels, bins, scorecard, segments, learned
anti-ICP rules, pinned points, blend and the rules fallback.

Everything runs on an in-memory DuckDB with small hand-made or seeded numpy-generated
``marts.dim_accounts_history`` / ``marts.fct_account_metrics`` tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from statistics import NormalDist

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import yaml

from dagster_project.scoring.anti_icp import (
    AntiIcpSettings,
    learn_anti_icp_rules,
    learned_reasons_sql,
    situational_reasons_sql,
)
from dagster_project.scoring.config import ScoringConfig, load_scoring_config
from dagster_project.scoring.learned import (
    BIN_COUNT_TABLE,
    BIN_TABLE,
    CUSTOMER_BIN_TABLE,
    LABEL_TABLE,
    LearnedSettings,
    NotEnoughCustomersError,
    bin_customers,
    build_attribute_bins,
    fit_scorecard,
    label_customers,
    long_bins_sql,
)
from dagster_project.scoring.pipeline import run_scoring
from dagster_project.scoring.scorecard import learned_factor_points
from dagster_project.scoring.segments import (
    CORE_SEGMENT,
    SEGMENT_TABLE,
    IcpSegment,
    find_icp_segments,
)

AS_OF = date(2026, 6, 30)
EARLIER = date(2025, 6, 30)  # not the backtest date (AS_OF - 180 days): backtests are skipped
SCORED_AT = datetime(2026, 6, 30, 6, 0)

DIM_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("industry", pa.string()),
        ("size_band", pa.string()),
        ("employee_count", pa.int64()),
        ("country", pa.string()),
        ("business_model", pa.string()),
        ("deployment", pa.string()),
        ("funding_stage", pa.string()),
        ("tech_stack", pa.string()),
        ("open_roles", pa.int64()),
    ]
)
METRIC_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("as_of_date", pa.date32()),
        ("lifecycle_stage", pa.string()),
        ("is_churned", pa.bool_()),
        ("is_churned_within_90_days", pa.bool_()),
        ("tenure_months", pa.int64()),
        ("nrr_12m", pa.float64()),
        ("grr_12m", pa.float64()),
        ("avg_csat", pa.float64()),
        ("tickets_per_1k_mrr_usd", pa.float64()),
        ("expansion_mrr_usd", pa.float64()),
        ("payment_failure_rate", pa.float64()),
        ("activities_last_30_days", pa.int64()),
        ("days_since_last_funding", pa.int64()),
        ("opportunities_won", pa.int64()),
        ("opportunities_lost", pa.int64()),
        ("avg_nps_score", pa.float64()),
        ("usage_active_days_last_90_days", pa.int64()),
    ]
)


def account(
    account_id: str,
    industry: str | None = "software",
    size_band: str | None = "100-499",
    country: str | None = "US",
    deployment: str | None = "cloud",
    business_model: str | None = "b2b_saas",
    funding_stage: str | None = "series_a",
    tech_stack: str | None = "dbt",
    employee_count: int | None = 200,
) -> dict:
    """A ``marts.dim_accounts_history`` row (without its as-of date)."""
    return {
        "account_id": account_id,
        "industry": industry,
        "size_band": size_band,
        "employee_count": employee_count,
        "country": country,
        "business_model": business_model,
        "deployment": deployment,
        "funding_stage": funding_stage,
        "tech_stack": tech_stack,
        "open_roles": 2,
    }


def customer_metrics(
    account_id: str,
    stage: str = "customer",
    churned: bool = False,
    fast_churn: bool = False,
    tenure: int | None = 24,
    nrr: float | None = 1.1,
    grr: float | None = 1.0,
    csat: float | None = 4.0,
    tickets: float | None = 1.0,
    expansion: float | None = 100.0,
    as_of: date = AS_OF,
    nps: float | None = None,
    usage_days: int | None = None,
) -> dict:
    """A ``marts.fct_account_metrics`` row (see docs/metrics.md for the columns)."""
    is_customer = stage in ("customer", "churned")
    return {
        "account_id": account_id,
        "as_of_date": as_of,
        "lifecycle_stage": stage,
        "is_churned": churned,
        "is_churned_within_90_days": fast_churn,
        "tenure_months": tenure,
        "nrr_12m": nrr,
        "grr_12m": grr,
        "avg_csat": csat,
        "tickets_per_1k_mrr_usd": tickets,
        "expansion_mrr_usd": expansion,
        "payment_failure_rate": 0.0 if is_customer else None,
        "activities_last_30_days": 1,
        "days_since_last_funding": 400,
        "opportunities_won": 1 if is_customer else 0,
        "opportunities_lost": 0,
        "avg_nps_score": nps,
        "usage_active_days_last_90_days": usage_days,
    }


def create_marts(con, accounts: list[dict], metrics: list[dict]) -> None:
    """``fct_account_metrics`` from ``metrics`` and ``dim_accounts_history`` with the
    ``accounts`` on every as-of date of the metrics (firmographics that did not change)."""
    con.register("rows_view", pa.Table.from_pylist(metrics, schema=METRIC_SCHEMA))
    con.execute("CREATE OR REPLACE TABLE marts.fct_account_metrics AS SELECT * FROM rows_view")
    con.unregister("rows_view")
    con.register("rows_view", pa.Table.from_pylist(accounts, schema=DIM_SCHEMA))
    con.execute(
        "CREATE OR REPLACE TABLE marts.dim_accounts_history AS SELECT dates.as_of_date, "
        "rows_view.* FROM rows_view CROSS JOIN "
        "(SELECT DISTINCT as_of_date FROM marts.fct_account_metrics) AS dates"
    )
    con.unregister("rows_view")


def create_bins(con, bins: dict[str, dict[str, str]]) -> None:
    """``account_bins`` from {account: {attribute: bin}}: one column per attribute, NULL where an
    account has no bin of it; then ``customer_bins`` from it (labels first)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE long_bins (account_id VARCHAR, attribute VARCHAR, "
        "bin VARCHAR)"
    )
    insert_rows(
        con,
        "long_bins",
        [(a, attribute, b) for a, traits in bins.items() for attribute, b in traits.items()],
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {BIN_TABLE} AS "
        "PIVOT long_bins ON attribute USING first(bin) GROUP BY account_id"
    )
    bin_customers(con)


def insert_rows(con, table: str, rows: list[tuple]) -> None:
    """``INSERT INTO table VALUES rows``, through Arrow (``executemany`` is slow in DuckDB)."""
    if not rows:
        return
    columns = {f"c{i}": list(column) for i, column in enumerate(zip(*rows, strict=True))}
    con.register("insert_view", pa.table(columns))
    con.execute(f"INSERT INTO {table} SELECT * FROM insert_view")
    con.unregister("insert_view")


def load_config(tmp_path: Path, model: str, **learned) -> ScoringConfig:
    document = {
        "model": model,
        "base_points": 10,
        "criteria": [
            {"name": "fintech", "attribute": "industry", "when": {"in": ["fintech"]}, "points": 30},
            {"name": "cloud", "attribute": "deployment", "when": {"eq": "cloud"}, "points": 20},
            {
                "name": "mid_market",
                "attribute": "employee_count",
                "when": {"between": [100, 1000]},
                "points": 25,
            },
        ],
        "anti_icp_rules": [
            {"code": "too_small", "attribute": "employee_count", "when": {"lt": 10}},
        ],
        "learned": learned,
    }
    path = tmp_path / f"scoring-{model}.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_scoring_config(path)


#: Two groups of great customers, told apart by industry and size; both are cloud b2b_saas
#: with dbt, and country and funding stage are noise.
GROUP_A = {"industry": "fintech", "size_band": "500-999", "employee_count": 700}
GROUP_B = {"industry": "healthcare", "size_band": "20-99", "employee_count": 50}
COUNTRIES = ["US", "GB", "DE", "NL"]
FUNDING = ["seed", "series_a", "series_b", "series_c_plus"]


def synthetic_warehouse(con, seed: int = 0) -> None:
    """About 380 accounts: great customers in two groups (A and B), middling customers, fast
    churners (on-prem retail and logistics), prospects, and probe prospects ``PROBE_A`` /
    ``PROBE_B`` / ``PROBE_ONPREM`` that look like group A, group B and the churners."""
    rng = np.random.default_rng(seed)
    accounts, metrics = [], []

    def noise() -> dict:
        return {"country": str(rng.choice(COUNTRIES)), "funding_stage": str(rng.choice(FUNDING))}

    for group, traits in (("A", GROUP_A), ("B", GROUP_B)):
        for i in range(35):
            account_id = f"{group}{i:02d}"
            accounts.append(account(account_id, **traits, **noise()))
            metrics.append(
                customer_metrics(
                    account_id,
                    tenure=int(rng.integers(36, 60)),
                    nrr=float(rng.uniform(1.2, 1.5)),
                    csat=float(rng.uniform(4.5, 5.0)),
                    tickets=float(rng.uniform(0.05, 0.4)),
                    expansion=float(rng.uniform(100, 900)),
                )
            )
    industries = ["software", "fintech", "healthcare", "logistics", "media"]
    sizes = [("100-499", 250), ("500-999", 600), ("20-99", 40), ("1000+", 2000)]
    for i in range(150):
        account_id = f"M{i:03d}"
        size_band, employees = sizes[int(rng.integers(len(sizes)))]
        accounts.append(
            account(
                account_id,
                industry=str(rng.choice(industries)),
                size_band=size_band,
                employee_count=employees,
                deployment=str(rng.choice(["cloud", "hybrid"])),
                tech_stack=str(rng.choice(["dbt", "hubspot", "dbt;hubspot"])),
                **noise(),
            )
        )
        poor = rng.random() < 0.15
        metrics.append(
            customer_metrics(
                account_id,
                tenure=int(rng.integers(6, 30)),
                nrr=float(rng.uniform(0.85, 1.1)),
                grr=0.8 if poor else 0.95,
                csat=float(rng.uniform(3.0, 4.3)),
                tickets=float(rng.uniform(0.5, 2.0)),
                expansion=0.0 if poor else float(rng.uniform(0, 200)),
            )
        )
    for i in range(60):
        account_id = f"X{i:02d}"
        accounts.append(
            account(
                account_id,
                industry=str(rng.choice(["retail", "logistics"])),
                size_band="100-499",
                deployment="on_prem",
                business_model=str(rng.choice(["b2b_saas", "marketplace"])),
                tech_stack="hubspot",
                **noise(),
            )
        )
        metrics.append(
            customer_metrics(
                account_id,
                stage="churned",
                churned=True,
                fast_churn=rng.random() < 0.85,
                tenure=int(rng.integers(1, 4)),
                nrr=None,
                grr=None,
                csat=float(rng.uniform(1.0, 3.0)),
                tickets=float(rng.uniform(2.0, 6.0)),
                expansion=0.0,
            )
        )
    for i in range(80):
        account_id = f"P{i:02d}"
        size_band, employees = sizes[int(rng.integers(len(sizes)))]
        accounts.append(
            account(
                account_id,
                industry=str(rng.choice(industries + ["retail"])),
                size_band=size_band,
                employee_count=employees,
                deployment=str(rng.choice(["cloud", "hybrid", "on_prem"])),
                **noise(),
            )
        )
        metrics.append(customer_metrics(account_id, stage="prospect", tenure=None))
    for account_id, traits in (
        ("PROBE_A", {**GROUP_A, "country": "US"}),
        ("PROBE_B", {**GROUP_B, "country": "US"}),
        ("PROBE_ONPREM", {"industry": "retail", "deployment": "on_prem", "tech_stack": "hubspot"}),
    ):
        accounts.append(account(account_id, **traits))
        metrics.append(customer_metrics(account_id, stage="prospect", tenure=None))
    create_marts(con, accounts, metrics)


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA marts")
    yield connection
    connection.close()


def _labels(con) -> dict[str, tuple[float, str, list[str]]]:
    rows = con.execute(
        f"SELECT account_id, composite_score, outcome_label, worst_reasons FROM {LABEL_TABLE}"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


# --------------------------------------------------------------------------- label_customers


def test_label_eligibility_tenure_churn_and_stage(con):
    metrics = [
        customer_metrics("C6", tenure=6),  # exactly min_tenure_months: eligible
        customer_metrics("C5", tenure=5),  # too young
        customer_metrics("CH", stage="churned", churned=True, tenure=1, expansion=0),
        customer_metrics("OLD", tenure=40),
        customer_metrics("P", stage="prospect", tenure=None),
        customer_metrics("OP", stage="open_pipeline", tenure=None),
        # a prospect row with a tenure (bad data) is still no customer
        customer_metrics("P2", stage="prospect", tenure=24),
    ]
    accounts = [account(m["account_id"]) for m in metrics]
    # another date's facts are ignored: C5 was old enough then, OLD was a prospect
    metrics += [
        customer_metrics("C5", tenure=30, as_of=EARLIER),
        customer_metrics("OLD", stage="prospect", tenure=None, as_of=EARLIER),
    ]
    create_marts(con, accounts, metrics)
    assert label_customers(con, LearnedSettings(), AS_OF) == 3
    assert set(_labels(con)) == {"C6", "CH", "OLD"}
    assert label_customers(con, LearnedSettings(min_tenure_months=5), AS_OF) == 4


def test_composite_is_hand_computed_and_missing_weights_are_renormalised(con):
    metrics = [
        customer_metrics("A", tenure=30, nrr=1.3, csat=5.0, tickets=None),
        customer_metrics("B", tenure=20, nrr=1.1, csat=None, tickets=None),
        customer_metrics("C", tenure=10, nrr=0.95, grr=0.95, csat=3.0, tickets=None),
        customer_metrics("D", tenure=8, nrr=None, grr=None, csat=4.0, tickets=None),
        customer_metrics(
            "F",
            stage="churned",
            churned=True,
            fast_churn=True,
            tenure=2,
            nrr=None,
            grr=None,
            csat=2.0,
            tickets=None,
            expansion=None,
        ),
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    assert label_customers(con, LearnedSettings(best_share=0.4), AS_OF) == 5
    labels = _labels(con)
    # percent ranks over the 5 eligible customers (n - 1 = 4 steps):
    #   retention (churned first, then tenure): F 0, D .25, C .5, B .75, A 1
    #   nrr (A, B, C only): C 0, B .5, A 1;  csat (A, C, D, F): F 0, C 1/3, D 2/3, A 1
    #   support burden: nobody has it, so the weight drops out everywhere.
    expected = {
        "A": (0.35 * 1 + 0.25 * 1 + 0.2 * 1) / 0.8,
        "B": (0.35 * 0.75 + 0.25 * 0.5) / (0.35 + 0.25),  # csat missing
        "C": (0.35 * 0.5 + 0.25 * 0 + 0.2 / 3) / 0.8,
        "D": (0.35 * 0.25 + 0.2 * 2 / 3) / (0.35 + 0.2),  # nrr missing
        "F": 0.0,
    }
    for account_id, composite in expected.items():
        assert labels[account_id][0] == pytest.approx(composite), account_id
    # top 40% by composite: A (1.0) and B (0.646); D (0.40) beats C (0.30) only because the
    # weights are renormalised
    assert {a for a, row in labels.items() if row[1] == "best"} == {"A", "B"}
    assert labels["F"][1:] == ("worst", ["churned_within_90_days", "never_expanded_poor_retention"])
    assert labels["C"][1] == labels["D"][1] == "middle"

    label_customers(con, LearnedSettings(best_share=0.2), AS_OF)
    assert {a for a, row in _labels(con).items() if row[1] == "best"} == {"A"}


def test_nps_and_product_usage_join_the_composite_when_present(con):
    metrics = [
        customer_metrics("A", tenure=30, nrr=None, grr=None, csat=None, tickets=None, nps=9.0,
                         usage_days=10),
        customer_metrics("B", tenure=20, nrr=None, grr=None, csat=None, tickets=None, nps=3.0,
                         usage_days=80),
        customer_metrics("C", tenure=10, nrr=None, grr=None, csat=None, tickets=None,
                         usage_days=40),
    ]  # fmt: skip
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    label_customers(con, LearnedSettings(), AS_OF)
    labels = _labels(con)
    # retention C 0, B .5, A 1; nps (A, B) B 0, A 1; usage A 0, C .5, B 1
    expected = {
        "A": (0.35 * 1 + 0.15 * 1 + 0.15 * 0) / 0.65,
        "B": (0.35 * 0.5 + 0.15 * 0 + 0.15 * 1) / 0.65,
        "C": (0.35 * 0 + 0.15 * 0.5) / 0.5,  # no NPS answer: its weight drops out
    }
    for account_id, composite in expected.items():
        assert labels[account_id][0] == pytest.approx(composite), account_id


def test_without_billing_labels_come_from_deal_outcomes(con):
    """No subscriptions (is_churned NULL everywhere) but won and lost deals: accounts with
    closed deals are ranked by win rate; one that never won is worst, the bottom best_share
    too (every account may have won something), the top best_share best; an account with
    only open deals is not labelled."""
    won_lost = {"W1": (3, 0), "W2": (2, 1), "W3": (1, 1), "W4": (1, 3), "L": (0, 3), "O": (0, 0)}
    metrics = []
    for account_id, (won, lost) in won_lost.items():
        row = customer_metrics(account_id, churned=None)
        row.update(opportunities_won=won, opportunities_lost=lost, is_churned_within_90_days=None)
        metrics.append(row)
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    assert label_customers(con, LearnedSettings(best_share=0.25), AS_OF) == 5
    labels = _labels(con)
    # win rates L 0, W4 .25, W3 .5, W2 .67, W1 1 -> percent ranks 0, .25, .5, .75, 1
    assert labels["W1"][:2] == (1.0, "best") and labels["W2"][1] == "best"
    assert labels["W3"][1] == "middle"
    assert labels["W4"][1:] == ("worst", ["lowest_win_rate"])
    assert labels["L"][1:] == ("worst", ["only_lost_deals"])
    assert "O" not in labels

    # Ties: most accounts never won, the others won every deal. Ranked from one end only,
    # the 100% accounts sat below the top share and nobody was best.
    tied = {f"Z{i}": (0, 2) for i in range(6)} | {f"T{i}": (2, 0) for i in range(4)}
    tied_metrics = []
    for account_id, (won, lost) in tied.items():
        row = customer_metrics(account_id, churned=None)
        row.update(opportunities_won=won, opportunities_lost=lost, is_churned_within_90_days=None)
        tied_metrics.append(row)
    create_marts(con, [account(m["account_id"]) for m in tied_metrics], tied_metrics)
    label_customers(con, LearnedSettings(best_share=0.2), AS_OF)
    tied_labels = {a: row[1] for a, row in _labels(con).items()}
    assert tied_labels == {a: "worst" if a.startswith("Z") else "best" for a in tied}
    # Every account at the same rate: none is the lowest, so none is worst by rate.
    for row in tied_metrics:
        row.update(opportunities_won=1, opportunities_lost=1)
    create_marts(con, [account(m["account_id"]) for m in tied_metrics], tied_metrics)
    label_customers(con, LearnedSettings(best_share=0.2), AS_OF)
    assert {row[1] for row in _labels(con).values()} == {"best"}

    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    con.execute("UPDATE marts.fct_account_metrics SET opportunities_won = NULL, "
                "opportunities_lost = NULL")  # fmt: skip
    with pytest.raises(NotEnoughCustomersError, match="no outcomes to learn"):
        label_customers(con, LearnedSettings(), AS_OF)


def test_worst_reasons_and_worst_overrides_best(con):
    metrics = [
        # the best composite of all (longest, highest NRR and CSAT) but the heaviest support
        customer_metrics("TOP", tenure=60, nrr=2.0, csat=5.0, tickets=10.0),
        customer_metrics("NOEXP_POOR", tenure=30, nrr=0.8, grr=0.8, expansion=0, tickets=1.0),
        customer_metrics("NOEXP_OK", tenure=30, nrr=0.95, grr=0.95, expansion=0, tickets=1.5),
        customer_metrics("NOEXP_NOGRR", tenure=7, nrr=None, grr=None, expansion=0, tickets=2.0),
        customer_metrics("EXP_POOR", tenure=30, nrr=0.85, grr=0.7, expansion=200, tickets=2.5),
        customer_metrics(
            "LATE_CHURN", stage="churned", churned=True, tenure=14, expansion=50, tickets=3.0
        ),
        customer_metrics(
            "LATE_CHURN_NOEXP", stage="churned", churned=True, tenure=14, expansion=0, tickets=3.5
        ),
        customer_metrics(
            "FAST",
            stage="churned",
            churned=True,
            fast_churn=True,
            tenure=1,
            expansion=100,
            tickets=4.0,
        ),
        customer_metrics("M1", tenure=12, tickets=4.5),
        customer_metrics("M2", tenure=13, tickets=5.0),  # 2nd heaviest of 10: not top decile
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    label_customers(con, LearnedSettings(best_share=0.2), AS_OF)
    labels = _labels(con)
    reasons = {a: row[2] for a, row in labels.items()}
    assert reasons == {
        "TOP": ["top_decile_support_burden"],
        "NOEXP_POOR": ["never_expanded_poor_retention"],
        "NOEXP_OK": [],
        "NOEXP_NOGRR": [],
        "EXP_POOR": [],
        "LATE_CHURN": [],
        "LATE_CHURN_NOEXP": ["never_expanded_poor_retention"],
        "FAST": ["churned_within_90_days"],
        "M1": [],
        "M2": [],
    }
    assert max(labels, key=lambda a: labels[a][0]) == "TOP"
    assert labels["TOP"][1] == "worst"  # worst wins over the top composite
    assert {a for a, row in labels.items() if row[1] == "worst"} == {
        a for a, r in reasons.items() if r
    }


def _percent_rank(values: np.ndarray) -> np.ndarray:
    """SQL percent_rank (ties share the lowest rank) over the non-NaN values; NaN stays NaN."""
    result = np.full(len(values), np.nan)
    known = ~np.isnan(values)
    ordered = np.sort(values[known])
    if known.sum() == 1:
        result[known] = 0.0
    elif known.any():
        result[known] = np.searchsorted(ordered, values[known], side="left") / (known.sum() - 1)
    return result


def test_best_is_top_share_by_composite_on_generated_customers(con):
    rng = np.random.default_rng(3)
    n = 50
    tenure = rng.permutation(np.arange(6, 6 + n))
    nrr = rng.uniform(0.8, 1.6, n).round(4)
    nrr[rng.choice(n, 8, replace=False)] = np.nan
    csat = rng.uniform(1, 5, n).round(4)
    csat[rng.choice(n, 10, replace=False)] = np.nan
    tickets = rng.uniform(0.1, 3, n).round(4)
    tickets[rng.choice(n, 5, replace=False)] = np.nan
    metrics = [
        customer_metrics(
            f"A{i:02d}",
            tenure=int(tenure[i]),
            nrr=None if np.isnan(nrr[i]) else float(nrr[i]),
            csat=None if np.isnan(csat[i]) else float(csat[i]),
            tickets=None if np.isnan(tickets[i]) else float(tickets[i]),
        )
        for i in range(n)
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    label_customers(con, LearnedSettings(), AS_OF)
    labels = _labels(con)

    weights = np.array([0.35, 0.25, 0.2, 0.2])
    ranks = np.column_stack(
        [
            _percent_rank(tenure.astype(float)),
            _percent_rank(nrr),
            _percent_rank(csat),
            1 - _percent_rank(tickets),
        ]
    )
    present = ~np.isnan(ranks)
    composite = np.nansum(ranks * weights, axis=1) / (present * weights).sum(axis=1)
    for i in range(n):
        assert labels[f"A{i:02d}"][0] == pytest.approx(composite[i])
    # top decile of support burden among the 45 with a value: an account is in it when fewer
    # than 10% of them are heavier, so the heaviest 5 (4 / 45 < 10% <= 5 / 45)
    known = ~np.isnan(tickets)
    assert known.sum() == 45
    heavy = {f"A{i:02d}" for i in np.argsort(-np.where(known, tickets, -1))[:5]}
    top_fifth = {f"A{i:02d}" for i in np.argsort(-composite)[: n // 5]}
    assert {a for a, row in labels.items() if row[1] == "worst"} == heavy
    assert {a for a, row in labels.items() if row[1] == "best"} == top_fifth - heavy


# --------------------------------------------------------------------------- build_attribute_bins


def _features(con, rows: list[tuple]) -> None:
    con.execute(
        "CREATE OR REPLACE TABLE features (account_id VARCHAR, industry VARCHAR, "
        "country VARCHAR, employee_count BIGINT, tech_stack VARCHAR)"
    )
    insert_rows(con, "features", rows)


def _bins(con) -> dict[tuple[str, str], str]:
    rows = con.execute(long_bins_sql()).fetchall()
    result = {(a, attribute): bin_ for a, attribute, bin_ in rows}
    assert len(result) == len(rows), "more than one bin for an account and attribute"
    return result


def test_bins_missing_unknown_other_and_skipped_attributes(con):
    rows = (
        [(f"F{i}", "FinTech" if i % 2 else " fintech ", "US", i, None) for i in range(4)]
        + [(f"S{i}", "software", "GB", i, None) for i in range(3)]
        + [
            ("R1", "retail", "US", 1, None),  # rare: other
            ("R2", "Retail ", "US", 1, None),
            ("N1", None, "US", 1, None),
            ("N2", "unknown", "US", 1, None),
            ("N3", "  ", None, 1, None),
            ("N4", "UNKNOWN", "US", 1, None),
        ]
    )
    _features(con, rows)
    settings = LearnedSettings(
        attributes=("industry", "revenue_band", "country", "employee_count"), min_bin_accounts=3
    )
    used = build_attribute_bins(con, settings, "features")
    assert used == ["industry", "country", "employee_count"]  # no revenue_band column
    bins = _bins(con)
    assert len(bins) == len(rows) * 3
    industry = {a: bins[(a, "industry")] for a, *_ in rows}
    assert {a: b for a, b in industry.items() if a.startswith("F")} == dict.fromkeys(
        ["F0", "F1", "F2", "F3"], "fintech"
    )
    assert industry["S0"] == "software"
    assert industry["R1"] == industry["R2"] == "other"  # 2 accounts < min_bin_accounts
    assert [industry[a] for a in ("N1", "N2", "N3", "N4")] == ["missing"] * 4
    # one missing account is still 'missing', not 'other'
    assert bins[("N3", "country")] == "missing"
    assert bins[("F0", "country")] == "us" and bins[("S0", "country")] == "gb"
    # numbers are values too: 1 occurs 7 times, the rest are rare
    assert bins[("N1", "employee_count")] == "1"
    assert bins[("F0", "employee_count")] == "other"
    # bin_counts: accounts per bin over all accounts, rare values counted as other
    counts = {
        (attribute, bin_): accounts
        for attribute, bin_, accounts in con.execute(f"SELECT * FROM {BIN_COUNT_TABLE}").fetchall()
    }
    assert {b: n for (a, b), n in counts.items() if a == "industry"} == {
        "fintech": 4,
        "software": 3,
        "other": 2,
        "missing": 4,
    }
    assert sum(n for (a, _), n in counts.items() if a == "employee_count") == len(rows)


def test_tech_stack_items_yes_no_missing(con):
    rows = (
        [(f"A{i}", "x", "US", 1, "Snowflake; DBT") for i in range(3)]
        + [(f"B{i}", "x", "US", 1, "dbt;hubspot ") for i in range(3)]
        + [(f"C{i}", "x", "US", 1, "HubSpot") for i in range(3)]
        + [
            ("D1", "x", "US", 1, "salesforce; dbt"),  # salesforce is rare: no attribute
            ("E1", "x", "US", 1, None),
            ("E2", "x", "US", 1, ""),
            ("E3", "x", "US", 1, " "),
        ]
    )
    _features(con, rows)
    settings = LearnedSettings(attributes=("tech_stack",), min_bin_accounts=3)
    used = build_attribute_bins(con, settings, "features")
    # most common first: dbt (7), hubspot (6), snowflake (3)
    assert used == ["tech_stack:dbt", "tech_stack:hubspot", "tech_stack:snowflake"]
    bins = _bins(con)
    assert len(bins) == len(rows) * 3
    assert [bins[("A0", a)] for a in used] == ["yes", "no", "yes"]
    assert [bins[("B1", a)] for a in used] == ["yes", "yes", "no"]
    assert [bins[("C2", a)] for a in used] == ["no", "yes", "no"]
    assert [bins[("D1", a)] for a in used] == ["yes", "no", "no"]
    for empty in ("E1", "E2", "E3"):
        assert [bins[(empty, a)] for a in used] == ["missing"] * 3, empty

    used = build_attribute_bins(
        con,
        LearnedSettings(attributes=("tech_stack",), min_bin_accounts=3, max_tech_items=2),
        "features",
    )
    assert used == ["tech_stack:dbt", "tech_stack:hubspot"]
    assert {attribute for (_, attribute) in _bins(con)} == set(used)


def test_no_usable_attribute_is_an_error(con):
    _features(con, [("A", "x", "US", 1, None)])
    with pytest.raises(ValueError, match="none of the learned attributes"):
        build_attribute_bins(con, LearnedSettings(attributes=("revenue_band",)), "features")


# --------------------------------------------------------------------------- fit_scorecard


def _scorecard_setup(con, seed: int = 11, best: int = 60, worst: int = 80, middle: int = 60):
    """Labelled customers where deployment=cloud marks the best ones; industry is noise."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, count, deployments, weights in (
        ("best", best, ["cloud", "hybrid", "on_prem"], [0.9, 0.05, 0.05]),
        ("worst", worst, ["cloud", "hybrid", "on_prem"], [0.15, 0.15, 0.7]),
        ("middle", middle, ["cloud", "hybrid", "on_prem"], [0.4, 0.3, 0.3]),
        (None, 50, ["cloud", "hybrid", "on_prem"], [0.4, 0.3, 0.3]),  # prospects
    ):
        for i in range(count):
            account_id = f"{label or 'prospect'}_{i:03d}"
            rows.append(
                (
                    account_id,
                    str(rng.choice(["software", "fintech", "retail", "media"])),
                    str(rng.choice(deployments, p=weights)),
                )
            )
            if label:
                labels.append((account_id, label))
    con.execute(
        "CREATE OR REPLACE TABLE features (account_id VARCHAR, industry VARCHAR, "
        "deployment VARCHAR)"
    )
    insert_rows(con, "features", rows)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LABEL_TABLE} (account_id VARCHAR, "
        "composite_score DOUBLE, outcome_label VARCHAR, worst_reasons VARCHAR[])"
    )
    insert_rows(con, LABEL_TABLE, [(a, 0.0, label, []) for a, label in labels])
    settings = LearnedSettings(attributes=("industry", "deployment"))
    return settings, build_attribute_bins(con, settings, "features")


def test_scorecard_rewards_the_value_of_the_best_on_the_odds_scale(con):
    settings, attributes = _scorecard_setup(con)
    card = fit_scorecard(con, settings, attributes)
    # Best customers against every other labelled customer, middle ones included.
    assert card.training_rows == 200 and card.best_rows == 60 and card.base_rate == 0.3
    assert max(card.points, key=card.points.get) == ("deployment", "cloud")
    assert card.points[("deployment", "cloud")] > 0
    assert card.points[("deployment", "on_prem")] < 0
    assert min(card.points, key=card.points.get) == ("deployment", "on_prem")
    assert card.woe[("deployment", "cloud")] > 0 > card.woe[("deployment", "on_prem")]
    # noise moves the score far less than the signal
    noise = [abs(p) for (attribute, _), p in card.points.items() if attribute == "industry"]
    assert (
        max(noise) < card.points[("deployment", "cloud")] - card.points[("deployment", "on_prem")]
    )
    # 20 points per doubling of the odds: a bin's points are its log-odds times 20 / ln 2.
    for key, points in card.points.items():
        assert points == pytest.approx(20 / np.log(2) * card.woe[key], abs=0.006), key
    assert card.support[("deployment", "cloud")] == sum(
        1
        for (deployment,) in con.execute(f"SELECT deployment FROM {CUSTOMER_BIN_TABLE}").fetchall()
        if deployment == "cloud"
    )

    worst_only = fit_scorecard(con, settings, attributes, trained_on="best_vs_worst")
    assert worst_only.training_rows == 140 and worst_only.best_rows == 60


def test_scorecard_scale_follows_the_settings(con):
    settings, attributes = _scorecard_setup(con)
    card = fit_scorecard(con, settings, attributes)
    steeper = fit_scorecard(
        con,
        LearnedSettings(**{**settings.__dict__, "points_to_double_odds": 10.0}),
        attributes,
    )
    for key, points in card.points.items():
        assert steeper.points[key] == pytest.approx(points / 2, abs=0.01)
    shifted = fit_scorecard(
        con,
        LearnedSettings(**{**settings.__dict__, "score_at_base_odds": 60.0}),
        attributes,
    )
    assert shifted.base_points == pytest.approx(card.base_points + 10, abs=0.01)
    assert shifted.points == card.points


def test_not_enough_customers(con):
    settings, attributes = _scorecard_setup(con, best=10, worst=10, middle=0)
    with pytest.raises(NotEnoughCustomersError, match="10 best customers and 10 other"):
        fit_scorecard(con, settings, attributes)
    settings, attributes = _scorecard_setup(con, best=60, worst=0, middle=0)
    with pytest.raises(NotEnoughCustomersError, match="60 best customers and 0 other"):
        fit_scorecard(con, settings, attributes)
    settings, attributes = _scorecard_setup(con, best=0, worst=60)
    with pytest.raises(NotEnoughCustomersError, match="0 best customers and 120 other"):
        fit_scorecard(con, settings, attributes)
    # The middle customers are evidence too: with them the same ten best are enough.
    settings, attributes = _scorecard_setup(con, best=10, worst=10, middle=60)
    assert fit_scorecard(con, settings, attributes).training_rows == 80


def test_no_labelled_customers_at_all_is_not_enough_customers(con):
    settings, attributes = _scorecard_setup(con, best=0, worst=0, middle=20)
    with pytest.raises(NotEnoughCustomersError):
        fit_scorecard(con, settings, attributes)


def test_best_and_worst_alike_is_not_enough_customers(con):
    rows = [(f"B{i}", "x", "cloud") for i in range(30)] + [
        (f"W{i}", "x", "cloud") for i in range(30)
    ]
    con.execute("CREATE TABLE features (account_id VARCHAR, industry VARCHAR, deployment VARCHAR)")
    insert_rows(con, "features", rows)
    con.execute(
        f"CREATE TEMP TABLE {LABEL_TABLE} AS SELECT account_id, 0.0 AS composite_score, "
        "CASE WHEN account_id LIKE 'B%' THEN 'best' ELSE 'worst' END AS outcome_label, "
        "CAST([] AS VARCHAR[]) AS worst_reasons FROM features"
    )
    settings = LearnedSettings(attributes=("industry", "deployment"))
    attributes = build_attribute_bins(con, settings, "features")
    with pytest.raises(NotEnoughCustomersError, match="look alike"):
        fit_scorecard(con, settings, attributes)


# --------------------------------------------------------------------------- through run_scoring


def _factor_points(con) -> dict[str, tuple[Decimal, dict[str, Decimal]]]:
    rows = con.execute(
        "SELECT account_id, fit_score, factor_points FROM scored_accounts"
    ).fetchall()
    return {a: (score, {f["factor"]: f["points"] for f in factors}) for a, score, factors in rows}


def test_pinned_points_replace_learned_points(tmp_path, con):
    synthetic_warehouse(con)
    free = run_scoring(con, load_config(tmp_path, "learned"), AS_OF, SCORED_AT)
    assert free.fallback_reason is None
    learned_cloud = {
        segment: card.points[("deployment", "cloud")] for segment, card in free.scorecards.items()
    }
    assert all(points != 12.5 for points in learned_cloud.values())

    config = load_config(tmp_path, "learned", pinned_points={"deployment=cloud": 12.5})
    pinned = run_scoring(con, config, AS_OF, SCORED_AT)
    assert pinned.fallback_reason is None
    card_rows = con.execute(
        "SELECT DISTINCT icp_segment, points FROM scorecard_points "
        "WHERE attribute = 'deployment' AND bin = 'cloud'"
    ).fetchall()
    assert sorted(card_rows) == sorted((s, Decimal("12.50")) for s in pinned.scorecards)
    cloud_accounts = {
        a
        for (a,) in con.execute(
            "SELECT account_id FROM scoring_features WHERE deployment = 'cloud'"
        ).fetchall()
    }
    scored = _factor_points(con)
    assert cloud_accounts
    for account_id in cloud_accounts:
        assert scored[account_id][1]["deployment=cloud"] == Decimal("12.50"), account_id
    profile = con.execute(
        "SELECT DISTINCT points FROM icp_profile_rows WHERE attribute = 'deployment' "
        "AND value = 'cloud'"
    ).fetchall()
    assert profile == [(Decimal("12.50"),)]
    # other values keep their learned points
    other = con.execute(
        "SELECT count(*) FROM scorecard_points WHERE attribute = 'deployment' AND bin = 'on_prem' "
        "AND points = 12.5"
    ).fetchone()[0]
    assert other == 0


def test_blend_weights_rule_and_learned_points(tmp_path):
    results = {}
    for model in ("rules", "learned", "blend"):
        connection = duckdb.connect()
        connection.execute("CREATE SCHEMA marts")
        synthetic_warehouse(connection)
        run = run_scoring(
            connection, load_config(tmp_path, model, blend_learned_weight=0.7), AS_OF, SCORED_AT
        )
        assert run.fallback_reason is None
        results[model] = _factor_points(connection)
        connection.close()
    w = Decimal("0.7")
    two_places = Decimal("0.01")
    for account_id, (score, factors) in results["blend"].items():
        rules, learned = results["rules"][account_id][1], results["learned"][account_id][1]
        rules_base = rules.pop("base_points", Decimal(0))
        learned_base = learned.pop("base_points", Decimal(0))
        rules.pop("score_bounds_0_100", None)
        learned.pop("score_bounds_0_100", None)
        expected = {f"rule:{f}": ((1 - w) * p).quantize(two_places) for f, p in rules.items()}
        expected |= {f: (w * p).quantize(two_places) for f, p in learned.items()}
        expected["base_points"] = ((1 - w) * rules_base).quantize(two_places) + (
            w * learned_base
        ).quantize(two_places)
        expected = {f: p for f, p in expected.items() if p != 0}
        bounds = factors.pop("score_bounds_0_100", Decimal(0))
        assert factors.keys() == expected.keys(), account_id
        for factor, points in factors.items():
            # half-way cases may round either way once
            assert abs(points - expected[factor]) <= two_places, (account_id, factor)
        assert sum(factors.values()) + bounds == score, account_id
        assert 0 <= score <= 100


def test_young_customer_base_falls_back_to_rules(tmp_path, con):
    metrics = [customer_metrics(f"C{i}", tenure=2) for i in range(40)] + [
        customer_metrics(f"P{i}", stage="prospect", tenure=None) for i in range(10)
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    run = run_scoring(con, load_config(tmp_path, "learned"), AS_OF, SCORED_AT)
    assert run.fallback_reason
    assert run.score_version.endswith("-fallback")
    assert con.execute("SELECT count(*) FROM scored_accounts").fetchone()[0] == 50


def test_attributes_that_do_not_predict_outcomes_out_of_sample_fall_back_to_rules(tmp_path, con):
    """Customers whose outcomes are independent of their firmographics: the learned fit
    would still find 'points' in sample; out of sample it cannot tell best from worst, so the
    run says no_signal and scores with the rules (issue: real data with no signal)."""
    rng = np.random.default_rng(8)
    industries = ["software", "fintech", "retail", "healthcare", "media"]
    countries = ["US", "GB", "DE", "FR"]
    metrics, accounts = [], []
    for i in range(240):
        churned = bool(rng.random() < 0.3)
        metrics.append(
            customer_metrics(
                f"N{i:03d}",
                stage="churned" if churned else "customer",
                churned=churned,
                fast_churn=churned and bool(rng.random() < 0.5),
                tenure=int(rng.integers(6, 40)),
                nrr=float(rng.uniform(0.7, 1.5)),
                csat=float(rng.uniform(1, 5)),
                tickets=float(rng.uniform(0.1, 3)),
                expansion=float(rng.choice([0.0, 50.0])),
            )
        )
        accounts.append(
            account(
                f"N{i:03d}",
                industry=str(rng.choice(industries)),
                country=str(rng.choice(countries)),
                size_band=str(rng.choice(["20-99", "100-499", "500-999"])),
            )
        )
    create_marts(con, accounts, metrics)
    run = run_scoring(con, load_config(tmp_path, "learned"), AS_OF, SCORED_AT)
    assert run.fallback_reason.startswith(
        "no signal: this data does not support a learned ICP on these attributes"
    )
    assert "attributes tried: industry" in run.fallback_reason
    assert run.out_of_sample.verdict == "no_signal"
    assert run.score_version.endswith("-fallback")
    rows = dict(
        (measure, (value, status))
        for measure, value, status in con.execute(
            "SELECT measure, value, status FROM icp_validation_rows"
        ).fetchall()
    )
    assert rows["out_of_sample_auc"][1] == "no_signal"
    assert rows["out_of_sample_auc"][0] == pytest.approx(run.out_of_sample.auc)
    assert rows["learned_model"][1] == "warn"


# --------------------------------------------------------------------------- find_icp_segments


def _labels_and_bins(con, accounts: dict[str, tuple[str, dict[str, str]]]) -> None:
    """``customer_labels`` and ``account_bins`` straight from {account: (label, {attr: bin})}."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LABEL_TABLE} (account_id VARCHAR, "
        "composite_score DOUBLE, outcome_label VARCHAR, worst_reasons VARCHAR[])"
    )
    labelled = [(a, label, []) for a, (label, _) in accounts.items() if label]
    insert_rows(con, LABEL_TABLE, [(a, 0.0, label, reasons) for a, label, reasons in labelled])
    create_bins(con, {a: bins for a, (_, bins) in accounts.items()})


SEGMENT_A = "industry=fintech & size_band=500-999"
SEGMENT_B = "industry=healthcare & size_band=20-99"


def _segment_members(con) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for account_id, segment in con.execute(f"SELECT * FROM {SEGMENT_TABLE}").fetchall():
        members.setdefault(segment, set()).add(account_id)
    return members


def _noise_bins(rng) -> dict[str, str]:
    return {
        "country": str(rng.choice(["us", "gb", "de", "nl"])),
        "funding_stage": str(rng.choice(["seed", "series_a", "series_b", "series_c_plus"])),
        "deployment": str(rng.choice(["cloud", "hybrid"])),
        "tech_stack:dbt": str(rng.choice(["yes", "no"])),
    }


def test_two_distinct_groups_of_best_customers_make_two_named_segments(con):
    rng = np.random.default_rng(5)
    accounts = {}
    for i in range(30):
        bins = {"industry": "fintech", "size_band": "500-999", **_noise_bins(rng)}
        accounts[f"A{i:02d}"] = ("best", bins)
    for i in range(25):
        bins = {"industry": "healthcare", "size_band": "20-99", **_noise_bins(rng)}
        accounts[f"B{i:02d}"] = ("best", bins)
    for i in range(40):
        accounts[f"W{i:02d}"] = ("worst", {"industry": "retail", "size_band": "1-19"})
    _labels_and_bins(con, accounts)
    segments = find_icp_segments(con, max_segments=3, min_silhouette=0.25, min_segment_share=0.2)
    # named by the two traits that set them apart, ties alphabetically
    by_name = {s.name: s for s in segments}
    assert set(by_name) == {SEGMENT_A, SEGMENT_B}
    fintech, healthcare = by_name[SEGMENT_A], by_name[SEGMENT_B]
    assert (fintech.best_customers, healthcare.best_customers) == (30, 25)
    assert fintech.silhouette is not None and fintech.silhouette >= 0.25
    members = _segment_members(con)
    assert members[fintech.name] == {f"A{i:02d}" for i in range(30)}
    assert members[healthcare.name] == {f"B{i:02d}" for i in range(25)}
    # deterministic
    again = find_icp_segments(con, max_segments=3, min_silhouette=0.25, min_segment_share=0.2)
    assert again == segments


def test_homogeneous_best_customers_are_one_core_segment(con):
    rng = np.random.default_rng(8)
    accounts = {
        f"A{i:02d}": ("best", {"industry": "fintech", "size_band": "100-499", **_noise_bins(rng)})
        for i in range(60)
    }
    accounts |= {f"W{i:02d}": ("worst", {"industry": "retail"}) for i in range(30)}
    accounts |= {f"M{i:02d}": ("middle", {"industry": "media"}) for i in range(30)}
    _labels_and_bins(con, accounts)
    segments = find_icp_segments(con, max_segments=3, min_silhouette=0.25, min_segment_share=0.2)
    assert segments == [IcpSegment(CORE_SEGMENT, 60, None)]
    assert _segment_members(con) == {CORE_SEGMENT: {f"A{i:02d}" for i in range(60)}}


def test_a_small_second_group_is_no_segment_of_its_own(con):
    rng = np.random.default_rng(9)
    accounts = {
        f"A{i:02d}": ("best", {"industry": "fintech", "size_band": "100-499", **_noise_bins(rng)})
        for i in range(50)
    }
    accounts |= {
        f"B{i:02d}": ("best", {"industry": "healthcare", "size_band": "20-99", **_noise_bins(rng)})
        for i in range(5)
    }
    _labels_and_bins(con, accounts)
    segments = find_icp_segments(con, max_segments=3, min_silhouette=0.25, min_segment_share=0.2)
    assert [s.name for s in segments] == [CORE_SEGMENT]


def test_too_few_best_customers_are_one_core_segment(con):
    accounts = {
        f"A{i}": ("best", {"industry": "fintech" if i < 10 else "healthcare"}) for i in range(19)
    }
    _labels_and_bins(con, accounts)
    segments = find_icp_segments(con, max_segments=3, min_silhouette=0.25, min_segment_share=0.2)
    assert segments == [IcpSegment(CORE_SEGMENT, 19, None)]


def test_learned_points_keep_each_account_in_its_highest_segment_ties_to_the_first(con):
    create_bins(
        con,
        {"A": {"industry": "fintech"}, "B": {"industry": "retail"}, "C": {"industry": "media"}},
    )
    con.execute(
        "CREATE TEMP TABLE cards (icp_segment VARCHAR, attribute VARCHAR, bin VARCHAR, "
        "points DECIMAL(7, 2), base_points DECIMAL(7, 2))"
    )
    insert_rows(
        con,
        "cards",
        [
            ("one", "industry", "fintech", Decimal("5"), Decimal("10")),
            ("one", "industry", "retail", Decimal("1"), Decimal("10")),
            ("two", "industry", "fintech", Decimal("1"), Decimal("12")),
            ("two", "industry", "retail", Decimal("3.5"), Decimal("12")),
        ],
    )
    learned_factor_points(con, "cards", ["two", "one"], "points")
    rows = con.execute(
        """
        SELECT points.account_id, points.icp_segment, points.base_points,
               list(catalogue.factor || ':' || catalogue.points ORDER BY catalogue.factor)
                   FILTER (WHERE catalogue.factor IS NOT NULL)
        FROM points
        LEFT JOIN (SELECT account_id, unnest(factor_codes) AS factor_code FROM points) AS codes
            USING (account_id)
        LEFT JOIN points_catalogue AS catalogue USING (factor_code)
        GROUP BY ALL ORDER BY 1
        """
    ).fetchall()
    # A: 15 in one, 13 in two; B: 11 vs 15.5; C (media, in neither card): 10 vs 12.
    assert rows == [
        ("A", "one", Decimal("10.00"), ["industry=fintech:5.00"]),
        ("B", "two", Decimal("12.00"), ["industry=retail:3.50"]),
        ("C", "two", Decimal("12.00"), None),
    ]
    con.execute("UPDATE cards SET base_points = 10 WHERE icp_segment = 'two'")
    learned_factor_points(con, "cards", ["two", "one"], "points")
    segment_of = dict(con.execute("SELECT * FROM account_segments").fetchall())
    assert segment_of == {"A": "one", "B": "two", "C": "two"}  # C: 10 = 10, the first listed


@pytest.fixture(scope="module")
def synthetic_learned_run(tmp_path_factory):
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA marts")
    synthetic_warehouse(connection)
    config = load_config(tmp_path_factory.mktemp("config"), "learned")
    run = run_scoring(connection, config, AS_OF, SCORED_AT)
    yield connection, run
    connection.close()


def test_run_scoring_puts_an_account_in_the_segment_it_resembles(synthetic_learned_run):
    con, run = synthetic_learned_run
    assert run.fallback_reason is None
    assert {s.name for s in run.segments} == {SEGMENT_A, SEGMENT_B}
    segment_a, segment_b = SEGMENT_A, SEGMENT_B
    segment_of = dict(con.execute("SELECT account_id, icp_segment FROM scored_accounts").fetchall())
    assert segment_of["PROBE_A"] == segment_a
    assert segment_of["PROBE_B"] == segment_b
    # every account is scored in some segment, the best customers in their own group's
    assert all(segment_of[a] in (segment_a, segment_b) for a in segment_of)
    best = {
        a
        for (a,) in con.execute(
            f"SELECT account_id FROM {LABEL_TABLE} WHERE outcome_label = 'best'"
        ).fetchall()
    }
    assert all(segment_of[a] == (segment_a if a.startswith("A") else segment_b) for a in best)
    # the two groups of great customers are the best ones
    assert best and all(a[0] in "AB" for a in best)
    # and the lookalikes score high, the churner lookalike low
    scores = dict(con.execute("SELECT account_id, fit_score FROM scored_accounts").fetchall())
    assert scores["PROBE_A"] >= 70 and scores["PROBE_B"] >= 70
    assert scores["PROBE_ONPREM"] < 40
    # factor points (with the learned base) add up to the score
    for account_id, score, factors in con.execute(
        "SELECT account_id, fit_score, factor_points FROM scored_accounts"
    ).fetchall():
        assert sum(f["points"] for f in factors) == score, account_id
    # learned anti-ICP: the on-prem churners are flagged, prospects included
    reasons = dict(
        con.execute("SELECT account_id, anti_icp_reasons FROM scored_accounts").fetchall()
    )
    assert "learned_fast_churn:deployment=on_prem" in reasons["PROBE_ONPREM"]
    assert reasons["PROBE_A"] == reasons["PROBE_B"] == []


# --------------------------------------------------------------------------- learned anti-ICP

#: (prefix, count, fast churners, heavy support, bins unlike the defaults)
ANTI_ICP_GROUPS = [
    ("ONPREM", 60, 51, 0, {"deployment": "on_prem"}),  # 85%: a rule
    ("RETAIL", 14, 14, 0, {"industry": "retail"}),  # 100% but fewer than min_customers
    ("FR", 30, 19, 0, {"country": "fr"}),  # lift 2.4, but 63% of 30 is no sure majority
    ("PAIR", 60, 54, 0, {"business_model": "marketplace", "funding_stage": "seed"}),  # 90%
    ("MKT", 60, 0, 0, {"business_model": "marketplace"}),  # marketplace alone: 54 / 120
    ("SEED", 60, 0, 0, {"funding_stage": "seed"}),  # seed alone: 54 / 120
    ("GAMING", 40, 0, 38, {"industry": "gaming"}),  # heavy support, 95%
    ("FILL", 200, 0, 0, {}),
]
ANTI_ICP_DEFAULTS = {
    "industry": "software",
    "country": "us",
    "deployment": "cloud",
    "business_model": "b2b_saas",
    "funding_stage": "series_a",
    "tech_stack:dbt": "no",  # 'no' is never a trait
}
ANTI_ICP_PROSPECTS = {
    "PR_ONPREM": {"deployment": "on_prem"},
    "PR_MKT": {"business_model": "marketplace"},
    "PR_PAIR": {"business_model": "marketplace", "funding_stage": "seed"},
    "PR_BOTH": {"deployment": "on_prem", "business_model": "marketplace", "funding_stage": "seed"},
    "PR_CLEAN": {},
    "PR_MISSING": {"deployment": "missing"},
}
ON_PREM = "learned_fast_churn:deployment=on_prem"
PAIR = "learned_fast_churn:business_model=marketplace&funding_stage=seed"
GAMING = "learned_heavy_support:industry=gaming"
RETAIL = "learned_fast_churn:industry=retail"
FRANCE = "learned_fast_churn:country=fr"
CUSTOMERS = sum(group[1] for group in ANTI_ICP_GROUPS)
FAST_CHURNERS = sum(group[2] for group in ANTI_ICP_GROUPS)
HEAVY = sum(group[3] for group in ANTI_ICP_GROUPS)


@pytest.fixture()
def anti_icp_con(con):
    labels, bins, metrics = [], {}, []
    for prefix, count, fast, heavy, traits in ANTI_ICP_GROUPS:
        for i in range(count):
            account_id = f"{prefix}{i:03d}"
            worst = ["top_decile_support_burden"] if i < heavy else []
            labels.append((account_id, "worst" if worst or i < fast else "middle", worst))
            metrics.append(customer_metrics(account_id, fast_churn=i < fast, churned=i < fast))
            bins[account_id] = {**ANTI_ICP_DEFAULTS, **traits}
    for account_id, traits in ANTI_ICP_PROSPECTS.items():
        bins[account_id] = {**ANTI_ICP_DEFAULTS, **traits}
        metrics.append(customer_metrics(account_id, stage="prospect", tenure=None))
    # a fast churn at another date is none now
    metrics.append(customer_metrics("FILL000", fast_churn=True, churned=True, as_of=EARLIER))
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    con.execute(
        f"CREATE TEMP TABLE {LABEL_TABLE} (account_id VARCHAR, composite_score DOUBLE, "
        "outcome_label VARCHAR, worst_reasons VARCHAR[])"
    )
    insert_rows(con, LABEL_TABLE, [(a, 0.0, label, reasons) for a, label, reasons in labels])
    create_bins(con, bins)
    return con, bins


def _family_wise_z(bins: dict[str, dict[str, str]], min_customers: int) -> float:
    """z of the Bonferroni-corrected 95% interval over every (group, outcome) tried: each value
    and pair of values with at least ``min_customers`` labelled customers, for both outcomes."""
    groups: Counter = Counter()
    for account_id, traits in bins.items():
        if account_id.startswith("PR_"):
            continue  # prospects are no customers
        kept = sorted((a, b) for a, b in traits.items() if b not in ("missing", "other", "no"))
        groups.update((trait,) for trait in kept)
        groups.update(combinations(kept, 2))
    tried = 2 * sum(1 for count in groups.values() if count >= min_customers)
    return NormalDist().inv_cdf(1 - 0.05 / (2 * tried))


def _wilson_low(successes: int, n: int, z: float) -> float:
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def test_learned_rules_need_size_lift_and_a_confident_rate(anti_icp_con):
    con, bins = anti_icp_con
    rules = learn_anti_icp_rules(con, AntiIcpSettings(), AS_OF)
    by_code = {rule.reason_code: rule for rule in rules}
    # retail: too few; fr: lift 2.4 but not surely a majority; marketplace and seed alone: 45%;
    # on-prem & us, on-prem & software: the same customers as on-prem, so no better
    assert set(by_code) == {ON_PREM, PAIR, GAMING}
    base = FAST_CHURNERS / CUSTOMERS
    assert by_code[ON_PREM].customers == 60
    assert by_code[ON_PREM].rate == pytest.approx(0.85)
    assert by_code[ON_PREM].lift == pytest.approx(0.85 / base)
    assert by_code[ON_PREM].conditions == (("deployment", "on_prem"),)
    assert by_code[PAIR].conditions == (
        ("business_model", "marketplace"),
        ("funding_stage", "seed"),
    )
    assert by_code[PAIR].lift == pytest.approx(0.9 / base)
    assert by_code[GAMING].lift == pytest.approx((38 / 40) / (HEAVY / CUSTOMERS))
    # strongest first (lift x sqrt(customers))
    assert [rule.reason_code for rule in rules] == [GAMING, PAIR, ON_PREM]
    stored = con.execute(
        "SELECT reason_code, attribute, bin, condition_count FROM learned_anti_icp_rules "
        "ORDER BY ALL"
    ).fetchall()
    assert stored == sorted(
        [
            (GAMING, "industry", "gaming", 1),
            (ON_PREM, "deployment", "on_prem", 1),
            (PAIR, "business_model", "marketplace", 2),
            (PAIR, "funding_stage", "seed", 2),
        ]
    )
    # the groups left out fail only on what the test says they fail on
    z = _family_wise_z(bins, 15)
    assert _wilson_low(19, 30, z) < 0.5 and (19 / 30) / base >= 2  # fr
    assert _wilson_low(54, 120, z) < 0.5  # marketplace alone, seed alone


def test_learned_rate_bound_is_wilson_at_a_family_wise_95_percent(anti_icp_con):
    con, bins = anti_icp_con
    z = _family_wise_z(bins, 15)
    assert z > 3  # hundreds of groups tried
    on_prem_low = _wilson_low(51, 60, z)
    pair_low, gaming_low = _wilson_low(54, 60, z), _wilson_low(38, 40, z)
    assert 0.5 < on_prem_low < min(pair_low, gaming_low)
    for min_rate, expected in (
        (on_prem_low - 1e-6, {ON_PREM, PAIR, GAMING}),
        (on_prem_low + 1e-6, {PAIR, GAMING}),
        (pair_low + 1e-6, {GAMING} if gaming_low > pair_low else set()),
    ):
        rules = learn_anti_icp_rules(con, AntiIcpSettings(min_rate=min_rate), AS_OF)
        assert {rule.reason_code for rule in rules} == expected, min_rate


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # the small retail group counts once 14 customers are enough
        (AntiIcpSettings(min_customers=14), {ON_PREM, PAIR, GAMING, RETAIL}),
        (AntiIcpSettings(min_customers=61), set()),
        (AntiIcpSettings(min_rate=0.2), {ON_PREM, PAIR, GAMING, FRANCE}),
        (AntiIcpSettings(min_lift=3.3), {PAIR, GAMING}),  # on-prem's lift is 3.23
        (AntiIcpSettings(max_rules=1), {GAMING}),
    ],
)
def test_learned_rule_thresholds(anti_icp_con, settings, expected):
    con, _ = anti_icp_con
    rules = learn_anti_icp_rules(con, settings, AS_OF)
    assert {rule.reason_code for rule in rules} == expected


def test_a_pair_is_kept_only_when_it_beats_both_singles(anti_icp_con):
    con, _ = anti_icp_con
    # make marketplace alone as bad as the pair: the pair no longer says anything new
    con.execute(
        "UPDATE marts.fct_account_metrics SET is_churned_within_90_days = true "
        "WHERE account_id LIKE 'MKT%'"
    )
    codes = {rule.reason_code for rule in learn_anti_icp_rules(con, AntiIcpSettings(), AS_OF)}
    assert "learned_fast_churn:business_model=marketplace" in codes
    assert PAIR not in codes


def test_learned_reasons_flag_exactly_the_matching_accounts(anti_icp_con):
    con, bins = anti_icp_con
    rules = learn_anti_icp_rules(con, AntiIcpSettings(), AS_OF)
    flagged = set(con.execute(learned_reasons_sql()).fetchall())
    expected = {
        (account_id, rule.reason_code)
        for account_id, traits in bins.items()
        for rule in rules
        if all(traits.get(attribute) == bin_ for attribute, bin_ in rule.conditions)
    }
    assert flagged == expected
    reasons: dict[str, set[str]] = {}
    for account_id, code in flagged:
        reasons.setdefault(account_id, set()).add(code)
    assert reasons["PR_ONPREM"] == {ON_PREM}
    assert reasons["PR_PAIR"] == {PAIR}
    assert reasons["PR_BOTH"] == {ON_PREM, PAIR}
    assert {"PR_MKT", "PR_CLEAN", "PR_MISSING"}.isdisjoint(reasons)
    assert len([a for a in reasons if a.startswith("ONPREM")]) == 60
    assert len([a for a in reasons if a.startswith("PAIR")]) == 60
    assert len([a for a in reasons if a.startswith("GAMING")]) == 40


def test_situational_reasons_for_current_customers_only(con):
    metrics = [customer_metrics(f"C{i}", tickets=float(i)) for i in range(10)]
    metrics[0] |= {"payment_failure_rate": 0.25}
    metrics[1] |= {"payment_failure_rate": 0.2, "grr_12m": 0.79}
    metrics[2] |= {"grr_12m": 0.8}
    metrics += [
        customer_metrics("CH", stage="churned", churned=True, tickets=99.0, grr=0.1)
        | {"payment_failure_rate": 1.0},
        customer_metrics("P", stage="prospect", tenure=None, tickets=None, grr=None),
        customer_metrics("NOTICKETS", tickets=None),
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    con.execute(
        "CREATE TEMP TABLE features AS SELECT * FROM marts.dim_accounts_history "
        "JOIN marts.fct_account_metrics USING (account_id, as_of_date)"
    )
    flagged = set(
        con.execute(
            situational_reasons_sql("features"),
            {"payment_failure": 0.25, "support_top_share": 0.1, "contraction_grr": 0.8},
        ).fetchall()
    )
    assert flagged == {
        ("C0", "repeated_payment_failures"),
        ("C1", "contraction"),
        ("C9", "heavy_support_per_dollar"),  # heaviest of the 10 customers with a value
    }


def test_learned_run_without_funding_and_hiring_columns(tmp_path, con):
    synthetic_warehouse(con)
    con.execute("ALTER TABLE marts.fct_account_metrics DROP COLUMN days_since_last_funding")
    con.execute("ALTER TABLE marts.dim_accounts_history DROP COLUMN open_roles")
    run = run_scoring(con, load_config(tmp_path, "learned"), AS_OF, SCORED_AT)
    assert run.fallback_reason is None
    assert con.execute("SELECT count(*) FROM icp_profile_rows").fetchone()[0] > 0


def _backtest_marts(con, config, tied_prospects: int = 0, reverse: bool = False) -> date:
    """Marts for a backtest (see the test below); returns the backtest date.

    ``tied_prospects`` more fintech prospects, every other one won, all with the firmographics
    of the won ones (so their scores tie); ``reverse`` writes the rows in reverse order."""
    from datetime import timedelta

    then = AS_OF - timedelta(days=config.validation.backtest_days)
    history, metrics = [], []

    def add(
        account_id: str,
        industry_then: str,
        industry_now: str,
        facts_then: dict,
        facts_now: dict | None = None,
    ) -> None:
        """An account on both dates; its facts are the same on both unless ``facts_now``."""
        for day, industry, facts in (
            (then, industry_then, facts_then),
            (AS_OF, industry_now, facts_now or facts_then),
        ):
            history.append({"as_of_date": day, **account(account_id, industry=industry)})
            metrics.append(customer_metrics(account_id, as_of=day, **facts))

    for i in range(40):
        great = {"tenure": 30 + i, "nrr": 1.2 + i / 100, "csat": 4.5, "tickets": 0.1}
        add(f"G{i:02d}", "fintech", "retail", great)
    churned = {"stage": "churned", "churned": True, "fast_churn": True, "tenure": 8}
    churned |= {"nrr": 0.0, "grr": 0.0, "csat": 1.5, "tickets": 9.0, "expansion": 0.0}
    for i in range(20):
        add(f"C{i:02d}", "retail", "fintech", churned)
    prospects = [(f"{p}{i:02d}", ind, stage) for i in range(20) for p, ind, stage in (
        ("W", "fintech", "customer"), ("L", "retail", "prospect"))]  # fmt: skip
    prospects += [
        (f"T{i:02d}", "fintech", "customer" if i % 2 else "prospect") for i in range(tied_prospects)
    ]
    for account_id, industry, stage_now in prospects:
        add(
            account_id, industry, industry,
            {"stage": "prospect", "tenure": None},
            {"stage": stage_now, "tenure": 2},
        )  # fmt: skip
    if reverse:
        history.reverse()
        metrics.reverse()
    con.register("history_rows", pa.Table.from_pylist(history))
    con.execute("CREATE TABLE marts.dim_accounts_history AS SELECT * FROM history_rows")
    con.register("metric_rows", pa.Table.from_pylist(metrics, schema=METRIC_SCHEMA))
    con.execute("CREATE TABLE marts.fct_account_metrics AS SELECT * FROM metric_rows")
    return then


def test_the_backtest_bins_accounts_on_the_firmographics_of_its_date(tmp_path, con):
    """The backtest fits and scores on what was known at the backtest date, not today.

    At the backtest date the great customers are fintech and the fast churners retail; since
    then every customer changed industry (great ones to retail, churners to fintech), while
    the prospects kept theirs. The fintech prospects were won and kept, the retail ones not.
    Binned on the firmographics of the backtest date the backtest ranks the won prospects
    first (AUC 1); binned on today's it would learn "retail is best" and rank them last."""
    from dagster_project.scoring.scorecard import build_features
    from dagster_project.scoring.validation import run_backtest

    config = load_config(tmp_path, "learned")
    then = _backtest_marts(con, config)

    build_features(con, AS_OF)
    backtest = run_backtest(con, config, AS_OF, then)

    assert backtest.status == "ok", backtest.detail
    assert backtest.measures["backtest_accounts"] == 40
    assert backtest.measures["backtest_auc_won_and_retained"] == 1.0


def test_backtest_measures_do_not_depend_on_row_order(tmp_path):
    """Calibration deciles split tied scores the same way whatever order the rows come in: a
    rerun must reproduce icp_validation exactly. 60 tied prospects, half won, straddle several
    deciles."""
    from dagster_project.scoring.scorecard import build_features
    from dagster_project.scoring.validation import run_backtest

    config = load_config(tmp_path, "learned")
    measures = []
    for reverse in (False, True):
        with duckdb.connect() as con:
            con.execute("CREATE SCHEMA marts")
            then = _backtest_marts(con, config, tied_prospects=60, reverse=reverse)
            build_features(con, AS_OF)
            backtest = run_backtest(con, config, AS_OF, then)
            assert backtest.status == "ok", backtest.detail
            measures.append(backtest.measures)
    assert measures[0] == measures[1]


# --------------------------------------------------------------------------- evidence, published


def test_a_validated_learned_run_publishes_a_calibrated_probability(synthetic_learned_run):
    con, run = synthetic_learned_run
    assert run.fit_confidence == "validated" and run.out_of_sample.verdict == "ok"
    rows = con.execute(
        "SELECT fit_score, fit_probability, fit_confidence FROM scored_accounts ORDER BY fit_score"
    ).fetchall()
    assert {confidence for _, _, confidence in rows} == {"validated"}
    probabilities = [probability for _, probability, _ in rows]
    assert all(0 < p < 1 for p in probabilities)
    # Monotone in the score (within 0-100: below the cut the score before the cut counts).
    inside = [probability for score, probability, _ in rows if 0 < score < 100]
    assert len(inside) > 50 and inside == sorted(inside)
    # Calibrated out of fold: on the labelled accounts the mean probability is the best share.
    mean_probability, best_share = con.execute(
        f"""
        SELECT avg(scored.fit_probability), avg(CAST(labels.outcome_label = 'best' AS DOUBLE))
        FROM scored_accounts AS scored INNER JOIN {LABEL_TABLE} AS labels USING (account_id)
        """
    ).fetchone()
    assert mean_probability == pytest.approx(best_share, abs=0.05)
    measures = {
        measure: (value, status, detail)
        for measure, value, status, detail in con.execute(
            "SELECT measure, value, status, detail FROM icp_validation_rows"
        ).fetchall()
    }
    assert measures["champion_model"][2].startswith(run.out_of_sample.champion)
    for name in run.out_of_sample.candidates:
        assert f"out_of_sample_auc_{name}" in measures
    assert "out_of_sample_auc_reference_gradient_boosting" in measures
    shares = [measures[f"out_of_fold_share_{tier}_tier"][0] for tier in ("high", "medium", "low")]
    assert sum(shares) == pytest.approx(1.0)
    assert measures["out_of_fold_lift_high_tier"][0] > 2  # the high tier is twice as good
    assert measures["high_tier_threshold"][:2] == (70.0, "ok")
    assert len([m for m in measures if m.startswith("out_of_fold_calibration_quintile_")]) == 5


def test_a_fallback_or_a_rules_run_publishes_no_probability(tmp_path, con):
    synthetic_warehouse(con)
    run = run_scoring(con, load_config(tmp_path, "rules"), AS_OF, SCORED_AT)
    assert run.fit_confidence == "not_validated"
    assert con.execute(
        "SELECT count(*) FILTER (WHERE fit_probability IS NOT NULL), any_value(fit_confidence) "
        "FROM scored_accounts"
    ).fetchone() == (0, "not_validated")
    # Too few customers for a learned ICP: the rules score, and say so in every row.
    young = run_scoring(
        con, load_config(tmp_path, "learned", min_labelled_customers=10_000), AS_OF, SCORED_AT
    )
    assert young.fallback_reason and young.fit_confidence == "insufficient_evidence"
    assert con.execute(
        "SELECT count(*) FILTER (WHERE fit_probability IS NOT NULL), any_value(fit_confidence) "
        "FROM scored_accounts"
    ).fetchone() == (0, "insufficient_evidence")


def test_a_data_driven_high_tier_captures_its_share_of_best_customers(tmp_path, con):
    from dagster_project.scoring.evidence import out_of_fold_points

    synthetic_warehouse(con)
    config = load_config(tmp_path, "learned")
    config = replace(config, high_captures_best_share=0.8)
    run = run_scoring(con, config, AS_OF, SCORED_AT)
    assert run.high_captures_best_share == 0.8 and run.high_threshold > run.medium_threshold
    points = out_of_fold_points(run.out_of_sample, 50.0, 20.0)
    best_points = points[run.out_of_sample.is_best == 1]
    assert (best_points >= run.high_threshold).mean() >= 0.8
    value, detail = con.execute(
        "SELECT value, detail FROM icp_validation_rows WHERE measure = 'high_tier_threshold'"
    ).fetchone()
    assert value == pytest.approx(run.high_threshold) and detail.startswith("data-driven")
    lowest_high = con.execute(
        "SELECT min(fit_score) FROM scored_accounts WHERE fit_tier = 'high'"
    ).fetchone()[0]
    assert float(lowest_high) >= run.high_threshold


def test_prospects_that_lost_every_deal_are_labelled_and_can_be_switched_off(con):
    metrics = [
        customer_metrics("C1", tenure=24),
        {**customer_metrics("P_LOST", stage="prospect", tenure=None), "opportunities_lost": 2},
        {**customer_metrics("P_NONE", stage="prospect", tenure=None)},  # never had a deal
        {
            **customer_metrics("P_OPEN", stage="open_pipeline", tenure=None),
            "opportunities_lost": 1,  # still has an open deal: not decided
        },
    ]
    create_marts(con, [account(m["account_id"]) for m in metrics], metrics)
    label_customers(con, LearnedSettings(), AS_OF)
    assert _labels(con)["P_LOST"][1:] == ("lost_prospect", ["only_lost_deals"])
    assert set(_labels(con)) == {"C1", "P_LOST"}
    label_customers(con, LearnedSettings(lost_prospects_as_rest=False), AS_OF)
    assert set(_labels(con)) == {"C1"}


def test_publishing_onto_tables_of_an_older_version_adds_the_new_columns(tmp_path, con):
    """A warehouse published before fit_probability existed takes a new run's rows (the old
    rows keep NULL): INSERT BY NAME would otherwise fail on the unknown column."""
    from dagster_project.scoring.pipeline import publish

    synthetic_warehouse(con)
    run_scoring(con, load_config(tmp_path, "learned"), AS_OF, SCORED_AT)
    con.execute(
        "CREATE TABLE marts.account_fit_score_history AS SELECT * EXCLUDE "
        "(fit_probability, fit_confidence) REPLACE (DATE '2026-01-01' AS as_of_date) "
        "FROM scored_accounts"
    )
    publish(con, AS_OF)
    assert con.execute(
        "SELECT as_of_date, count(fit_confidence) FROM marts.account_fit_score_history "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall() == [
        (date(2026, 1, 1), 0),
        (
            AS_OF,
            len(_labels(con)) and con.execute("SELECT count(*) FROM scored_accounts").fetchone()[0],
        ),
    ]
