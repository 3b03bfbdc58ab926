"""The candidate ICP models: additive scorecards over attribute bins, and a non-additive reference.

Every candidate learns from the same input: one row per labelled account, one column per
attribute holding the *code* of the account's bin (0..k-1 into that attribute's bins), and
``is_best`` (1: a best customer, 0: the rest). An additive candidate returns an
:class:`AdditiveFit`: an intercept and, per attribute, the log-odds each bin adds. That is
exactly a scorecard: scaled to points (:func:`scale_to_points`) it is what sales sees, and
the warehouse scores every account with one lookup per attribute.

The candidates (chosen between by out-of-sample evidence, see ``evidence``):

- ``woe_scorecard``: weight of evidence per bin with a Beta prior of ``prior_customers``
  pseudo-customers at the base rate, so a bin's evidence grows with the customers behind it
  (a bin of nine customers cannot move a score by tens of points), then an L2 logistic
  regression over the WoE columns, one weight per attribute between 0 and 1 (it discounts
  attributes that repeat each other, never amplifies one);
- ``optbinning_scorecard``: optbinning's optimal binning (bins merged where their event rates
  do not differ, a minimum bin size) and its WoE, then the same regression;
- ``one_hot_logistic``: the plain baseline, one coefficient per bin (one-hot, L2);
- ``gradient_boosting`` (reference only, not additive): scikit-learn's histogram gradient
  boosting on the bins as categories, to measure how much an additive scorecard leaves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# scikit-learn and SciPy are imported where they are used: the definitions load without them,
# and a run imports them while dbt runs (dagster_project/defs/preload.py).
if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

__all__ = [
    "ADDITIVE_CANDIDATES",
    "REFERENCE_CANDIDATE",
    "AdditiveFit",
    "CandidateSettings",
    "OddsScale",
    "fit_additive",
    "gradient_boosting_scores",
    "scale_to_points",
]

ADDITIVE_CANDIDATES = ("woe_scorecard", "optbinning_scorecard", "one_hot_logistic")
REFERENCE_CANDIDATE = "gradient_boosting"


@dataclass(frozen=True)
class CandidateSettings:
    """What the candidates are fitted with (from the ``learned`` section of the config)."""

    prior_customers: float = 30.0
    regularization_c: float = 1.0
    #: optbinning: the smallest bin, as a share of the labelled accounts.
    min_bin_share: float = 0.05
    #: optbinning: neighbouring groups must differ with at most this p-value.
    max_group_pvalue: float = 0.05


@dataclass(frozen=True)
class AdditiveFit:
    """A scorecard in log-odds units: ``intercept + sum(contributions[a][code of a])``."""

    method: str
    intercept: float
    contributions: tuple[np.ndarray, ...]
    #: Per attribute and bin: how many labelled accounts the fit saw in the bin.
    support: tuple[np.ndarray, ...]

    def decision(self, codes: np.ndarray) -> np.ndarray:
        """Log-odds of being a best customer, one per row of ``codes``."""
        total = np.full(len(codes), self.intercept, dtype=float)
        for column, contribution in enumerate(self.contributions):
            total += contribution[codes[:, column]]
        return total


def _woe(
    codes: np.ndarray, is_best: np.ndarray, bins: int, prior_customers: float
) -> tuple[np.ndarray, np.ndarray]:
    """(WoE, customers) per bin of one attribute: the log-odds of a best customer in the bin,
    with ``prior_customers`` pseudo-customers at the base rate, less the base log-odds. A bin
    nobody in training holds is neutral (0)."""
    base_rate = float(is_best.mean())
    customers = np.bincount(codes, minlength=bins).astype(float)
    best = np.bincount(codes, weights=is_best.astype(float), minlength=bins)
    rate = (best + prior_customers * base_rate) / (customers + prior_customers)
    return _logit(rate) - _logit(base_rate), customers


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _regression(features, is_best: np.ndarray, c: float) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(features, is_best)
    return model


def _weights_of_evidence(
    features: np.ndarray, is_best: np.ndarray, c: float
) -> tuple[float, np.ndarray]:
    """(intercept, coefficients) of an L2 logistic regression over WoE columns with every
    coefficient between 0 and 1.

    A WoE column already is the attribute's whole evidence on its own; the regression may
    only discount it where other attributes say the same (correlated attributes), never
    amplify it (an unbounded fit scales a shrunk WoE back up, undoing the prior) nor turn it
    around (a negative weight would make "more like the best" score lower).
    """
    y = np.asarray(is_best, dtype=float)
    columns = features.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        margin = theta[0] + features @ theta[1:]
        # log(1 + e^m) - y*m, computed without overflow
        value = np.logaddexp(0.0, margin) - y * margin
        residual = 1 / (1 + np.exp(-margin)) - y
        gradient = np.concatenate([[residual.sum()], features.T @ residual])
        gradient[1:] += theta[1:] / c
        return float(value.sum() + (theta[1:] ** 2).sum() / (2 * c)), gradient

    base_rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    start = np.concatenate([[float(_logit(base_rate))], np.full(columns, 0.5)])
    from scipy.optimize import minimize

    result = minimize(
        loss,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, None)] + [(0.0, 1.0)] * columns,
    )
    return float(result.x[0]), result.x[1:]


def _weighted_scorecard(
    method: str, codes, is_best, woes, supports, settings: CandidateSettings
) -> AdditiveFit:
    """The scorecard of per-bin WoE columns: one weight per attribute (0..1) by
    :func:`_weights_of_evidence`, a bin's contribution its weight times its WoE."""
    features = np.column_stack([woe[codes[:, i]] for i, woe in enumerate(woes)])
    intercept, coefficients = _weights_of_evidence(features, is_best, settings.regularization_c)
    return AdditiveFit(
        method,
        intercept,
        tuple(coefficients[i] * woe for i, woe in enumerate(woes)),
        tuple(supports),
    )


