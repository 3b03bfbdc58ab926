"""Out-of-sample evidence: which model tells best customers from the rest on accounts it never saw?

Every run cross-validates every candidate of ``models`` on its own labelled accounts, with the
same stratified folds: in each fold a candidate is fitted on the training accounts only (its
bins' evidence counted there, so held-out labels never leak into their own features) and
scores the held-out ones. Every candidate is judged on the same target, whatever it was
trained on: is the account a best customer (1) or not (0). The AUC of those out-of-fold
scores, with a 95 % interval (Hanley & McNeil), is the evidence:

- the **champion** is the first publishable candidate of :data:`CANDIDATES` whose mean AUC over
  the folds is within one standard error of the best mean (the "one standard error" rule:
  a difference the folds cannot tell from noise does not displace the preferred, better
  regularised model); it is the one published;
- the plain baseline (``one_hot_logistic``) is always measured, so the run shows what a plain
  model does on the same folds; it is never published (its points ignore how much evidence
  stands behind each bin);
- gradient boosting is the non-additive reference: the AUC a scorecard leaves on the table;
- the champion's out-of-fold scores give a calibration (Platt: a logistic regression of the
  outcome on the score), so ``fit_probability`` is a probability measured out of sample.

When the champion's interval's lower bound does not clear ``floor`` the data holds no signal a
sales team could rely on: the verdict is ``no_signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dagster_project.scoring.models import (
    REFERENCE_CANDIDATE,
    CandidateSettings,
    OddsScale,
    fit_additive,
    gradient_boosting_scores,
)

# scikit-learn is imported where it is used (see dagster_project/scoring/models.py).

__all__ = [
    "BASELINE",
    "CANDIDATES",
    "CandidateAuc",
    "OutOfSample",
    "auc_interval",
    "cross_validate",
]

MAX_FOLDS = 5
#: Fixed: the same accounts give the same folds, so a rerun gives the same evidence.
FOLD_SEED = 20261201
BASELINE = "one_hot_logistic"
#: The reference and the search for interactions are diagnostics: a sample of this many
#: labelled accounts shows what they are worth, at any size of customer base (the search
#: fits 16 scorecards per fold: its sample is smaller).
DIAGNOSTIC_MAX_ROWS = 20_000
INTERACTION_SEARCH_MAX_ROWS = 5_000
#: Interactions are looked for among the attributes with the most evidence on their own.
INTERACTION_ATTRIBUTES = 6
MIN_INTERACTION_GAIN = 0.005
#: (name, method, trained on): the additive candidates, in order of preference on a tie.
#: ``best_vs_worst`` trains on best against the clearly bad accounts only (the middle left
#: out), ``best_vs_rest`` on best against every other labelled account. The last, the plain
#: baseline, is measured but never published: its points are not weighed by the evidence
#: behind each bin (a bin of ten accounts can move a score by tens of points).
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("woe_scorecard", "woe_scorecard", "best_vs_rest"),
    ("optbinning_scorecard", "optbinning_scorecard", "best_vs_rest"),
    ("woe_scorecard_best_vs_worst", "woe_scorecard", "best_vs_worst"),
    (BASELINE, "one_hot_logistic", "best_vs_rest"),
)
PUBLISHABLE = tuple(name for name, _, _ in CANDIDATES if name != BASELINE)


@dataclass(frozen=True)
class CandidateAuc:
    """Out-of-fold AUC of one candidate with its 95 % interval."""

    auc: float
    low: float
    high: float


@dataclass(frozen=True)
class OutOfSample:
    """The cross-validated evidence of every candidate, and the champion it chose."""

    candidates: dict[str, CandidateAuc]
    champion: str
    folds: int
    best: int
    rest: int
    floor: float
    #: Platt calibration of the champion's out-of-fold log-odds: P(best) = sigmoid(a + b*x).
    calibration: tuple[float, float]
    #: The champion's out-of-fold log-odds and the outcome, one per labelled account.
    champion_scores: np.ndarray = field(repr=False)
    is_best: np.ndarray = field(repr=False)
    reference: CandidateAuc | None = None
    #: Pairs of attributes whose combined bins, added to the WoE scorecard, raise its
    #: out-of-fold AUC by at least MIN_INTERACTION_GAIN: (first, second, gain), largest first.
    missed_interactions: tuple[tuple[str, str, float], ...] = ()

    @property
    def auc(self) -> float:
        return self.candidates[self.champion].auc

    @property
    def low(self) -> float:
        return self.candidates[self.champion].low

    @property
    def high(self) -> float:
        return self.candidates[self.champion].high

    @property
    def baseline(self) -> CandidateAuc:
        return self.candidates[BASELINE]

    @property
    def champion_method(self) -> str:
        return next(method for name, method, _ in CANDIDATES if name == self.champion)

    @property
    def champion_labels(self) -> str:
        return next(labels for name, _, labels in CANDIDATES if name == self.champion)

    def odds_scale(self, score_at_base_odds: float, points_to_double_odds: float) -> OddsScale:
        """The published scale at the base rate of the accounts cross-validated."""
        return OddsScale(
            self.best / (self.best + self.rest), score_at_base_odds, points_to_double_odds
        )

    @property
    def verdict(self) -> str:
        return "ok" if self.low > self.floor else "no_signal"

    def describe(self) -> str:
        others = "; ".join(
            f"{name} {c.auc:.3f}" for name, c in self.candidates.items() if name != self.champion
        )
        reference = (
            f"; non-additive reference ({REFERENCE_CANDIDATE}) {self.reference.auc:.3f}"
            if self.reference
            else ""
        )
        return (
            f"{self.folds}-fold cross-validated AUC {self.auc:.3f} (95% interval "
            f"{self.low:.3f}-{self.high:.3f}) of {self.champion}, the best of the candidates, "
            f"over {self.best} best customers and {self.rest} other labelled accounts; "
            f"others on the same folds: {others}{reference}; no_signal when the lower bound "
            f"is <= {self.floor:.2f}"
        )


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """95 % interval of an AUC (Hanley & McNeil 1982), clipped to 0..1."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = 1.96 * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _candidate_auc(is_best: np.ndarray, scores: np.ndarray) -> CandidateAuc:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(is_best, scores))
    best = int(is_best.sum())
    return CandidateAuc(auc, *auc_interval(auc, best, len(is_best) - best))


