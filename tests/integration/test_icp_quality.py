"""The learned ICP recovers the generator's planted ICP (issue: derive the ICP from data).

One generated landing zone of 3,000 accounts (seed 42, 8 months of export history) runs
through the whole pipeline; the published scores are compared with the planted truth and
with an analyst's baseline trained on the same labels. ``benchmarks/icp_quality.py`` prints
the same figures for more seeds and larger data.
"""

from __future__ import annotations

import duckdb
import pytest

from dagster_project.run import run_pipeline
from dagster_project.sample_data import generate_landing_zone
from dagster_project.sample_data.evaluation import evaluate_against_truth
from tests.conftest import settings_for


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    generate_landing_zone(root / "landing", accounts=3000, seed=42, history_months=8)
    settings = settings_for(root / "landing", root / "warehouse.duckdb")
    summary = run_pipeline(settings)
    assert summary.success, summary.failures
    return settings, evaluate_against_truth(settings.warehouse_path, settings.landing_dir)


def test_fit_score_ranks_the_planted_icp_and_beats_the_baseline(scored):
    _, quality = scored
    assert quality.auc_fit_score >= 0.90
    assert quality.auc_fit_score > quality.auc_baseline


def test_planted_anti_icp_groups_are_flagged(scored):
    _, quality = scored
    assert quality.anti_icp_precision >= 0.8
    assert quality.anti_icp_recall >= 0.7


def test_high_tier_wins_at_least_three_times_as_often_as_low(scored):
    _, quality = scored
    assert quality.win_rate_ratio is not None and quality.win_rate_ratio >= 3


def test_validation_backtest_runs_and_high_tier_beats_low(scored):
    settings, _ = scored
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        measures = dict(con.execute("SELECT measure, value FROM marts.icp_validation").fetchall())
        statuses = dict(con.execute("SELECT measure, status FROM marts.icp_validation").fetchall())
        profile = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE points IS NOT NULL) FROM marts.icp_profile"
        ).fetchone()
    assert statuses["backtest"] == "ok"
    assert measures["backtest_auc_won_and_retained"] > 0.6
    assert statuses["high_tier_beats_low_tier"] == "ok" and measures["high_tier_beats_low_tier"] > 1
    assert profile[0] > profile[1] > 0, "scored attributes have points, situational ones do not"
