"""Run progress fed by the real Dagster events of a small in-process job (no pipeline run)."""

from __future__ import annotations

import io
import re
import uuid

import dagster as dg
import pytest
from rich.console import Console

from dagster_project.progress import (
    LiveProgress,
    PlainProgress,
    planned_steps,
    progress_display,
)

LINE = re.compile(r"^(\d\d:\d\d:\d\d)  (\S+) +(.*)$")

_tries: dict[str, int] = {}


@dg.asset(key=["raw", "crm__accounts"], kinds={"duckdb"})
def accounts() -> int:
    return 3


@dg.asset_check(asset=accounts, blocking=False)
def accounts_are_fresh() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset(
    key=["marts", "scores"],
    deps=[accounts],
    retry_policy=dg.RetryPolicy(max_retries=1),
)
def flaky_scores(context) -> int:
    # Fails its first try of each run: the second try succeeds.
    run_tries = _tries.setdefault(context.run.run_id, 0) + 1
    _tries[context.run.run_id] = run_tries
    if run_tries == 1:
        raise OSError("warehouse file is locked by another process")
    return 1


@dg.asset(key=["raw", "crm__opportunities"])
def opportunities() -> int:
    raise ValueError("2026-11-20/crm/opportunities.csv: required column(s) amount missing")


@dg.asset(key=["published", "marts"], deps=[flaky_scores, opportunities])
def published() -> None:
    pass


@dg.asset(key=["raw", "feedback__nps"], output_required=False)
def optional_feedback():
    # An optional output not yielded: the step after it is skipped.
    yield from ()


@dg.asset(key=["marts", "nps_summary"], ins={"feedback": dg.AssetIn(["raw", "feedback__nps"])})
def nps_summary(feedback) -> int:
    return 0


JOB = dg.Definitions(
    assets=[accounts, flaky_scores, opportunities, published, optional_feedback, nps_summary],
    asset_checks=[accounts_are_fresh],
).resolve_implicit_global_asset_job_def()


def _follow(progress) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    progress.attach(instance, run_id, JOB)
    return JOB.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)


@pytest.fixture(scope="module")
def plain_lines() -> list[tuple[str, str]]:
    out = io.StringIO()
    result = _follow(PlainProgress(out))
    assert not result.success
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text, "plain lines carry no control characters"
    lines = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, line
        lines.append((match[2], match[3]))
    return lines


def _events_of(lines, step_key):
    return [text for key, text in lines if key == step_key]


def test_planned_steps_name_kind_and_counts():
    steps = {step.key: step for step in planned_steps(JOB)}
    assert steps["raw__crm__accounts"].kind == "ingest"
    assert steps["raw__crm__accounts"].label == "ingest crm/accounts"
    assert (steps["raw__crm__accounts"].assets, steps["raw__crm__accounts"].checks) == (1, 0)
    check = steps["raw__crm__accounts_accounts_are_fresh"]
    assert (check.kind, check.assets, check.checks) == ("check", 0, 1)
    assert steps["marts__scores"].kind == "scoring"
    assert steps["published__marts"].kind == "publish"
    # Ingest steps first, publish last: the order pending steps are shown in.
    kinds = [step.kind for step in planned_steps(JOB)]
    assert kinds == sorted(kinds, key=["ingest", "dbt", "scoring", "check", "publish"].index)


def test_a_step_that_succeeds_shows_started_then_succeeded_with_seconds(plain_lines):
    started, succeeded = _events_of(plain_lines, "raw__crm__accounts")
    assert started == "started"
    assert re.fullmatch(r"succeeded in \d+\.\d s", succeeded), succeeded
    # A warning check does not fail its step; the line says it warned.
    check = _events_of(plain_lines, "raw__crm__accounts_accounts_are_fresh")
    assert check[0] == "started"
    assert re.fullmatch(r"succeeded in \d+\.\d s \(1 check\(s\) warned\)", check[1]), check


def test_a_failing_step_shows_failed_with_its_reason(plain_lines):
    started, failed = _events_of(plain_lines, "raw__crm__opportunities")
    assert started == "started"
    assert re.fullmatch(r"failed after \d+\.\d s: .*required column\(s\) amount missing", failed)


def test_a_retried_step_shows_the_cause_then_its_second_try(plain_lines):
    started, retry, restarted, succeeded = _events_of(plain_lines, "marts__scores")
    assert (started, restarted) == ("started", "restarted (try 2)")
    assert re.fullmatch(r"up for retry after \d+\.\d s: .*warehouse file is locked.*", retry)
    assert re.fullmatch(r"succeeded in \d+\.\d s", succeeded)


def test_a_skipped_step_and_steps_not_run_are_told(plain_lines):
    assert _events_of(plain_lines, "marts__nps_summary") == ["skipped"]
    assert _events_of(plain_lines, "published__marts") == [], "its upstream failed"
    run_lines = _events_of(plain_lines, "run")
    assert re.fullmatch(r"started: run [0-9a-f]{8}, 7 steps", run_lines[0]), run_lines[0]
    total = re.fullmatch(r"failed in (\d+\.\d) s \((.*)\)", run_lines[-1])
    assert total, run_lines[-1]
    counts = dict(reversed(part.split(" ", 1)) for part in total[2].split(", "))
    assert counts == {"succeeded": "4", "failed": "1", "skipped": "1", "not run": "1"}


def test_each_step_line_comes_in_the_order_of_its_events(plain_lines):
    order = [key for key, _ in plain_lines]
    assert order[0] == order[-1] == "run"
    assert order.index("raw__crm__accounts") < order.index("marts__scores")


def test_the_live_table_renders_every_state_on_a_terminal():
    console = Console(file=io.StringIO(), force_terminal=True, width=200, record=True)
    with LiveProgress(console, refresh_per_second=20) as live:
        _follow(live)
    # The recording holds every refresh; the last one is the table left on the screen.
    last_frame = console.export_text().rsplit("step ", 1)[-1]
    rows = {line.split("  ")[0]: line for line in last_frame.splitlines()[1:]}
    assert re.search(r"succeeded +\d+\.\d s", rows["ingest crm/accounts"])
    assert re.search(
        r"failed +\d+\.\d s +ValueError: .*required column\(s\) amount missing",
        rows["ingest crm/opportunities"],
    )
    assert re.search(r"succeeded .*try 2, retried after: OSError", rows["score scores"])
    assert "skipped" in rows["score nps_summary"]
    assert "not run" in rows["publish marts"]
    assert re.search(r"1/1 done, 1 warned", rows["checks (1 step)"])
    assert re.search(r"run [0-9a-f]{8}  failed  \d+\.\d s", last_frame)


def test_auto_is_plain_when_stdout_is_not_a_terminal():
    with progress_display("auto", io.StringIO()) as display:
        assert isinstance(display, PlainProgress)
    with progress_display("none", io.StringIO()) as display:
        assert display is None
    with pytest.raises(ValueError, match="progress must be one of"):
        with progress_display("loud", io.StringIO()):
            pass


class _ClosedStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("stdout closed")


def test_a_display_that_breaks_stops_and_leaves_the_run_alone():
    progress = PlainProgress(_ClosedStdout())
    result = _follow(progress)
    # The same steps run and end as without a display: only opportunities fails.
    failed = {event.step_key for event in result.all_events if event.is_step_failure}
    assert failed == {"raw__crm__opportunities"}
    assert isinstance(progress.stopped_by, BrokenPipeError)