def choose_champion(fold_aucs: dict[str, list[float]]) -> str:
    """The first publishable candidate (in :data:`CANDIDATES` order) whose mean fold AUC is
    within one standard error of the best publishable mean."""
    means = {name: float(np.mean(aucs)) for name, aucs in fold_aucs.items() if name in PUBLISHABLE}
    leader = max(means, key=means.get)
    aucs = fold_aucs[leader]
    standard_error = float(np.std(aucs, ddof=1) / math.sqrt(len(aucs))) if len(aucs) > 1 else 0.0
    return next(name for name in means if means[name] >= means[leader] - standard_error)


def cross_validate(
    codes: np.ndarray,
    is_best: np.ndarray,
    is_worst: np.ndarray,
    bin_counts: list[int],
    settings: CandidateSettings,
    floor: float,
    with_reference: bool = True,
    attributes: list[str] | None = None,
) -> OutOfSample | None:
    """Out-of-fold AUCs of every candidate on the same folds, and the champion.

    ``codes``: one row per labelled account, one bin code per attribute; ``is_best``: 1 best
    customer, 0 any other labelled account; ``is_worst``: the clearly bad ones among those
    (the negatives of a ``best_vs_worst`` candidate). None when a class has fewer than two
    accounts (no fold would hold both) or there is no attribute.
    """
    is_best = np.asarray(is_best, dtype=int)
    is_worst = np.asarray(is_worst, dtype=bool)
    best, rest = int(is_best.sum()), int(len(is_best) - is_best.sum())
    folds = min(MAX_FOLDS, best, rest)
    if folds < 2 or codes.shape[1] == 0:
        return None
    scores = {name: np.zeros(len(is_best)) for name, _, _ in CANDIDATES}
    reference = np.zeros(len(is_best))
    fold_aucs: dict[str, list[float]] = {name: [] for name, _, _ in CANDIDATES}
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=FOLD_SEED)
    for train, test in splitter.split(codes, is_best):
        for name, method, labels in CANDIDATES:
            rows = train
            if labels == "best_vs_worst":
                rows = train[(is_best[train] == 1) | is_worst[train]]
                if len(set(is_best[rows].tolist())) < 2:
                    rows = train  # no worst accounts in this fold: the rest stand in
            fit = fit_additive(method, codes[rows], is_best[rows], bin_counts, settings)
            scores[name][test] = fit.decision(codes[test])
            fold_aucs[name].append(float(roc_auc_score(is_best[test], scores[name][test])))
        if with_reference:
            # A reference needs no more than a sample of a large customer base to show what
            # interactions are worth.
            sample = train
            if len(train) > DIAGNOSTIC_MAX_ROWS:
                sample = np.random.default_rng(FOLD_SEED).choice(
                    train, DIAGNOSTIC_MAX_ROWS, replace=False
                )
            reference[test] = gradient_boosting_scores(codes[sample], is_best[sample], codes[test])
    candidates = {name: _candidate_auc(is_best, scores[name]) for name, _, _ in CANDIDATES}
    champion = choose_champion(fold_aucs)
    missed = ()
    if with_reference and attributes is not None:
        rows = np.arange(len(is_best))
        if len(rows) > INTERACTION_SEARCH_MAX_ROWS:
            rows = np.sort(
                np.random.default_rng(FOLD_SEED).choice(
                    rows, INTERACTION_SEARCH_MAX_ROWS, replace=False
                )
            )
        missed = _missed_interactions(codes[rows], is_best[rows], bin_counts, settings, splitter)
        missed = tuple((attributes[i], attributes[j], gain) for i, j, gain in missed)
    calibration = LogisticRegression(C=1e6, max_iter=1000)
    calibration.fit(scores[champion].reshape(-1, 1), is_best)
    return OutOfSample(
        candidates=candidates,
        champion=champion,
        folds=folds,
        best=best,
        rest=rest,
        floor=floor,
        calibration=(float(calibration.intercept_[0]), float(calibration.coef_[0][0])),
        champion_scores=scores[champion],
        is_best=is_best,
        reference=_candidate_auc(is_best, reference) if with_reference else None,
        missed_interactions=missed,
    )