def _fit_woe_scorecard(codes, is_best, bin_counts, settings: CandidateSettings) -> AdditiveFit:
    woes, supports = zip(
        *(
            _woe(codes[:, column], is_best, bins, settings.prior_customers)
            for column, bins in enumerate(bin_counts)
        ),
        strict=True,
    )
    return _weighted_scorecard("woe_scorecard", codes, is_best, woes, supports, settings)


def _one_hot(codes: np.ndarray, bin_counts: list[int]) -> sparse.csr_matrix:
    from scipy import sparse

    offsets = np.concatenate([[0], np.cumsum(bin_counts)[:-1]]).astype(int)
    rows = np.repeat(np.arange(len(codes)), codes.shape[1])
    columns = (codes + offsets).ravel()
    return sparse.csr_matrix(
        (np.ones(len(columns)), (rows, columns)), shape=(len(codes), int(sum(bin_counts)))
    )


def _fit_one_hot_logistic(codes, is_best, bin_counts, settings: CandidateSettings) -> AdditiveFit:
    model = _regression(_one_hot(codes, bin_counts), is_best, settings.regularization_c)
    coefficients = model.coef_[0]
    offsets = np.concatenate([[0], np.cumsum(bin_counts)]).astype(int)
    return AdditiveFit(
        "one_hot_logistic",
        float(model.intercept_[0]),
        tuple(coefficients[offsets[i] : offsets[i + 1]] for i in range(len(bin_counts))),
        tuple(
            np.bincount(codes[:, i], minlength=bins).astype(float)
            for i, bins in enumerate(bin_counts)
        ),
    )


