"""Alert delivery against a real HTTP server on loopback: the bodies a webhook receives, a
webhook that is down or answers 500, no webhook at all, the dedupe, and bad settings."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dagster_project.operations.alerts import (
    FAILURE,
    WARNING,
    Alert,
    AlertConfigError,
    AlertSettings,
    deliver,
)
from tests.loopback_webhook import Webhook

RUN_ID = "0f3c2a9e-1111-4222-8333-944455556666"
REASON = (
    "ingest of crm/opportunities failed: "
    "2026-11-20/crm/opportunities.csv: required column(s) stage missing"
)
LINK = f"http://127.0.0.1:3000/runs/{RUN_ID}"
FAILED = Alert(
    level=FAILURE,
    run_id=RUN_ID,
    job_name="icp_full_run",
    dates="2026-11-20",
    steps=("raw__crm__opportunities",),
    files=("2026-11-20/crm/opportunities.csv",),
    reasons=(REASON,),
    link=LINK,
)
EXPECTED_TEXT = (
    f"icp-pipeline run failed for 2026-11-20 at step raw__crm__opportunities: {REASON} "
    f"(run {RUN_ID}) {LINK}"
)


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


def _settings(tmp_path: Path, url: str | None, webhook_format: str = "json") -> AlertSettings:
    return AlertSettings(
        log_path=tmp_path / "home" / "alerts.log",
        webhook_url=url,
        webhook_format=webhook_format,
        ui_url="http://127.0.0.1:3000",
        retry_delays_seconds=(0.0, 0.0),
        timeout_seconds=5.0,
    )


def _log_lines(settings: AlertSettings) -> list[dict]:
    return [json.loads(line) for line in settings.log_path.read_text().splitlines()]


def test_text_names_date_step_file_reason_and_link():
    assert FAILED.text == EXPECTED_TEXT
    unnamed_file = replace(FAILED, reasons=("step raw__crm__opportunities died",), link=None)
    assert unnamed_file.text.endswith(
        "died (file: 2026-11-20/crm/opportunities.csv) (run " + RUN_ID + ")"
    )


def test_slack_body_is_one_text_message(webhook, tmp_path):
    settings = _settings(tmp_path, webhook.url, "slack")
    outcome = deliver(FAILED, settings)
    assert webhook.bodies == [{"text": EXPECTED_TEXT}]
    assert outcome == (
        f"logged to {settings.log_path}; posted to webhook 127.0.0.1 (slack, HTTP 200)"
    )


def test_json_body_carries_every_field(webhook, tmp_path):
    deliver(FAILED, _settings(tmp_path, webhook.url, "json"))
    assert webhook.bodies == [
        {
            "level": "failure",
            "run_id": RUN_ID,
            "job_name": "icp_full_run",
            "dates": "2026-11-20",
            "steps": ["raw__crm__opportunities"],
            "files": ["2026-11-20/crm/opportunities.csv"],
            "reasons": [REASON],
            "link": LINK,
            "text": EXPECTED_TEXT,
        }
    ]


def test_log_line_records_the_alert_and_its_delivery(webhook, tmp_path):
    settings = _settings(tmp_path, webhook.url)
    deliver(FAILED, settings)
    (line,) = _log_lines(settings)
    assert line["at"].endswith("+00:00"), "UTC"
    assert {k: line[k] for k in ("level", "run_id", "dates", "steps", "files", "link")} == {
        "level": "failure",
        "run_id": RUN_ID,
        "dates": "2026-11-20",
        "steps": ["raw__crm__opportunities"],
        "files": ["2026-11-20/crm/opportunities.csv"],
        "link": LINK,
    }
    assert line["reasons"] == [REASON]
    assert line["delivery"] == "posted to webhook 127.0.0.1 (json, HTTP 200)"
    assert webhook.url not in settings.log_path.read_text(), "a webhook URL is a secret"


def test_a_webhook_answering_500_is_retried_then_logged_not_raised(tmp_path):
    server = Webhook(status=500)
    try:
        settings = _settings(tmp_path, server.url)
        outcome = deliver(FAILED, settings)
    finally:
        server.close()
    assert len(server.bodies) == 3, "one try and two retries"
    assert "failed after 3 attempts: HTTP 500" in outcome
    (line,) = _log_lines(settings)
    assert line["delivery"] == (
        "webhook 127.0.0.1 failed after 3 attempts: HTTP 500 Internal Server Error"
    )


def test_a_webhook_answering_4xx_is_not_retried(tmp_path):
    server = Webhook(status=404)
    try:
        outcome = deliver(FAILED, _settings(tmp_path, server.url))
    finally:
        server.close()
    assert len(server.bodies) == 1
    assert outcome.endswith("webhook 127.0.0.1 refused the alert: HTTP 404 Not Found")


def test_a_closed_port_is_logged_not_raised(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    settings = _settings(tmp_path, f"http://127.0.0.1:{port}/hook")
    outcome = deliver(FAILED, settings)
    assert "failed after 3 attempts" in outcome and "refused" in outcome.lower()
    (line,) = _log_lines(settings)
    assert line["delivery"].startswith("webhook 127.0.0.1 failed after 3 attempts")


def test_without_a_webhook_nothing_is_sent_and_the_line_is_written(tmp_path):
    settings = _settings(tmp_path, None)
    outcome = deliver(FAILED, settings)
    assert outcome == (
        f"logged to {settings.log_path}; no webhook configured (ICP_ALERT_WEBHOOK_URL)"
    )
    (line,) = _log_lines(settings)
    assert line["run_id"] == RUN_ID and line["level"] == "failure"


def test_the_same_run_and_level_is_sent_once(webhook, tmp_path):
    settings = _settings(tmp_path, webhook.url)
    deliver(FAILED, settings)
    second = deliver(FAILED, settings)
    assert len(webhook.bodies) == 1
    assert "not sent again" in second
    first_line, second_line = _log_lines(settings)
    assert second_line["duplicate"] and not first_line["duplicate"]
    assert first_line["at"] in second_line["delivery"]
    # A warning of the same run is another alert; a failure of another run too.
    deliver(replace(FAILED, level=WARNING), settings)
    deliver(replace(FAILED, run_id="another-run"), settings)
    assert len(webhook.bodies) == 3


def test_concurrent_deliveries_of_one_alert_send_it_once(webhook, tmp_path):
    settings = _settings(tmp_path, webhook.url)
    threads = [threading.Thread(target=deliver, args=(FAILED, settings)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(webhook.bodies) == 1
    assert [line["duplicate"] for line in _log_lines(settings)].count(False) == 1


def test_settings_from_env_defaults(tmp_path):
    settings = AlertSettings.from_env({"DAGSTER_HOME": str(tmp_path)})
    assert settings.log_path == tmp_path / "alerts.log"
    assert settings.webhook_url is None and settings.ui_url is None
    assert settings.on_warnings is True
    slack = AlertSettings.from_env(
        {"ICP_ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}
    )
    assert slack.webhook_format == "slack"
    other = AlertSettings.from_env(
        {
            "ICP_ALERT_WEBHOOK_URL": "https://alerts.example.com/hook",
            "ICP_ALERT_LOG": str(tmp_path / "a" / "b.log"),
            "ICP_ALERT_ON_WARNINGS": "off",
        }
    )
    assert other.webhook_format == "json"
    assert other.log_path == tmp_path / "a" / "b.log"
    assert other.on_warnings is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ICP_ALERT_WEBHOOK_URL": "file:///etc/passwd"}, "ICP_ALERT_WEBHOOK_URL must be an"),
        ({"ICP_ALERT_WEBHOOK_URL": "__import__('os')"}, "ICP_ALERT_WEBHOOK_URL must be an"),
        ({"ICP_ALERT_WEBHOOK_URL": "https://"}, "with a host"),
        ({"ICP_DAGSTER_UI_URL": "ftp://ui"}, "ICP_DAGSTER_UI_URL must be an http"),
        ({"ICP_ALERT_WEBHOOK_FORMAT": "teams"}, "expected one of slack, json"),
        ({"ICP_ALERT_ON_WARNINGS": "maybe"}, "ICP_ALERT_ON_WARNINGS is 'maybe'"),
    ],
)
def test_bad_settings_are_a_clear_error(env, message):
    with pytest.raises(AlertConfigError, match=message.replace("(", r"\(")):
        AlertSettings.from_env(env)
