"""Alerts: a failed run, or a finished run with warnings, told to a person.

An alert is built from what the Dagster instance recorded of the run (its event log), so the
CLI, the daemon's run status sensors and a test all say the same thing. :func:`deliver` always
writes one line to the alert log (``$DAGSTER_HOME/alerts.log``) and, when a webhook is
configured, posts the message to it (Slack-compatible ``{"text": ...}`` or a generic JSON
body). A webhook that is down never fails the caller: the log line says what happened.

The CLI (``icp run`` from cron may have no daemon) and the daemon's sensor can both see the
same failed run; the log is the record of what was sent, so an alert of the same level for the
same run is sent once.

Messages hold run ids, dates, step and check names, landing file paths and the first lines of
errors: ingest errors quote header names, not row values, so no contact data goes out.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from dagster import DagsterEventType

from dagster_project.operations.liveness import run_dates, run_process
from dagster_project.run import failed_check_reason

__all__ = [
    "FAILURE",
    "WARNING",
    "Alert",
    "AlertConfigError",
    "AlertSettings",
    "deliver",
    "failure_alert",
    "warning_alert",
]

FAILURE = "failure"
WARNING = "warning"
WEBHOOK_FORMATS = ("slack", "json")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SLACK_HOST = "hooks.slack.com"

#: A message lists this many reasons and says how many more there were.
_MAX_REASONS = 5
#: Each reason is cut to this many characters: an alert points at the run, it is not the log.
_MAX_REASON_CHARS = 400
#: A landing file as errors and check metadata name it: ``2026-11-20/crm/opportunities.csv``.
_LANDING_FILE = re.compile(r"\b\d{4}-\d{2}-\d{2}/[\w./-]+?\.(?:csv\.gz|csv|parquet)\b")
#: Dagster's own words when a step stops on a failed blocking check: the check says why.
_BLOCKING_CHECK_STEP_MESSAGE = re.compile(r"blocking asset checks? failed", re.IGNORECASE)
#: Dagster wraps an exception raised in an asset in this; the exception it wraps says why.
_STEP_WRAPPER_ERROR = "DagsterExecutionStepExecutionError"
#: ``dagster._core.definitions.events.`` before an error's class name.
_MODULE_PATH = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )")


class AlertConfigError(ValueError):
    """An alert setting in the environment is not usable (the message names the variable)."""


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go. Read from the environment with :meth:`from_env`."""

    #: One JSON object per alert, always written.
    log_path: Path
    #: None: nothing is posted, the log line is still written.
    webhook_url: str | None = None
    #: ``slack`` (``{"text": ...}``) or ``json`` (every field of the alert).
    webhook_format: str = "json"
    #: Base URL of the Dagster UI; the message links to ``<base>/runs/<run_id>``.
    ui_url: str | None = None
    #: Send an alert for a run that succeeded with failed WARN checks.
    on_warnings: bool = True
    timeout_seconds: float = 10.0
    #: Waits before each retry of a post that met a 5xx answer or no connection.
    retry_delays_seconds: tuple[float, ...] = (1.0, 3.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        """``ICP_ALERT_WEBHOOK_URL`` (optional: unset, nothing is sent),
        ``ICP_ALERT_WEBHOOK_FORMAT`` (``slack`` or ``json``; default ``slack`` for a
        hooks.slack.com URL, else ``json``), ``ICP_ALERT_LOG`` (default
        ``$DAGSTER_HOME/alerts.log``), ``ICP_DAGSTER_UI_URL`` (e.g. http://127.0.0.1:3000),
        ``ICP_ALERT_ON_WARNINGS`` (default on).

        Raises:
            AlertConfigError: a URL that is not http(s), an unknown format, a flag that is not
                on/off.
        """
        env = os.environ if environ is None else environ
        webhook_url = _http_url(env, "ICP_ALERT_WEBHOOK_URL")
        webhook_format = env.get("ICP_ALERT_WEBHOOK_FORMAT", "").strip().lower()
        if not webhook_format:
            is_slack = webhook_url and urlsplit(webhook_url).hostname == _SLACK_HOST
            webhook_format = "slack" if is_slack else "json"
        elif webhook_format not in WEBHOOK_FORMATS:
            raise AlertConfigError(
                f"ICP_ALERT_WEBHOOK_FORMAT is {webhook_format!r}; expected one of "
                + ", ".join(WEBHOOK_FORMATS)
            )
        log = env.get("ICP_ALERT_LOG", "").strip()
        # The same default home as dagster_project.run.dagster_instance.
        home = env.get("DAGSTER_HOME", "").strip() or Path.cwd() / "data" / "dagster_home"
        return cls(
            log_path=Path(log or Path(home) / "alerts.log").resolve(),
            webhook_url=webhook_url,
            webhook_format=webhook_format,
            ui_url=_http_url(env, "ICP_DAGSTER_UI_URL"),
            on_warnings=_flag(env, "ICP_ALERT_ON_WARNINGS", default=True),
        )


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertConfigError(
            f"{name} must be an http:// or https:// URL with a host, e.g. "
            f"https://hooks.slack.com/services/...; got scheme {parts.scheme or 'none'!r}"
        )
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise AlertConfigError(f"{name} is {value!r}; expected on/off (1/0, true/false, yes/no)")


@dataclass(frozen=True)
class Alert:
    """What a person needs to know of one run: what failed or warned, where, why, a link."""

    #: ``failure`` or ``warning``.
    level: str
    run_id: str
    job_name: str
    #: The as-of date (``2026-11-20``) or range (``2026-10-01..2026-10-31``) the run scored.
    dates: str
    #: The failed step(s), or the steps whose checks warned.
    steps: tuple[str, ...] = ()
    #: Landing files named by the errors or the checks' metadata.
    files: tuple[str, ...] = ()
    #: Why, one entry per error or check, most telling first.
    reasons: tuple[str, ...] = ()
    #: The run in the Dagster UI, when ``ICP_DAGSTER_UI_URL`` is set.
    link: str | None = None

    @property
    def text(self) -> str:
        """One human message, e.g. ``icp-pipeline run failed for 2026-11-20 at step
        raw__crm__opportunities: 2026-11-20/crm/opportunities.csv: required column(s) ...``."""
        dates = f" for {self.dates}" if self.dates else ""
        if self.level == FAILURE:
            steps = f" at step {', '.join(self.steps)}" if self.steps else ""
            head = f"icp-pipeline run failed{dates}{steps}"
        else:
            count = len(self.reasons)
            head = f"icp-pipeline run{dates} finished with {count} warning{'s' * (count != 1)}"
        shown = list(self.reasons[:_MAX_REASONS])
        if len(self.reasons) > _MAX_REASONS:
            shown.append(f"(and {len(self.reasons) - _MAX_REASONS} more)")
        body = "; ".join(shown) or "no reason recorded; see the run's events"
        unnamed = [f for f in self.files if f not in body]
        if unnamed:
            body += f" (file{'s' * (len(unnamed) > 1)}: {', '.join(unnamed)})"
        return f"{head}: {body} (run {self.run_id}){' ' + self.link if self.link else ''}"


def _run_link(settings: AlertSettings | None, run_id: str) -> str | None:
    if settings is None or not settings.ui_url:
        return None
    return f"{settings.ui_url.rstrip('/')}/runs/{run_id}"


def _short(message: str, lines: int = 2) -> str:
    """The first non-empty lines of an error, cut to a readable length."""
    kept = " ".join(line.strip() for line in message.strip().splitlines()[:lines] if line.strip())
    return kept if len(kept) <= _MAX_REASON_CHARS else kept[: _MAX_REASON_CHARS - 3] + "..."


def _error_message(error) -> str:
    """What an exception raised in a step said, past Dagster's wrapper around it, named by its
    class without the module path (``ValueError: ...``)."""
    while error is not None and _STEP_WRAPPER_ERROR in error.message and error.cause is not None:
        error = error.cause
    return _MODULE_PATH.sub("", error.message.strip()) if error is not None else ""


def _step_failure_message(failure) -> str:
    """A ``dg.Failure`` (what ingest raises for bad data) says why in its description."""
    user_failure = failure.user_failure_data
    if user_failure is not None and user_failure.description:
        return user_failure.description.strip()
    return _error_message(failure.error)


def _files_in(texts) -> list[str]:
    return [match for text in texts for match in _LANDING_FILE.findall(str(text))]


def _unique(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


@dataclass
class _RunEvents:
    """The parts of a run's event log an alert is made of."""

    step_failures: list[tuple[str, str]] = field(default_factory=list)
    #: (step, reason, files) of each failed ERROR check.
    failed_checks: list[tuple[str, str, list[str]]] = field(default_factory=list)
    #: (step, reasons, files) of each failed WARN check: one reason per warning it lists.
    warned_checks: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    run_failure_message: str = ""


def _read_run_events(instance: dg.DagsterInstance, run_id: str) -> _RunEvents:
    events = _RunEvents()
    last_retried_error: dict[str, str] = {}
    for entry in instance.all_logs(
        run_id,
        of_type={
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.STEP_UP_FOR_RETRY,
            DagsterEventType.ASSET_CHECK_EVALUATION,
            DagsterEventType.RUN_FAILURE,
        },
    ):
        event = entry.dagster_event
        step = entry.step_key or ""
        if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            last_retried_error[step] = _error_message(event.step_retry_data.error)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            message = _step_failure_message(event.step_failure_data)
            if step in last_retried_error:
                # "Exceeded max_retries" says nothing of the cause: the last try's error does.
                message = f"{message}; last error: {last_retried_error[step]}"
            events.step_failures.append((step, message))
        elif event.event_type == DagsterEventType.RUN_FAILURE:
            events.run_failure_message = event.message or entry.user_message or ""
        else:
            evaluation = event.asset_check_evaluation_data
            if evaluation.passed:
                continue
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            metadata = [value.value for value in evaluation.metadata.values()]
            if evaluation.severity == dg.AssetCheckSeverity.WARN:
                warnings = evaluation.metadata.get("warnings")
                details = list(warnings.value) if warnings is not None and warnings.value else []
                reasons = [f"{name}: {detail}" for detail in details] or [name]
                events.warned_checks.append((step, reasons, _files_in(metadata)))
            else:
                reason = f"check {name} failed: {failed_check_reason(evaluation)}"
                events.failed_checks.append((step, reason, _files_in(metadata)))
    return events


def failure_alert(
    instance: dg.DagsterInstance, run: dg.DagsterRun, settings: AlertSettings | None = None
) -> Alert:
    """The alert for a failed run, from the instance's event log of the run: the failed steps
    and their errors, the failed blocking (ERROR) checks with their reasons, and the run
    failure's own message when nothing else says why (a run whose process died, closed by
    :func:`~dagster_project.operations.liveness.close_dead_runs`, names the step that ran)."""
    events = _read_run_events(instance, run.run_id)
    check_reasons = [reason for _, reason, _ in events.failed_checks]
    # A step stopped by a failed blocking check says only that; the check's reason says why.
    told = [
        (step, message)
        for step, message in events.step_failures
        if not (check_reasons and _BLOCKING_CHECK_STEP_MESSAGE.search(message))
    ]
    # The message names the failed step once; with several, each reason names its own.
    step_reasons = [f"{step}: {message}" if len(told) > 1 else message for step, message in told]
    reasons = [_short(reason) for reason in step_reasons + check_reasons]
    if not reasons and events.run_failure_message:
        reasons = [_short(events.run_failure_message)]
    steps = [step for step, _ in events.step_failures]
    steps += [step for step, _, _ in events.failed_checks]
    if not steps and events.run_failure_message:
        # A dead run: liveness's message says "... while step X was running: ..."; run
        # monitoring's own message does not, the step left started and never ended does.
        running = re.search(r"while step (\S+) was running", events.run_failure_message)
        step = running.group(1) if running else run_process(instance, run).running_step
        steps = [step] if step else []
    files = _files_in(message for _, message in events.step_failures)
    files += [file for _, _, found in events.failed_checks for file in found]
    files += _files_in([events.run_failure_message])
    return Alert(
        level=FAILURE,
        run_id=run.run_id,
        job_name=run.job_name,
        dates=run_dates(run),
        steps=_unique(steps),
        files=_unique(files),
        reasons=_unique(reasons),
        link=_run_link(settings, run.run_id),
    )


def warning_alert(
    instance: dg.DagsterInstance, run: dg.DagsterRun, settings: AlertSettings | None = None
) -> Alert | None:
    """The alert for a finished run whose WARN checks failed (the landing is stale or lacks a
    file, quarantine share, unexpected headers, validation drift or ICP share), or None."""
    events = _read_run_events(instance, run.run_id)
    if not events.warned_checks:
        return None
    reasons = [reason for _, found, _ in events.warned_checks for reason in found]
    files = [file for _, _, found in events.warned_checks for file in found]
    return Alert(
        level=WARNING,
        run_id=run.run_id,
        job_name=run.job_name,
        dates=run_dates(run),
        steps=_unique(step for step, _, _ in events.warned_checks),
        files=_unique(files),
        reasons=_unique(_short(reason, lines=1) for reason in reasons),
        link=_run_link(settings, run.run_id),
    )


def _webhook_body(alert: Alert, webhook_format: str) -> dict:
    if webhook_format == "slack":
        return {"text": alert.text}
    return {**asdict(alert), "text": alert.text}


def _post(alert: Alert, settings: AlertSettings) -> str:
    """Post to the webhook, retrying 5xx answers and lost connections; what happened, in words
    (the URL itself is left out: a Slack webhook URL is a secret)."""
    host = urlsplit(settings.webhook_url).hostname
    data = json.dumps(_webhook_body(alert, settings.webhook_format)).encode("utf-8")
    attempts = len(settings.retry_delays_seconds) + 1
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(settings.retry_delays_seconds[attempt - 1])
        request = urllib.request.Request(
            settings.webhook_url,
            data=data,
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
                status = response.status
            return f"posted to webhook {host} ({settings.webhook_format}, HTTP {status})"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code} {error.reason}"
            if error.code < 500 and error.code != 429:
                # A 4xx (a revoked URL, a bad body) will answer the same next time.
                return f"webhook {host} refused the alert: {problem}"
        except (urllib.error.URLError, OSError) as error:
            problem = str(getattr(error, "reason", error))
    return f"webhook {host} failed after {attempts} attempts: {problem}"


@contextmanager
def _locked(log_path: Path) -> Iterator[None]:
    """An exclusive lock beside the log, held while one caller checks it and appends."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path.with_name(log_path.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _already_alerted(log_path: Path, alert: Alert) -> str | None:
    """When an alert of the same level for the same run was delivered, per the log."""
    if not log_path.exists():
        return None
    with open(log_path, encoding="utf-8") as log:
        for line in log:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line written by hand, or cut short by a full disk
            if (
                record.get("run_id") == alert.run_id
                and record.get("level") == alert.level
                and not record.get("duplicate")
            ):
                return record.get("at", "an earlier time")
    return None


def deliver(alert: Alert, settings: AlertSettings) -> str:
    """Log the alert (one JSON line, always) and post it to the webhook when one is set and the
    run was not alerted at this level before; never raises for a webhook that is down.

    Returns what happened, e.g. ``logged to /srv/icp/dagster_home/alerts.log; posted to webhook
    hooks.slack.com (slack, HTTP 200)``.
    """
    # Held through the post, so a second caller waits and then finds this alert in the log.
    with _locked(settings.log_path):
        earlier = _already_alerted(settings.log_path, alert)
        if earlier is not None:
            outcome = f"already alerted at {earlier}; not sent again"
        elif settings.webhook_url:
            outcome = _post(alert, settings)
        else:
            outcome = "no webhook configured (ICP_ALERT_WEBHOOK_URL)"
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **asdict(alert),
            "text": alert.text,
            "delivery": outcome,
            "duplicate": earlier is not None,
        }
        with open(settings.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
    return f"logged to {settings.log_path}; {outcome}"