def _fit_optbinning_scorecard(
    codes, is_best, bin_counts, settings: CandidateSettings
) -> AdditiveFit:
    # Imported here: optbinning (and OR-Tools under it) takes seconds to import, and only a
    # learned fit needs it.
    from optbinning import OptimalBinning

    woes, supports = [], []
    for column, bins in enumerate(bin_counts):
        binning = OptimalBinning(
            dtype="categorical",
            cat_cutoff=None,
            min_bin_size=settings.min_bin_share,
            # Neighbouring groups must differ significantly: noise makes one group, not many.
            max_pvalue=settings.max_group_pvalue,
            max_pvalue_policy="consecutive",
            solver="cp",
        )
        values = codes[:, column]
        binning.fit(values.astype(str), is_best)
        # optbinning chooses the groups (bins of similar event rates, none too small); their
        # evidence is weighed as the WoE scorecard weighs a bin, with the same prior.
        group_of_bin = np.asarray(
            binning.transform(np.arange(bins).astype(str), metric="indices"), dtype=np.int64
        )
        group_of_bin = np.where(group_of_bin < 0, group_of_bin.max(initial=0) + 1, group_of_bin)
        groups = int(group_of_bin.max(initial=0)) + 1
        group_woe, _ = _woe(group_of_bin[values], is_best, groups, settings.prior_customers)
        seen = np.bincount(values, minlength=bins) > 0
        # A bin unseen in training (optbinning's "special") is neutral.
        woes.append(np.where(seen, group_woe[group_of_bin], 0.0))
        supports.append(np.bincount(values, minlength=bins).astype(float))
    return _weighted_scorecard("optbinning_scorecard", codes, is_best, woes, supports, settings)


_FITTERS: dict[str, Callable[..., AdditiveFit]] = {
    "woe_scorecard": _fit_woe_scorecard,
    "optbinning_scorecard": _fit_optbinning_scorecard,
    "one_hot_logistic": _fit_one_hot_logistic,
}


def fit_additive(
    method: str,
    codes: np.ndarray,
    is_best: np.ndarray,
    bin_counts: list[int],
    settings: CandidateSettings,
) -> AdditiveFit:
    """Fit one additive candidate; ``bin_counts[a]`` is how many bins attribute ``a`` has."""
    return _FITTERS[method](codes, np.asarray(is_best, dtype=int), bin_counts, settings)


def gradient_boosting_scores(
    train_codes: np.ndarray, is_best: np.ndarray, test_codes: np.ndarray
) -> np.ndarray:
    """The non-additive reference: gradient boosting with the bins as categories (it may
    learn interactions a scorecard cannot); returns the test rows' log-odds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Shallow and slow-learning: a reference, not a model to publish.
    model = HistGradientBoostingClassifier(
        categorical_features=np.ones(train_codes.shape[1], dtype=bool)
        if train_codes.shape[1] and max(train_codes.max(initial=0), test_codes.max(initial=0)) < 255
        else None,
        max_depth=3,
        learning_rate=0.1,
        max_iter=100,
        l2_regularization=1.0,
        random_state=0,
    )
    model.fit(train_codes, is_best)
    return model.decision_function(test_codes)


@dataclass(frozen=True)
class OddsScale:
    """The published score scale: ``score_at_base_odds`` is the odds of an average labelled
    account (``base_rate``) and every ``points_to_double_odds`` points double them; with the
    defaults 50 and 20, a score of 70 is "twice as likely as average to become a best
    customer", 30 "half as". The one place a score and log-odds are converted."""

    base_rate: float
    score_at_base_odds: float
    points_to_double_odds: float

    @property
    def points_per_log_odds(self) -> float:
        return self.points_to_double_odds / math.log(2)

    def points(self, log_odds):
        """The score of log-odds of being a best customer (a number or an array)."""
        return self.score_at_base_odds + self.points_per_log_odds * (
            log_odds - float(_logit(self.base_rate))
        )

    def log_odds(self, points):
        """The log-odds of a score: the inverse of :meth:`points`."""
        return (
            float(_logit(self.base_rate))
            + (points - self.score_at_base_odds) / self.points_per_log_odds
        )


def scale_to_points(
    fit: AdditiveFit, base_rate: float, score_at_base_odds: float, points_to_double_odds: float
) -> tuple[float, tuple[np.ndarray, ...]]:
    """(base points, points per bin per attribute) of a fit, on the :class:`OddsScale`."""
    scale = OddsScale(base_rate, score_at_base_odds, points_to_double_odds)
    return scale.points(fit.intercept), tuple(
        scale.points_per_log_odds * contribution for contribution in fit.contributions
    )
