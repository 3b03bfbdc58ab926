"""The scoring config file: parsed with ``yaml.safe_load`` and validated, never evaluated."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dagster_project.scoring.anti_icp import AntiIcpSettings
from dagster_project.scoring.learned import LearnedSettings

__all__ = [
    "AntiIcpRule",
    "ChangeSettings",
    "Condition",
    "Criterion",
    "ScoringConfig",
    "ScoringConfigError",
    "load_scoring_config",
]

#: Condition operators and the shape of their operand.
OPERATORS = {
    "eq": "scalar",
    "not_eq": "scalar",
    "in": "list",
    "not_in": "list",
    "gte": "number",
    "gt": "number",
    "lte": "number",
    "lt": "number",
    "between": "pair",
    "contains_any": "list",
    "is_missing": "true",
}
MODELS = ("rules", "learned", "blend")
ROUTE_KEYS = ("high", "medium", "low", "anti_icp")


class ScoringConfigError(ValueError):
    """The scoring config is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Condition:
    """``attribute <operator> operand``, e.g. ``employee_count between [100, 1000]``."""

    attribute: str
    operator: str
    operand: Any


@dataclass(frozen=True)
class Criterion:
    """Points given when a condition holds."""

    name: str
    condition: Condition
    points: float


@dataclass(frozen=True)
class AntiIcpRule:
    """A knock-out rule: accounts meeting the condition are flagged with ``code``."""

    code: str
    condition: Condition


@dataclass(frozen=True)
class SegmentSettings:
    """Multi-ICP: when do the best customers form distinct groups."""

    max_segments: int = 3
    min_silhouette: float = 0.25
    min_segment_share: float = 0.2


@dataclass(frozen=True)
class ValidationSettings:
    """Backtest, breadth and drift settings."""

    backtest_days: int = 180
    icp_share_low: float = 0.05
    icp_share_high: float = 0.15
    psi_warn: float = 0.2
    tier_share_change_warn: float = 0.05
    #: The learned score is used only when the lower bound of its cross-validated AUC's 95 %
    #: interval is above this; else the run says no_signal and scores with the rules.
    no_signal_auc_floor: float = 0.55


@dataclass(frozen=True)
class ChangeSettings:
    """What ``marts.account_fit_score_changes`` (the CRM-ready changes) reports.

    An account is reported on a date when its tier, route or anti-ICP flag changed since the
    previous scored date, or when its fit score moved by more than ``min_score_change``
    points (either way); ``factor_count`` factors whose points moved the most are listed.
    """

    min_score_change: float = 10.0
    factor_count: int = 3

    def dbt_vars(self) -> dict[str, float | int]:
        """The dbt vars the changes model reads (its only source of these settings)."""
        return {
            "change_min_score_change": float(self.min_score_change),
            "change_factor_count": self.factor_count,
        }


@dataclass(frozen=True)
class ScoringConfig:
    """A validated scoring config."""

    model: str
    base_points: float
    criteria: tuple[Criterion, ...]
    anti_icp_rules: tuple[AntiIcpRule, ...]
    high_threshold: float
    medium_threshold: float
    routes: dict[str, str]
    top_factor_count: int
    fingerprint: str
    learned: LearnedSettings = field(default_factory=LearnedSettings)
    learned_anti_icp: AntiIcpSettings = field(default_factory=AntiIcpSettings)
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    blend_learned_weight: float = 0.7
    pinned_points: dict[str, float] = field(default_factory=dict)
    #: Data-driven high tier: the high threshold becomes the highest score whose high tier
    #: holds this share of the best customers, out of fold (None: ``high_threshold``).
    high_captures_best_share: float | None = None
    changes: ChangeSettings = field(default_factory=ChangeSettings)

    def tier_for(self, fit_score: float) -> str:
        """The tier of a score under this config's thresholds."""
        if fit_score >= self.high_threshold:
            return "high"
        if fit_score >= self.medium_threshold:
            return "medium"
        return "low"

    @property
    def score_version(self) -> str:
        """Identifies the scoring logic: model kind and a hash of the config's content."""
        return f"{self.model}-{self.fingerprint}"

    @property
    def attributes(self) -> set[str]:
        return {c.condition.attribute for c in self.criteria} | {
            r.condition.attribute for r in self.anti_icp_rules
        }


