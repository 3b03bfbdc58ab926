"""Progress of a run while it executes, from its Dagster event stream.

A run's events reach a :class:`RunProgress` as Dagster stores them: the instance calls every
listener registered for the run id (``DagsterInstance.add_event_listener``, the hook Dagster's
own external-step execution follows a run with), in the thread executing the step, right after
the event is written. Nothing polls the event log, so following a run costs one small
function call per event.

Two displays share that state:

- :class:`PlainProgress`, one line per step event for logs, cron and CI
  (``12:01:05  raw__crm__accounts  succeeded in 2.1 s``), flushed as it happens, plain text;
- :class:`LiveProgress`, a rich table of the steps with their status and elapsed time,
  refreshed in place on a terminal.

:func:`progress_display` picks one (``auto``: live on a terminal, plain otherwise).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Literal

import dagster as dg
from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from dagster_project.run import retry_cause

__all__ = [
    "PROGRESS_MODES",
    "LiveProgress",
    "PlainProgress",
    "PlannedStep",
    "ProgressMode",
    "RunProgress",
    "StepState",
    "planned_steps",
    "progress_display",
]

ProgressMode = Literal["auto", "live", "plain", "none"]
PROGRESS_MODES: tuple[str, ...] = ("auto", "live", "plain", "none")

#: The order of the kinds of step in a run, for showing steps that have not started yet.
_KIND_ORDER = {"ingest": 0, "dbt": 1, "scoring": 2, "check": 3, "publish": 4}
#: Step keys are aligned up to this width; a longer one (a check's) pushes its line along.
_MAX_ALIGNED_KEY_CHARS = 36
#: A reason is one line of a log; the failure report after the run prints it whole.
_MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class PlannedStep:
    """A step of the job as planned: what it is, and how many assets and checks it reports."""

    key: str
    #: ingest, dbt, scoring, check or publish.
    kind: str
    #: What the step does, in the user's words (``ingest crm/accounts``, ``dbt build``).
    label: str
    assets: int = 0
    checks: int = 0


@dataclass
class StepState:
    """Where a step is: status, times from its Dagster events, what it has reported so far."""

    planned: PlannedStep
    #: waiting, running, succeeded, failed, retrying, skipped.
    status: str = "waiting"
    started_at: float | None = None
    ended_at: float | None = None
    tries: int = 0
    reason: str = ""
    assets_done: set[str] = field(default_factory=set)
    checks_done: set[str] = field(default_factory=set)
    checks_failed: set[str] = field(default_factory=set)
    #: Checks of severity WARN that did not pass: reported, they stop nothing.
    checks_warned: set[str] = field(default_factory=set)

    def elapsed(self, now: float) -> float | None:
        """Seconds since the step started, until it ended; None before it starts."""
        if self.started_at is None:
            return None
        return (self.ended_at if self.ended_at is not None else now) - self.started_at

    def counts(self) -> str:
        """What the step has done so far, when it reports several things (dbt's models)."""
        planned = self.planned
        parts = []
        if planned.kind == "dbt":
            if planned.assets:
                parts.append(f"{len(self.assets_done)}/{planned.assets} models")
            if planned.checks:
                parts.append(f"{len(self.checks_done)}/{planned.checks} tests")
        elif planned.checks > 1 and self.checks_done:
            parts.append(f"{len(self.checks_done)}/{planned.checks} checks")
        if self.checks_failed:
            parts.append(f"{len(self.checks_failed)} check(s) failed")
        if self.checks_warned:
            parts.append(f"{len(self.checks_warned)} check(s) warned")
        return ", ".join(parts)


def planned_steps(job: dg.JobDefinition) -> list[PlannedStep]:
    """The steps an asset job runs, each with its kind, label and number of assets and checks.

    Read from the job's asset layer, so the dbt step's totals are the dbt models and tests
    selected, and a check-only step (an asset check) is told apart from an asset's step.
    """
    from dagster._core.definitions.dependency import NodeHandle

    steps = []
    for node in job.graph.nodes:
        entity_keys = job.asset_layer.get_selected_entity_keys_for_node(NodeHandle(node.name, None))
        asset_keys = [key for key in entity_keys if isinstance(key, dg.AssetKey)]
        check_count = len(entity_keys) - len(asset_keys)
        assets_def = job.asset_layer.get_assets_def_for_node(NodeHandle(node.name, None))
        kinds = {kind for spec in assets_def.specs for kind in spec.kinds} if assets_def else set()
        kind, label = _kind_and_label(node.name, asset_keys, kinds)
        steps.append(PlannedStep(node.name, kind, label, len(asset_keys), check_count))
    return sorted(steps, key=lambda step: (_KIND_ORDER[step.kind], step.key))


def _kind_and_label(
    step_key: str, asset_keys: list[dg.AssetKey], kinds: set[str]
) -> tuple[str, str]:
    if not asset_keys:
        return "check", step_key
    if "dbt" in kinds:
        return "dbt", "dbt build"
    layer = asset_keys[0].path[0]
    if layer == "raw":
        # raw/crm__accounts is the landing entity crm/accounts.
        return "ingest", "ingest " + asset_keys[0].path[-1].replace("__", "/")
    if layer == "published":
        return "publish", "publish " + ", ".join(key.path[-1] for key in asset_keys)
    return "scoring", "score " + ", ".join(key.path[-1] for key in asset_keys)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_REASON_CHARS:
        return text[: _MAX_REASON_CHARS - 3] + "..."
    return text


def _failure_message(error) -> str:
    """Why a step failed: a raised ``dg.Failure`` says it; an unexpected error is wrapped by
    Dagster ("Error occurred while executing op ...") around the error that says it."""
    if error is None:
        return ""
    while error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        error = error.cause
    return error.message.strip()


class RunProgress:
    """The steps of one run and where each one is, fed by the run's Dagster events.

    Attach it to a run with :meth:`attach` before the run starts. Subclasses show it: they
    override :meth:`step_changed` and :meth:`run_changed`, called after each change.
    """

    def __init__(self) -> None:
        self.steps: dict[str, StepState] = {}
        self.run_id: str | None = None
        self.run_status = "waiting"
        self.run_started_at: float | None = None
        self.run_ended_at: float | None = None
        #: The error that stopped the display, if one did.
        self.stopped_by: Exception | None = None
        # The live display renders from its own refresh thread while events arrive.
        self._lock = threading.RLock()

    def attach(self, instance: dg.DagsterInstance, run_id: str, job: dg.JobDefinition) -> None:
        """Follow the run ``run_id`` of ``job`` on ``instance`` from its first event."""
        self.run_id = run_id
        with self._lock:
            for step in planned_steps(job):
                self.steps.setdefault(step.key, StepState(step))
        instance.add_event_listener(run_id, self.handle)

    def handle(self, entry: dg.EventLogEntry) -> None:
        """Take one event of the run (the listener Dagster calls).

        Never raises: the listener runs inside Dagster's event handling, where an error would
        fail the step. A display that breaks (stdout closed, a bug) stops, and says so once on
        stderr; the run goes on as it would without it.
        """
        if self.stopped_by is not None:
            return
        try:
            self._handle(entry)
        except Exception as error:  # any error: see the docstring
            self.stopped_by = error
            sys.__stderr__.write(f"progress display stopped: {error!r}\n")

    def _handle(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            return
        at = entry.timestamp
        event_type = event.event_type
        with self._lock:
            if event.is_job_event:
                self._run_event(event_type, at)
                return
            if event.step_key is None:
                return
            step = self.steps.get(event.step_key)
            if step is None:
                # A step the plan did not list (a dynamic step): show it as it comes.
                step = StepState(PlannedStep(event.step_key, "check", event.step_key))
                self.steps[event.step_key] = step
            change = self._step_event(step, event, at)
        if change is not None:
            self.step_changed(step, change, at)

    def _run_event(self, event_type: dg.DagsterEventType, at: float) -> None:
        if event_type == dg.DagsterEventType.RUN_START:
            self.run_status, self.run_started_at = "running", at
        elif event_type in (
            dg.DagsterEventType.RUN_SUCCESS,
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.RUN_CANCELED,
        ):
            self.run_status = {
                dg.DagsterEventType.RUN_SUCCESS: "succeeded",
                dg.DagsterEventType.RUN_FAILURE: "failed",
                dg.DagsterEventType.RUN_CANCELED: "canceled",
            }[event_type]
            self.run_ended_at = at
            if self.run_started_at is None:
                self.run_started_at = at
        else:
            return
        self.run_changed(at)

    def _step_event(self, step: StepState, event: dg.DagsterEvent, at: float) -> str | None:
        """Apply a step event; the change to show (started, succeeded, ...) or None."""
        event_type = event.event_type
        if event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED):
            step.status, step.started_at, step.ended_at = "running", at, None
            step.tries += 1
            return "restarted" if step.tries > 1 else "started"
        if event_type == dg.DagsterEventType.STEP_SUCCESS:
            step.status, step.ended_at = "succeeded", at
            return "succeeded"
        if event_type == dg.DagsterEventType.STEP_FAILURE:
            message = _failure_message(event.step_failure_data.error)
            if step.status == "retrying" or step.tries > 1:
                # "Exceeded max_retries" says nothing of the cause: the last try's error does.
                message = f"{message}; last error: {step.reason}"
            step.status, step.ended_at, step.reason = "failed", at, _one_line(message)
            return "failed"
        if event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY:
            step.status, step.ended_at = "retrying", at
            step.reason = _one_line(retry_cause(event.step_retry_data.error))
            return "up for retry"
        if event_type == dg.DagsterEventType.STEP_SKIPPED:
            step.status = "skipped"
            step.started_at = step.ended_at = at
            return "skipped"
        if event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            step.assets_done.add(event.asset_key.to_user_string())
        elif event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            step.checks_done.add(name)
            if not evaluation.passed:
                warned = evaluation.severity == dg.AssetCheckSeverity.WARN
                (step.checks_warned if warned else step.checks_failed).add(name)
        return None

    def counts_by_status(self) -> dict[str, int]:
        """How many steps are in each status; steps that never started count as not run."""
        counts: dict[str, int] = {}
        with self._lock:
            for step in self.steps.values():
                status = step.status
                if status == "waiting" and self.run_ended_at is not None:
                    status = "not run"
                counts[status] = counts.get(status, 0) + 1
        return counts

    def step_changed(self, step: StepState, change: str, at: float) -> None:
        """Called after a step started, ended, was skipped or is up for retry."""

    def run_changed(self, at: float) -> None:
        """Called after the run started or ended."""


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


class PlainProgress(RunProgress):
    """One plain line per step event, written and flushed as it happens.

    For logs, cron and CI: no carriage returns, no colours, one event per line, e.g.
    ``12:01:05  raw__crm__accounts  succeeded in 2.1 s``.
    """

    def __init__(self, file: IO[str]) -> None:
        super().__init__()
        self._file = file
        self._key_width = 0

    def attach(self, instance: dg.DagsterInstance, run_id: str, job: dg.JobDefinition) -> None:
        """Follow the run, aligning the step column on the longest step key."""
        super().attach(instance, run_id, job)
        widest = max((len(key) for key in self.steps), default=0)
        self._key_width = min(widest, _MAX_ALIGNED_KEY_CHARS)

    def _write(self, at: float, what: str, text: str) -> None:
        self._file.write(f"{_clock(at)}  {what:<{self._key_width}}  {text}\n")
        self._file.flush()

    def step_changed(self, step: StepState, change: str, at: float) -> None:
        """Write the step's line: started, succeeded in, failed after, up for retry, skipped."""
        elapsed = _seconds(step.elapsed(at))
        counts = step.counts()
        detail = f" ({counts})" if counts else ""
        if change in ("started", "restarted"):
            text = change if change == "started" else f"restarted (try {step.tries})"
        elif change == "succeeded":
            text = f"succeeded in {elapsed}{detail}"
        elif change == "failed":
            text = f"failed after {elapsed}{detail}: {step.reason}"
        elif change == "up for retry":
            text = f"up for retry after {elapsed}: {step.reason}"
        else:
            text = change
        self._write(at, step.planned.key, text)

    def run_changed(self, at: float) -> None:
        """Write the run's first line, and its total at the end."""
        if self.run_status == "running":
            run = (self.run_id or "")[:8]
            self._write(at, "run", f"started: run {run}, {len(self.steps)} steps")
            return
        counts = ", ".join(f"{count} {status}" for status, count in self.counts_by_status().items())
        total = _seconds(at - (self.run_started_at or at))
        self._write(at, "run", f"{self.run_status} in {total} ({counts})")


_STATUS_STYLE = {
    "waiting": "dim",
    "running": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "retrying": "magenta",
    "skipped": "dim",
    "not run": "dim",
}


class LiveProgress(RunProgress):
    """A rich table of the steps, with status and elapsed time, refreshed in place.

    Checks that are steps of their own are one row (how many have run, which failed), so the
    table fits a terminal; every other step has its row, the dbt build with its models and
    tests done. Use it as a context manager around the run.
    """

    def __init__(self, console: Console, refresh_per_second: float = 4) -> None:
        super().__init__()
        self.console = console
        # The run's stdout is redirected (dbt's log is kept for the failure report): the
        # display writes to the console's own file and leaves sys.stdout alone.
        self._live = Live(
            self,
            console=console,
            refresh_per_second=refresh_per_second,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def step_changed(self, step: StepState, change: str, at: float) -> None:
        """Redraw now rather than at the next tick, so short steps are seen to end."""
        self._live.refresh()

    def run_changed(self, at: float) -> None:
        """Redraw with the run's total."""
        self._live.refresh()

    def _status_cell(self, status: str) -> Spinner | Text:
        if status == "running":
            return Spinner("dots", text=Text("running", style="yellow"), style="yellow")
        return Text(status, style=_STATUS_STYLE.get(status, ""))

    def __rich__(self) -> Group | Text:
        now = time.time()
        with self._lock:
            if not self.steps:
                # Not attached: the run did not start (a bad date, no landing zone).
                return Text("")
            ended = self.run_ended_at is not None
            table = Table("step", "status", "time", "progress", box=None, pad_edge=False)
            checks = [step for step in self.steps.values() if step.planned.kind == "check"]
            for step in self.steps.values():
                if step.planned.kind == "check" and step.status != "failed":
                    continue
                status = "not run" if ended and step.status == "waiting" else step.status
                detail = self._detail(step)
                table.add_row(
                    step.planned.label,
                    self._status_cell(status),
                    _seconds(step.elapsed(now)),
                    Text(detail, overflow="fold"),
                )
            if checks:
                table.add_row(*self._checks_row(checks, ended, now))
            total = (
                _seconds((self.run_ended_at or now) - self.run_started_at)
                if (self.run_started_at is not None)
                else ""
            )
            footer = Text(f"run {(self.run_id or '')[:8]}  {self.run_status}  {total}")
        return Group(table, footer)

    @staticmethod
    def _detail(step: StepState) -> str:
        reason = step.reason
        if reason and step.status in ("running", "succeeded"):
            # The reason of an earlier try: the step is on (or passed) a later one.
            reason = f"try {step.tries}, retried after: {reason}"
        return "; ".join(part for part in (step.counts(), reason) if part)

    def _checks_row(
        self, checks: list[StepState], ended: bool, now: float
    ) -> tuple[str, Spinner | Text, str, str]:
        done = [step for step in checks if step.status in ("succeeded", "failed", "skipped")]
        running = [step for step in checks if step.status == "running"]
        if running:
            status = "running"
        elif len(done) == len(checks):
            status = "succeeded"
        else:
            status = "not run" if ended else "waiting"
        failed = sum(step.status == "failed" for step in checks)
        warned = sum(len(step.checks_warned) for step in checks)
        detail = f"{len(done)}/{len(checks)} done"
        detail += (f", {failed} failed" if failed else "") + (
            f", {warned} warned" if warned else ""
        )
        elapsed = sum(step.elapsed(now) or 0.0 for step in checks)
        return (
            f"checks ({len(checks)} step{'' if len(checks) == 1 else 's'})",
            self._status_cell(status),
            _seconds(elapsed) if done or running else "",
            detail,
        )


@contextmanager
def progress_display(
    mode: ProgressMode, file: IO[str] | None = None
) -> Iterator[RunProgress | None]:
    """The progress display for ``mode``, open for the length of the ``with`` block.

    ``auto`` is ``live`` when ``file`` (default: the current stdout) is a terminal, else
    ``plain``; ``none`` yields None (no progress). Take ``file`` before anything redirects
    stdout: the run redirects it to keep dbt's log.
    """
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)}, not {mode!r}")
    file = file or sys.stdout
    if mode == "none":
        yield None
        return
    console = Console(file=file)
    if mode == "live" or (mode == "auto" and console.is_terminal and not console.is_dumb_terminal):
        with LiveProgress(console) as live:
            yield live
        return
    yield PlainProgress(file)
