"""Out-of-sample evidence: does the learned score tell best from worst customers it never saw?

Every run cross-validates the fit on its own labelled customers (stratified k-fold): in each
fold the weight of evidence is counted on the training customers only (a WoE counted on all
of them would leak the held-out labels into their own features), the logistic regression is
fitted there and the held-out customers are scored. The AUC of those out-of-fold scores, with
a 95 % interval (Hanley & McNeil), is the evidence; the same folds score a plain baseline
(one-hot attributes and a logistic regression), so the two are compared on the same run.

When the interval's lower bound does not clear ``floor`` the data holds no signal a sales
team could rely on: the verdict is ``no_signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OneHotEncoder

__all__ = ["OutOfSample", "auc_interval", "cross_validate"]

MAX_FOLDS = 5
#: Fixed: the same customers give the same folds, so a rerun gives the same evidence.
FOLD_SEED = 20261201


@dataclass(frozen=True)
class OutOfSample:
    """Out-of-fold AUC of the WoE scorecard and of the baseline, with 95 % intervals."""

    auc: float
    low: float
    high: float
    baseline_auc: float
    baseline_low: float
    baseline_high: float
    folds: int
    best: int
    worst: int
    floor: float

    @property
    def verdict(self) -> str:
        return "ok" if self.low > self.floor else "no_signal"

    def describe(self) -> str:
        return (
            f"{self.folds}-fold cross-validated AUC {self.auc:.3f} (95% interval "
            f"{self.low:.3f}-{self.high:.3f}) over {self.best} best and {self.worst} worst "
            f"customers; plain baseline (one-hot logistic regression, same folds) "
            f"{self.baseline_auc:.3f} ({self.baseline_low:.3f}-{self.baseline_high:.3f}); "
            f"no_signal when the lower bound is <= {self.floor:.2f}"
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


def _woe_columns(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """WoE features of ``train`` and ``test`` counted on ``train`` only (bins as codes)."""
    best_total = int(labels.sum())
    worst_total = len(labels) - best_total
    best_prior = alpha * best_total / len(labels)
    worst_prior = alpha * worst_total / len(labels)
    train_features = np.zeros(train.shape)
    test_features = np.zeros(test.shape)
    for column in range(train.shape[1]):
        codes = int(max(train[:, column].max(initial=0), test[:, column].max(initial=0))) + 1
        best = np.bincount(train[labels == 1, column], minlength=codes)
        worst = np.bincount(train[labels == 0, column], minlength=codes)
        # The pseudo-count is split by the class totals, as in the published fit: a bin no
        # training customer has is neutral (0).
        woe = np.log((best + best_prior) / best_total) - np.log((worst + worst_prior) / worst_total)
        train_features[:, column] = woe[train[:, column]]
        test_features[:, column] = woe[test[:, column]]
    return train_features, test_features


def cross_validate(
    bins: np.ndarray,
    labels: np.ndarray,
    woe_smoothing: float,
    regularization_c: float,
    floor: float,
) -> OutOfSample | None:
    """Out-of-fold AUCs of the WoE scorecard and the one-hot baseline.

    ``bins``: one row per labelled customer, one column per attribute, the bin as text;
    ``labels``: 1 best, 0 worst. None when a class has fewer than two customers (no fold
    would hold both).
    """
    labels = np.asarray(labels, dtype=int)
    best, worst = int(labels.sum()), int(len(labels) - labels.sum())
    folds = min(MAX_FOLDS, best, worst)
    if folds < 2 or bins.shape[1] == 0:
        return None
    codes = np.column_stack(
        [np.unique(bins[:, column], return_inverse=True)[1] for column in range(bins.shape[1])]
    ).astype(int)
    scorecard = np.zeros(len(labels))
    baseline = np.zeros(len(labels))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=FOLD_SEED)
    for train, test in splitter.split(codes, labels):
        train_woe, test_woe = _woe_columns(codes[train], labels[train], codes[test], woe_smoothing)
        model = LogisticRegression(C=regularization_c, max_iter=1000)
        model.fit(train_woe, labels[train])
        scorecard[test] = model.decision_function(test_woe)
        encoder = OneHotEncoder(handle_unknown="ignore")
        plain = LogisticRegression(C=1.0, max_iter=1000)
        plain.fit(encoder.fit_transform(bins[train]), labels[train])
        baseline[test] = plain.decision_function(encoder.transform(bins[test]))
    auc = float(roc_auc_score(labels, scorecard))
    baseline_auc = float(roc_auc_score(labels, baseline))
    return OutOfSample(
        auc,
        *auc_interval(auc, best, worst),
        baseline_auc,
        *auc_interval(baseline_auc, best, worst),
        folds=folds,
        best=best,
        worst=worst,
        floor=floor,
    )
