"""Out-of-sample evidence: cross-validated AUC, its interval, the baseline, the verdict."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dagster_project.scoring.evidence import auc_interval, cross_validate


def test_auc_interval_is_hanley_mcneil():
    # A = 0.8, 20 positives, 30 negatives, computed by hand:
    # Q1 = 0.8 / 1.2 = 0.6667, Q2 = 1.28 / 1.8 = 0.7111
    # var = (0.16 + 19 * (0.6667 - 0.64) + 29 * (0.7111 - 0.64)) / 600 = 2.7289 / 600
    #     = 0.004548, half width 1.96 * sqrt(var) = 0.1322
    low, high = auc_interval(0.8, 20, 30)
    half = 1.96 * np.sqrt((0.16 + 19 * (0.8 / 1.2 - 0.64) + 29 * (1.28 / 1.8 - 0.64)) / 600)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half))
    assert half == pytest.approx(0.1322, abs=1e-4)
    assert auc_interval(1.0, 5, 5) == (1.0, 1.0)


def _customers(rng, n: int, signal: bool) -> tuple[np.ndarray, np.ndarray]:
    industry = rng.choice(["software", "fintech", "retail", "agency"], n)
    country = rng.choice(["US", "GB", "DE", "FR", "NL"], n)
    # Many small bins: an in-sample WoE fits noise there.
    city = rng.choice([f"city_{i}" for i in range(60)], n)
    if signal:
        odds = np.where(np.isin(industry, ["software", "fintech"]), 2.0, -2.0)
        labels = (rng.random(n) < 1 / (1 + np.exp(-odds))).astype(int)
    else:
        labels = rng.integers(0, 2, n)
    return np.column_stack([industry, country, city]).astype(object), labels


def test_a_planted_signal_is_found_out_of_sample_and_noise_is_no_signal():
    rng = np.random.default_rng(11)
    bins, labels = _customers(rng, 300, signal=True)
    found = cross_validate(bins, labels, woe_smoothing=0.5, regularization_c=1.0, floor=0.55)
    assert found.verdict == "ok" and found.auc > 0.75 and found.low > 0.55
    assert found.folds == 5 and found.best + found.worst == 300
    assert found.baseline_auc > 0.7

    bins, labels = _customers(rng, 300, signal=False)
    noise = cross_validate(bins, labels, woe_smoothing=0.5, regularization_c=1.0, floor=0.55)
    assert noise.verdict == "no_signal" and noise.low <= 0.55
    assert 0.35 < noise.auc < 0.65
    assert "no_signal when the lower bound is <= 0.55" in noise.describe()


def test_the_woe_of_a_fold_is_counted_without_its_held_out_customers():
    """Pure noise in bins of one customer each: a WoE counted on every customer would know
    each held-out label (in-sample AUC near 1); counted per fold it knows nothing."""
    rng = np.random.default_rng(5)
    n = 200
    labels = rng.integers(0, 2, n)
    unique_bins = np.array([[f"id_{i}"] for i in range(n)], dtype=object)
    in_sample_woe = np.where(labels == 1, 1.0, -1.0)  # what a leaking WoE would give
    assert roc_auc_score(labels, in_sample_woe) == 1.0
    result = cross_validate(unique_bins, labels, 0.5, 1.0, floor=0.55)
    assert result.auc == pytest.approx(0.5, abs=0.05) and result.verdict == "no_signal"


def test_too_few_customers_of_a_class_give_no_evidence():
    bins = np.array([["a"], ["b"], ["a"]], dtype=object)
    assert cross_validate(bins, np.array([1, 0, 0]), 0.5, 1.0, 0.55) is None


def test_the_same_customers_give_the_same_evidence():
    rng = np.random.default_rng(2)
    bins, labels = _customers(rng, 120, signal=True)
    first = cross_validate(bins, labels, 0.5, 1.0, 0.55)
    again = cross_validate(bins.copy(), labels.copy(), 0.5, 1.0, 0.55)
    assert first == again