def load_scoring_config(path: Path) -> ScoringConfig:
    """Read and validate a scoring config file.

    Raises:
        ScoringConfigError: the file is missing, not YAML, or an entry is invalid.
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ScoringConfigError(f"{path}: cannot read scoring config: {error}") from error
    if not isinstance(document, dict):
        raise ScoringConfigError(f"{path}: expected a mapping at the top level")
    return _parse(document, str(path))


def _parse(document: dict[str, Any], origin: str) -> ScoringConfig:
    def fail(message: str) -> ScoringConfigError:
        return ScoringConfigError(f"{origin}: {message}")

    model = document.get("model", "rules")
    if model not in MODELS:
        raise fail(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    criteria = []
    for index, entry in enumerate(document.get("criteria") or []):
        where = f"criteria[{index}]"
        name = _identifier(entry, "name", where, fail)
        points = entry.get("points")
        if not isinstance(points, int | float) or isinstance(points, bool):
            raise fail(f"{where} ({name}): points must be a number")
        criteria.append(Criterion(name, _condition(entry, where, fail), float(points)))
    if not criteria:
        raise fail("criteria must list at least one criterion")
    if len({c.name for c in criteria}) != len(criteria):
        raise fail("criteria names must be unique")
    rules = []
    for index, entry in enumerate(document.get("anti_icp_rules") or []):
        where = f"anti_icp_rules[{index}]"
        rules.append(
            AntiIcpRule(_identifier(entry, "code", where, fail), _condition(entry, where, fail))
        )
    tiers = document.get("tiers") or {}
    high, medium = tiers.get("high", 70), tiers.get("medium", 40)
    if not all(isinstance(v, int | float) for v in (high, medium)) or not 0 <= medium < high <= 100:
        raise fail(
            f"tiers must satisfy 0 <= medium < high <= 100 (got medium={medium}, high={high})"
        )
    high_recall = tiers.get("high_captures_best_share")
    if high_recall is not None and (
        not isinstance(high_recall, int | float) or not 0 < high_recall < 1
    ):
        raise fail("tiers.high_captures_best_share must be between 0 and 1 (or absent)")
    routes = {"high": "senior_ae", "medium": "ae", "low": "sdr_nurture", "anti_icp": "disqualify"}
    routes.update(document.get("routes") or {})
    if set(routes) != set(ROUTE_KEYS) or not all(isinstance(v, str) and v for v in routes.values()):
        raise fail(f"routes must map exactly {', '.join(ROUTE_KEYS)} to route names")
    top_factor_count = document.get("top_factors", 5)
    if not isinstance(top_factor_count, int) or top_factor_count < 1:
        raise fail("top_factors must be a positive integer")
    base_points = document.get("base_points", 0)
    if not isinstance(base_points, int | float):
        raise fail("base_points must be a number")
    learned_section = dict(document.get("learned") or {})
    anti_section = learned_section.pop("anti_icp", None) or {}
    blend_weight = learned_section.pop("blend_learned_weight", 0.7)
    pinned = learned_section.pop("pinned_points", None) or {}
    if not isinstance(blend_weight, int | float) or not 0 <= blend_weight <= 1:
        raise fail("learned.blend_learned_weight must be between 0 and 1")
    if not isinstance(pinned, dict) or not all(
        isinstance(k, str) and "=" in k and isinstance(v, int | float) for k, v in pinned.items()
    ):
        raise fail("learned.pinned_points maps 'attribute=bin' to points")
    learned = _settings(learned_section, LearnedSettings, "learned", fail)
    for attribute in learned.attributes:
        if not attribute.replace("_", "").isalnum():
            raise fail(f"learned.attributes: {attribute!r} is not a column name")
    if not 0 < learned.best_share < 1:
        raise fail("learned.best_share must be between 0 and 1")
    if learned.prior_customers < 0 or learned.points_to_double_odds <= 0:
        raise fail("learned.prior_customers must be >= 0 and points_to_double_odds > 0")
    changes = _settings(document.get("changes") or {}, ChangeSettings, "changes", fail)
    if changes.min_score_change < 0 or changes.factor_count < 1:
        raise fail("changes.min_score_change must be >= 0 and changes.factor_count >= 1")
    # What the changes report shows does not change a score: it stays out of score_version.
    scored = {key: value for key, value in document.items() if key != "changes"}
    canonical = json.dumps(scored, sort_keys=True, default=str).encode()
    return ScoringConfig(
        model=model,
        base_points=float(base_points),
        criteria=tuple(criteria),
        anti_icp_rules=tuple(rules),
        high_threshold=float(high),
        medium_threshold=float(medium),
        high_captures_best_share=None if high_recall is None else float(high_recall),
        routes=routes,
        top_factor_count=top_factor_count,
        fingerprint=hashlib.sha256(canonical).hexdigest()[:12],
        learned=learned,
        learned_anti_icp=_settings(anti_section, AntiIcpSettings, "learned.anti_icp", fail),
        segments=_settings(document.get("segments") or {}, SegmentSettings, "segments", fail),
        validation=_settings(
            document.get("validation") or {}, ValidationSettings, "validation", fail
        ),
        blend_learned_weight=float(blend_weight),
        pinned_points={k: float(v) for k, v in pinned.items()},
        changes=changes,
    )


def _settings(section: Any, cls: type, where: str, fail):
    """Build a settings dataclass from a config section, type-checked against its defaults."""
    if not isinstance(section, dict):
        raise fail(f"{where} must be a mapping")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    unknown = set(section) - known
    if unknown:
        raise fail(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    values = {}
    for name, value in section.items():
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(f"{where}.{name} must be a list of names")
            value = tuple(value)
        elif isinstance(default, bool) or not isinstance(value, int | float):
            if type(value) is not type(default):
                raise fail(f"{where}.{name} must be a {type(default).__name__}")
        elif isinstance(default, int) and not isinstance(value, int):
            raise fail(f"{where}.{name} must be an integer")
        values[name] = value
    return cls(**values)


def _identifier(entry: Any, field: str, where: str, fail) -> str:
    if not isinstance(entry, dict):
        raise fail(f"{where}: expected a mapping")
    value = entry.get(field)
    if not isinstance(value, str) or not value.replace("_", "").isalnum():
        raise fail(f"{where}: {field} must be a name of letters, digits and underscores")
    return value


def _condition(entry: dict[str, Any], where: str, fail) -> Condition:
    attribute = _identifier(entry, "attribute", where, fail)
    when = entry.get("when")
    if not isinstance(when, dict) or len(when) != 1:
        raise fail(f"{where}: when must hold exactly one operator ({', '.join(OPERATORS)})")
    ((operator, operand),) = when.items()
    shape = OPERATORS.get(operator)
    if shape is None:
        raise fail(f"{where}: unknown operator {operator!r} ({', '.join(OPERATORS)})")
    valid = {
        "scalar": isinstance(operand, str | int | float) and not isinstance(operand, bool),
        "list": isinstance(operand, list) and len(operand) > 0,
        "number": isinstance(operand, int | float) and not isinstance(operand, bool),
        "pair": isinstance(operand, list)
        and len(operand) == 2
        and all(isinstance(v, int | float) for v in operand)
        and operand[0] <= operand[1],
        "true": operand is True,
    }[shape]
    if not valid:
        raise fail(f"{where}: operand of {operator} is not a valid {shape} ({operand!r})")
    return Condition(attribute, operator, operand)