def _information(codes: np.ndarray, is_best: np.ndarray, bins: int, prior: float) -> float:
    """How much one attribute says on its own: the information value of its prior-weighted
    WoE (sum over bins of (best share - rest share) * WoE)."""
    best = np.bincount(codes, weights=is_best.astype(float), minlength=bins)
    rest = np.bincount(codes, weights=1.0 - is_best, minlength=bins)
    customers = best + rest
    base_rate = is_best.mean()
    rate = (best + prior * base_rate) / (customers + prior)
    woe = np.log(rate / (1 - rate)) - math.log(base_rate / (1 - base_rate))
    return float(((best / best.sum() - rest / rest.sum()) * woe).sum())


def _out_of_fold_woe_auc(codes, is_best, bin_counts, settings, splitter) -> float:
    from sklearn.metrics import roc_auc_score

    scores = np.zeros(len(is_best))
    for train, test in splitter.split(codes, is_best):
        fit = fit_additive("woe_scorecard", codes[train], is_best[train], bin_counts, settings)
        scores[test] = fit.decision(codes[test])
    return float(roc_auc_score(is_best, scores))


def _missed_interactions(
    codes, is_best, bin_counts, settings: CandidateSettings, splitter
) -> list[tuple[int, int, float]]:
    """Pairs of the most informative attributes whose combined bin, as one more attribute of
    the WoE scorecard, raises its out-of-fold AUC (same folds) by MIN_INTERACTION_GAIN."""
    information = [
        _information(codes[:, i], is_best, bins, settings.prior_customers)
        for i, bins in enumerate(bin_counts)
    ]
    top = sorted(np.argsort(information)[::-1][:INTERACTION_ATTRIBUTES].tolist())
    base_auc = _out_of_fold_woe_auc(codes, is_best, bin_counts, settings, splitter)
    found = []
    for position, first in enumerate(top):
        for second in top[position + 1 :]:
            crossed = codes[:, first] * bin_counts[second] + codes[:, second]
            values, crossed = np.unique(crossed, return_inverse=True)
            widened = np.column_stack([codes, crossed])
            counts = [*bin_counts, len(values)]
            gain = _out_of_fold_woe_auc(widened, is_best, counts, settings, splitter) - base_auc
            if gain >= MIN_INTERACTION_GAIN:
                found.append((first, second, gain))
    return sorted(found, key=lambda item: -item[2])[:3]


def out_of_fold_points(
    evidence: OutOfSample, score_at_base_odds: float, points_to_double_odds: float
) -> np.ndarray:
    """The champion's out-of-fold scores in points, on the published scale, one per labelled
    account."""
    return evidence.odds_scale(score_at_base_odds, points_to_double_odds).points(
        evidence.champion_scores
    )


@dataclass(frozen=True)
class TierEvidence:
    """One tier, measured out of fold on the labelled accounts."""

    tier: str
    share: float
    precision: float | None
    recall: float
    lift: float | None


def tier_evidence(
    evidence: OutOfSample, high: float, medium: float, points: np.ndarray
) -> list[TierEvidence]:
    """Per tier, of the labelled accounts scored out of fold: the share in the tier, the share
    of best customers in it (precision), the share of all best customers it holds (recall) and
    its precision over the base rate (lift)."""
    is_best = evidence.is_best == 1
    base_rate = float(is_best.mean())
    tiers = np.where(points >= high, "high", np.where(points >= medium, "medium", "low"))
    result = []
    for tier in ("high", "medium", "low"):
        members = tiers == tier
        precision = float(is_best[members].mean()) if members.any() else None
        result.append(
            TierEvidence(
                tier,
                share=float(members.mean()),
                precision=precision,
                recall=float(is_best[members].sum() / is_best.sum()),
                lift=precision / base_rate if precision is not None else None,
            )
        )
    return result


def high_threshold_for_recall(points: np.ndarray, is_best: np.ndarray, recall: float) -> float:
    """The highest score whose high tier (scores at or above it) holds at least ``recall`` of
    the best customers out of fold: the smallest high tier that captures them."""
    best_points = np.sort(points[np.asarray(is_best) == 1])[::-1]
    needed = max(1, math.ceil(recall * len(best_points)))
    return float(np.floor(best_points[needed - 1] * 100) / 100)
