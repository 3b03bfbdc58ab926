"""Out-of-sample evidence: candidates on the same folds, the champion, intervals, the verdict,
tiers and calibration out of fold; and the evidence-weighted points of the candidates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dagster_project.scoring.evidence import (
    BASELINE,
    CANDIDATES,
    PUBLISHABLE,
    auc_interval,
    choose_champion,
    cross_validate,
    high_threshold_for_recall,
    out_of_fold_points,
    tier_evidence,
)
from dagster_project.scoring.models import CandidateSettings, fit_additive, scale_to_points

SETTINGS = CandidateSettings()


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


def _codes(*columns: np.ndarray) -> tuple[np.ndarray, list[int]]:
    coded = [np.unique(column, return_inverse=True) for column in columns]
    return np.column_stack([codes for _, codes in coded]), [len(values) for values, _ in coded]


def _accounts(rng, n: int, signal: bool):
    industry = rng.choice(["software", "fintech", "retail", "agency"], n)
    country = rng.choice(["US", "GB", "DE", "FR", "NL"], n)
    # Many small bins: an in-sample WoE fits noise there.
    city = rng.choice([f"city_{i}" for i in range(60)], n)
    if signal:
        odds = np.where(np.isin(industry, ["software", "fintech"]), 0.0, -3.0)
        is_best = (rng.random(n) < 1 / (1 + np.exp(-odds))).astype(int)
    else:
        is_best = (rng.random(n) < 0.2).astype(int)
    codes, bin_counts = _codes(industry, country, city)
    is_worst = (is_best == 0) & (rng.random(n) < 0.4)
    return codes, is_best, is_worst, bin_counts


def test_a_planted_signal_is_found_out_of_sample_and_noise_is_no_signal():
    rng = np.random.default_rng(11)
    codes, is_best, is_worst, bins = _accounts(rng, 600, signal=True)
    found = cross_validate(codes, is_best, is_worst, bins, SETTINGS, floor=0.55)
    assert found.verdict == "ok" and found.auc > 0.75 and found.low > 0.55
    assert found.folds == 5 and found.best + found.rest == 600
    assert set(found.candidates) == {name for name, _, _ in CANDIDATES}
    assert found.baseline.auc > 0.7 and found.reference.auc > 0.7
    assert found.champion in found.candidates

    codes, is_best, is_worst, bins = _accounts(rng, 600, signal=False)
    noise = cross_validate(codes, is_best, is_worst, bins, SETTINGS, floor=0.55)
    assert noise.verdict == "no_signal" and noise.low <= 0.55
    assert 0.35 < noise.auc < 0.65
    assert "no_signal when the lower bound is <= 0.55" in noise.describe()


def test_the_evidence_of_a_fold_is_counted_without_its_held_out_accounts():
    """Pure noise in bins of one account each: evidence counted on every account would know
    each held-out label (in-sample AUC 1); counted per fold it knows nothing."""
    rng = np.random.default_rng(5)
    n = 300
    is_best = (rng.random(n) < 0.3).astype(int)
    codes = np.arange(n).reshape(-1, 1)
    leaking = np.where(is_best == 1, 1.0, -1.0)  # what a leaking WoE would give
    assert roc_auc_score(is_best, leaking) == 1.0
    result = cross_validate(codes, is_best, is_best == 0, [n], SETTINGS, floor=0.55)
    assert result.auc == pytest.approx(0.5, abs=0.05) and result.verdict == "no_signal"


def test_too_few_accounts_of_a_class_give_no_evidence():
    codes = np.array([[0], [1], [0]])
    assert (
        cross_validate(codes, np.array([1, 0, 0]), np.zeros(3, bool), [2], SETTINGS, 0.55) is None
    )


def test_the_same_accounts_give_the_same_evidence():
    rng = np.random.default_rng(2)
    codes, is_best, is_worst, bins = _accounts(rng, 200, signal=True)
    first = cross_validate(codes, is_best, is_worst, bins, SETTINGS, 0.55)
    again = cross_validate(codes.copy(), is_best.copy(), is_worst.copy(), bins, SETTINGS, 0.55)
    assert first.candidates == again.candidates and first.champion == again.champion
    assert np.array_equal(first.champion_scores, again.champion_scores)


def test_the_champion_is_the_preferred_candidate_within_one_standard_error():
    preferred, challenger = CANDIDATES[0][0], CANDIDATES[1][0]
    # The challenger's mean is 0.01 higher, but its folds vary by far more than that.
    close = {preferred: [0.80, 0.78, 0.82, 0.79, 0.81], challenger: [0.86, 0.75, 0.88, 0.74, 0.82]}
    assert choose_champion(close) == preferred
    # Far ahead on every fold: the challenger wins.
    clear = {preferred: [0.70, 0.71, 0.69, 0.70, 0.70], challenger: [0.80, 0.81, 0.79, 0.80, 0.80]}
    assert choose_champion(clear) == challenger
    # The baseline is measured, never chosen, however well it does.
    assert choose_champion({**clear, BASELINE: [0.95] * 5}) == challenger


def test_out_of_fold_probabilities_are_calibrated_and_tiers_measured():
    rng = np.random.default_rng(3)
    codes, is_best, is_worst, bins = _accounts(rng, 2000, signal=True)
    evidence = cross_validate(codes, is_best, is_worst, bins, SETTINGS, 0.55)
    a, b = evidence.calibration
    probability = 1 / (1 + np.exp(-(a + b * evidence.champion_scores)))
    assert probability.mean() == pytest.approx(is_best.mean(), abs=0.01)
    points = out_of_fold_points(evidence, 50.0, 20.0)
    tiers = {t.tier: t for t in tier_evidence(evidence, 70.0, 40.0, points)}
    assert sum(t.share for t in tiers.values()) == pytest.approx(1.0)
    assert sum(t.recall for t in tiers.values()) == pytest.approx(1.0)
    high_or_medium = [t for t in (tiers["high"], tiers["medium"]) if t.precision is not None]
    assert all(t.lift > tiers["low"].lift for t in high_or_medium)

    threshold = high_threshold_for_recall(points, is_best, 0.5)
    captured = (points[is_best == 1] >= threshold).mean()
    assert captured >= 0.5
    # the smallest such tier: one step higher captures less than half
    assert (points[is_best == 1] >= threshold + 0.011).mean() < 0.5 or threshold == points.max()


def test_a_bin_of_a_handful_of_accounts_cannot_move_a_score_by_tens_of_points():
    """Noise in 60 small bins (about ten accounts each): without the evidence prior a WoE
    scorecard gives such bins tens of points (the real-data failure: -118 and +92)."""
    rng = np.random.default_rng(8)
    n = 600
    city = rng.choice(60, n)
    is_best = (rng.random(n) < 0.2).astype(int)
    codes = city.reshape(-1, 1)
    fit = fit_additive("woe_scorecard", codes, is_best, [60], SETTINGS)
    _, points = scale_to_points(fit, is_best.mean(), 50.0, 20.0)
    assert np.abs(points[0]).max() < 15
    # The plain baseline has no such prior, and is never published.
    plain = fit_additive(BASELINE, codes, is_best, [60], SETTINGS)
    _, plain_points = scale_to_points(plain, is_best.mean(), 50.0, 20.0)
    assert np.abs(plain_points[0]).max() > 15 and BASELINE not in PUBLISHABLE
    # optbinning groups the bins instead: no group smaller than min_bin_share of the accounts.
    fit = fit_additive("optbinning_scorecard", codes, is_best, [60], SETTINGS)
    groups = {round(float(v), 9) for v in fit.contributions[0]}
    sizes = [fit.support[0][np.isclose(fit.contributions[0], g)].sum() for g in groups]
    assert min(sizes) >= SETTINGS.min_bin_share * n
    raw = fit_additive(
        "woe_scorecard", codes, is_best, [60], CandidateSettings(prior_customers=0.5)
    )
    _, unshrunk = scale_to_points(raw, is_best.mean(), 50.0, 20.0)
    assert np.abs(unshrunk[0]).max() > 30


def test_points_double_the_odds_every_points_to_double_odds():
    rng = np.random.default_rng(4)
    codes, is_best, _, bins = _accounts(rng, 1000, signal=True)
    fit = fit_additive("woe_scorecard", codes, is_best, bins, SETTINGS)
    base, points = scale_to_points(fit, is_best.mean(), 50.0, 20.0)
    score = base + sum(points[column][codes[:, column]] for column in range(codes.shape[1]))
    log_odds = fit.decision(codes)
    base_log_odds = np.log(is_best.mean() / (1 - is_best.mean()))
    assert score == pytest.approx(50 + 20 / np.log(2) * (log_odds - base_log_odds))


def test_an_interaction_the_scorecard_cannot_add_up_is_named():
    """Best customers are fintech on cloud or retail on premises: neither value is better on
    its own, so an additive scorecard sees nothing, the reference and the pair do."""
    rng = np.random.default_rng(9)
    n = 1500
    industry = rng.choice(["fintech", "retail"], n)
    deployment = rng.choice(["cloud", "on_prem"], n)
    noise = rng.choice([f"n{i}" for i in range(5)], n)
    matched = (industry == "fintech") == (deployment == "cloud")
    is_best = (rng.random(n) < np.where(matched, 0.4, 0.05)).astype(int)
    codes, bins = _codes(industry, deployment, noise)
    evidence = cross_validate(
        codes, is_best, is_best == 0, bins, SETTINGS, 0.55,
        attributes=["industry", "deployment", "noise"],
    )  # fmt: skip
    assert evidence.reference.auc > evidence.auc + 0.1
    assert evidence.missed_interactions[0][:2] == ("industry", "deployment")
    assert evidence.missed_interactions[0][2] > 0.1
    assert all("noise" not in pair[:2] for pair in evidence.missed_interactions)
