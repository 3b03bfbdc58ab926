"""Retention settings, the alert log's rotation, and prune's other stores (dbt target folders,
published versions). A year of run history is pruned in tests/reliability/test_retention_year.py."""

from __future__ import annotations

import os
import time

import pytest

from dagster_project.operations.retention import (
    ALERT_LOG,
    RetentionSettings,
    prune,
    rotate_alert_log,
)
from tests.conftest import settings_for
from tests.unit.run_history import DAY, scratch_instance


def test_retention_settings_from_the_environment(monkeypatch):
    for name in ("ICP_RETAIN_RUNS_DAYS", "ICP_KEEP_PUBLISHED_VERSIONS", "ICP_ALERT_LOG_MAX_MB"):
        monkeypatch.delenv(name, raising=False)
    assert RetentionSettings.from_env() == RetentionSettings(90, 3, 10 * 1024 * 1024)
    monkeypatch.setenv("ICP_RETAIN_RUNS_DAYS", "30")
    monkeypatch.setenv("ICP_KEEP_PUBLISHED_VERSIONS", "5")
    monkeypatch.setenv("ICP_ALERT_LOG_MAX_MB", "1")
    assert RetentionSettings.from_env() == RetentionSettings(30, 5, 1024 * 1024)
    monkeypatch.setenv("ICP_RETAIN_RUNS_DAYS", "0")
    with pytest.raises(ValueError, match="ICP_RETAIN_RUNS_DAYS must be at least 1"):
        RetentionSettings.from_env()


def test_the_alert_log_is_rotated_when_too_large_keeping_one(tmp_path):
    assert not rotate_alert_log(tmp_path, max_bytes=100)  # no log yet: nothing to do
    log = tmp_path / ALERT_LOG
    log.write_text("x" * 100, encoding="utf-8")
    assert not rotate_alert_log(tmp_path, max_bytes=100)
    log.write_text("first\n" * 50, encoding="utf-8")
    assert rotate_alert_log(tmp_path, max_bytes=100)
    assert not log.exists() and (tmp_path / f"{ALERT_LOG}.1").read_text().startswith("first")
    log.write_text("second\n" * 50, encoding="utf-8")
    assert rotate_alert_log(tmp_path, max_bytes=100)
    assert (tmp_path / f"{ALERT_LOG}.1").read_text().startswith("second")
    assert sorted(os.listdir(tmp_path)) == [f"{ALERT_LOG}.1"]


def test_prune_removes_stale_dbt_targets_and_extra_published_versions(tmp_path, monkeypatch):
    instance = scratch_instance(tmp_path / "home", monkeypatch)
    settings = settings_for(tmp_path / "landing", tmp_path / "warehouse.duckdb")
    target = tmp_path / "target"
    stale = target / "dbt_models-1a2b3c4-5d6e7f8"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 8 * DAY,) * 2)
    (target / "manifest.json").write_text("{}")
    parquet = tmp_path / "published" / "parquet"
    for stamp in ("20261101", "20261102", "20261103", "20261104"):
        (parquet / f"v-{stamp}T000000000000Z-0000abcd").mkdir(parents=True)
    (parquet / "current").symlink_to("v-20261104T000000000000Z-0000abcd")

    report = prune(
        instance, settings, RetentionSettings(keep_published_versions=2), dbt_target_root=target
    )

    assert report.dbt_targets_removed == [stale.name] and (target / "manifest.json").exists()
    assert len(report.published_versions_removed) == 2
    assert sorted(p.name for p in parquet.iterdir())[-1] == "v-20261104T000000000000Z-0000abcd"
    instance.dispose()
