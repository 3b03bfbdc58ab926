"""The ``changes`` section of the scoring config: what the CRM-ready changes report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dagster_project.scoring.config import (
    ChangeSettings,
    ScoringConfigError,
    load_scoring_config,
)
from dagster_project.settings import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "scoring.yaml"


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _document() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def test_the_shipped_config_reports_moves_above_ten_points():
    changes = load_scoring_config(DEFAULT_CONFIG).changes
    assert changes == ChangeSettings(min_score_change=10, factor_count=3)
    assert changes.dbt_vars() == {"change_min_score_change": 10.0, "change_factor_count": 3}


def test_without_the_section_the_defaults_apply(tmp_path):
    document = _document()
    del document["changes"]
    assert load_scoring_config(_write(tmp_path, document)).changes == ChangeSettings()


def test_the_threshold_is_not_part_of_score_version(tmp_path):
    """Reporting more or fewer changes changes no score: the published scores keep their
    version when only the changes section differs."""
    document = _document()
    shipped = load_scoring_config(_write(tmp_path, document))
    document["changes"] = {"min_score_change": 2.5, "factor_count": 5}
    changed = load_scoring_config(_write(tmp_path, document))
    assert changed.changes == ChangeSettings(min_score_change=2.5, factor_count=5)
    assert changed.score_version == shipped.score_version
    document["tiers"]["high"] = 75
    assert load_scoring_config(_write(tmp_path, document)).score_version != shipped.score_version


@pytest.mark.parametrize(
    "section, message",
    [
        ({"min_score_change": -1}, "min_score_change must be >= 0"),
        ({"factor_count": 0}, "factor_count >= 1"),
        ({"factor_count": 2.5}, "must be an integer"),
        ({"threshold": 10}, "unknown setting"),
    ],
)
def test_invalid_settings_are_refused(tmp_path, section, message):
    document = {**_document(), "changes": section}
    with pytest.raises(ScoringConfigError, match=message):
        load_scoring_config(_write(tmp_path, document))
