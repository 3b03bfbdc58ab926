"""The ICP report (issue 15, part 1): what it says is the data's, computed again here in SQL.

The session's pipeline run wrote a report through the ``published/report`` asset; the other
tests build reports from copies of that run's published file, changed in place to have
several scored dates, no signal or absent sources (real DuckDB files, no mocks).
"""

from __future__ import annotations

import html as html_lib
import math
import re
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import plotly
import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from dagster_project.defs.publish.report import published_report
from dagster_project.defs.resources import WarehouseResource
from dagster_project.publish import DB_FILE, published_dir_for
from dagster_project.report import QUALITY_INDEX, build_report, facts, open_sources, render_report

HISTORY = "marts.account_fit_score_history"


def _text(page: str) -> str:
    """The page's text with tags dropped and entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


@pytest.fixture(scope="module")
def published_db(pipeline_run) -> Path:
    settings, _ = pipeline_run
    return published_dir_for(settings.warehouse_path) / DB_FILE


@pytest.fixture
def editable_copy(published_db, tmp_path):
    """A copy of the run's published file to change; returns (path, open connection, as_of)."""
    copy = tmp_path / "published" / DB_FILE
    copy.parent.mkdir()
    shutil.copyfile(published_db, copy)
    con = duckdb.connect(str(copy))
    as_of = con.execute("SELECT max(as_of_date) FROM marts.account_fit_scores").fetchone()[0]
    yield copy, con, as_of
    con.close()


def _render(db: Path, warehouse: Path | None = None, **kwargs) -> tuple[str, dict]:
    with open_sources(db, warehouse) as sources:
        return render_report(sources, **kwargs)


def test_every_run_writes_the_report_next_to_the_published_copy(pipeline_run):
    settings, summary = pipeline_run
    report_dir = published_dir_for(settings.warehouse_path) / "report"
    index = report_dir / "index.html"
    assert summary.report_path == str(index) and index.is_file()
    page = index.read_text()
    script = report_dir / "assets" / f"plotly-{plotly.__version__}.min.js"
    assert script.is_file() and script.stat().st_size > 1_000_000
    assert f'<script src="assets/{script.name}"></script>' in page
    # Offline: nothing is loaded from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # Every check of the run is listed: none runs after the report.
    total = summary.checks_passed + len(summary.checks_failed) + len(summary.checks_warned)
    assert f"{summary.checks_passed} of {total} asset checks of this run passed" in _text(page)
    assert "published/marts" in page and "no_contact_pii_published" in page
    assert not list(report_dir.glob(".tmp-report-*"))


def test_the_narrative_numbers_are_the_data(published_db, pipeline_run):
    settings, _ = pipeline_run
    page, context = _render(published_db, settings.warehouse_path)
    text = _text(page)
    with duckdb.connect(str(published_db), read_only=True) as con:
        accounts, icp, high = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE fit_tier = 'high' AND NOT is_anti_icp), "
            "count(*) FILTER (WHERE fit_tier = 'high') FROM marts.account_fit_scores"
        ).fetchone()
        win_rate = dict(
            con.execute(
                "SELECT s.fit_tier, sum(m.opportunities_won) / sum(m.opportunities_won "
                "+ m.opportunities_lost) FROM marts.account_fit_scores s "
                "JOIN marts.fct_account_metrics m USING (account_id, as_of_date) GROUP BY 1"
            ).fetchall()
        )
        top = con.execute(
            "SELECT attribute, value, share_best, share_all, lift, share_best_ci_low / share_all, "
            "share_best_ci_high / share_all, points FROM marts.icp_profile "
            "WHERE as_of_date = (SELECT max(as_of_date) FROM marts.account_fit_scores) "
            "AND is_scored AND share_best_ci_low > share_all AND points > 0 "
            "AND NOT is_low_sample ORDER BY points DESC LIMIT 1"
        ).fetchone()
        reason, flagged = con.execute(
            "SELECT r, count(*) FROM (SELECT unnest(anti_icp_reasons) AS r "
            "FROM marts.account_fit_scores) GROUP BY r ORDER BY 2 DESC, r LIMIT 1"
        ).fetchone()
        by_tier = dict(
            con.execute(
                "SELECT fit_tier, count(*) FROM marts.account_fit_scores GROUP BY 1"
            ).fetchall()
        )
    assert (
        f"covers {icp:,} of {accounts:,} accounts ({icp / accounts * 100:.1f}%); "
        f"the high tier holds {high:,}"
    ) in text
    assert (
        f"win rate {_percent(win_rate['high'])} for high-tier accounts vs "
        f"{_percent(win_rate['low'])} for low"
    ) in text
    attribute, value, share_best, share_all, lift, lift_low, lift_high, points = top
    assert (
        f"{attribute} = {value}: {_percent(share_best)} of best customers vs "
        f"{_percent(share_all)} of all accounts, lift {lift:.2f} (95% interval "
        f"{lift_low:.2f}-{lift_high:.2f}), {float(points):+.1f} points"
    ) in text
    assert f"{reason.replace('_', ' ')}: {flagged:,} accounts" in text
    # The score distribution is the SQL histogram: every account once, per tier.
    assert context["evidence"].status == "validated"
    with open_sources(published_db) as sources:
        histogram = facts.score_histogram(sources, context["as_of"])
    counted: dict[str, int] = {}
    for score_bin in histogram:
        counted[score_bin.tier] = counted.get(score_bin.tier, 0) + score_bin.accounts
    assert counted == by_tier
    assert context["charts"]["scores"] is not None


def test_with_one_scored_date_the_retro_says_there_is_no_earlier_run(published_db):
    page, context = _render(published_db)
    assert context["dates"] == [context["as_of"]] and context["retros"] == []
    assert f"No earlier run: {context['as_of']} is the only scored date" in _text(page)
    assert "chart-retro" not in page


def _add_scored_date(con, as_of, earlier, score_shift: float = 0.0) -> None:
    """Copy the scores, profile and validation of ``as_of`` to ``earlier``."""
    con.execute(
        f"INSERT INTO {HISTORY} SELECT * REPLACE ($earlier AS as_of_date, "
        "greatest(fit_score - $shift, 0)::DECIMAL(7,2) AS fit_score) "
        f"FROM {HISTORY} WHERE as_of_date = $as_of",
        {"earlier": earlier, "as_of": as_of, "shift": score_shift},
    )
    for table in ("marts.icp_profile", "marts.icp_validation"):
        con.execute(
            f"INSERT INTO {table} SELECT * REPLACE ($earlier AS as_of_date) FROM {table} "
            "WHERE as_of_date = $as_of",
            {"earlier": earlier, "as_of": as_of},
        )


def _psi(con, earlier, later) -> float:
    """PSI computed in Python from per-bucket counts (ten 10-point buckets, floor 1e-4)."""
    counts = {
        (day, bucket): n
        for day, bucket, n in con.execute(
            f"SELECT as_of_date, least(floor(fit_score / 10), 9)::INT, count(*) FROM {HISTORY} "
            "WHERE as_of_date IN ($a, $b) GROUP BY ALL",
            {"a": earlier, "b": later},
        ).fetchall()
    }
    totals = {day: sum(n for (d, _), n in counts.items() if d == day) for day in (earlier, later)}
    psi = 0.0
    for bucket in range(10):
        before = max(counts.get((earlier, bucket), 0) / totals[earlier], 1e-4)
        now = max(counts.get((later, bucket), 0) / totals[later], 1e-4)
        if counts.get((earlier, bucket)) or counts.get((later, bucket)):
            psi += (now - before) * math.log(now / before)
    return psi


def test_the_retro_compares_the_previous_run_and_about_90_days_earlier(editable_copy):
    db, con, as_of = editable_copy
    previous, quarter_ago, older = (as_of - timedelta(days=d) for d in (1, 91, 200))
    for day, shift in ((previous, 0.0), (quarter_ago, 12.0), (older, 30.0)):
        _add_scored_date(con, as_of, day, shift)
    icp_now = "fit_tier = 'high' AND NOT is_anti_icp"
    # Five accounts of today's ICP were low the day before (they entered), three accounts
    # outside it today were in it (they left).
    entered = [r[0] for r in con.execute(
        f"SELECT account_id FROM {HISTORY} WHERE as_of_date = $as_of AND {icp_now} "
        "ORDER BY account_id LIMIT 5", {"as_of": as_of}).fetchall()]  # fmt: skip
    left = [r[0] for r in con.execute(
        f"SELECT account_id FROM {HISTORY} WHERE as_of_date = $as_of AND fit_tier = 'medium' "
        "AND NOT is_anti_icp ORDER BY account_id LIMIT 3",
        {"as_of": as_of}).fetchall()]  # fmt: skip
    for accounts, tier, score in ((entered, "low", 10), (left, "high", 85)):
        con.execute(
            f"UPDATE {HISTORY} SET fit_tier = $tier, fit_score = $score "
            "WHERE as_of_date = $day AND list_contains($accounts, account_id)",
            {"tier": tier, "score": score, "day": previous, "accounts": accounts},
        )
    # The strongest ICP value of today was not in the ICP the day before.
    strongest = con.execute(
        "SELECT attribute, value FROM marts.icp_profile WHERE as_of_date = $as_of AND is_scored "
        "AND share_best_ci_low > share_all AND points > 0 AND NOT is_low_sample "
        "ORDER BY points DESC LIMIT 1",
        {"as_of": as_of},
    ).fetchone()
    con.execute(
        "UPDATE marts.icp_profile SET share_best_ci_low = share_all * 0.9, points = 0.5 "
        "WHERE as_of_date = $day AND attribute = $attribute AND value = $value",
        {"day": previous, "attribute": strongest[0], "value": strongest[1]},
    )
    psi_previous, psi_quarter = _psi(con, previous, as_of), _psi(con, quarter_ago, as_of)
    con.close()

    page, context = _render(db)
    text = _text(page)
    (first, _), (second, _) = context["retros"]
    assert (first.earlier.as_of_date, second.earlier.as_of_date) == (previous, quarter_ago)
    assert (first.accounts_entered_icp, first.accounts_left_icp) == (5, 3)
    assert (second.accounts_entered_icp, second.accounts_left_icp) == (0, 0) or (
        second.accounts_stayed_icp > 0
    )
    assert first.psi == pytest.approx(psi_previous, abs=1e-12)
    assert second.psi == pytest.approx(psi_quarter, abs=1e-12) and second.psi > 0.1
    assert f"Since {previous}: 5 accounts entered the ICP and 3 left it" in text
    assert f"Entered the ICP profile: {strongest[0]} = {strongest[1]}." in text
    assert f"Score distribution PSI {psi_quarter:.4f}" in text
    assert "chart-retro-tiers" in page and "chart-retro-scores" in page
    # --as-of an earlier date: that date's report, compared with what came before it.
    page, context = _render(db, as_of=previous)
    assert context["as_of"] == previous and not context["is_current"]
    assert [r.earlier.as_of_date for r, _ in context["retros"]] == [quarter_ago]


def test_no_signal_is_said_plainly_and_no_best_customers_are_claimed(editable_copy):
    db, con, as_of = editable_copy
    # What a no-signal run publishes (docs/scoring.md, Fallback): the verdict, no profile,
    # every score insufficient_evidence.
    con.execute(
        "UPDATE marts.icp_validation SET status = 'no_signal', value = 0.512 "
        "WHERE as_of_date = $as_of AND measure = 'out_of_sample_auc'",
        {"as_of": as_of},
    )
    con.execute("DELETE FROM marts.icp_profile WHERE as_of_date = $as_of", {"as_of": as_of})
    for table in (HISTORY, "marts.account_fit_scores"):
        con.execute(f"UPDATE {table} SET fit_confidence = 'insufficient_evidence'")
    accounts = con.execute("SELECT count(*) FROM marts.account_fit_scores").fetchone()[0]
    con.close()

    page, context = _render(db)
    text = _text(page)
    assert context["evidence"].status == "no_signal"
    assert "No signal: out of sample the learned score cannot tell best customers" in text
    assert "AUC 0.512" in text and "not a validated ICP: do not read them as one" in text
    assert f"{accounts:,} accounts carry fit_confidence = insufficient_evidence" in text
    assert "Who the best customers are" not in text
    assert "What the profile would say (not validated: no claim)" in text
    assert "No ICP profile for this date" in text
    assert 'id="chart-lift"' not in page


def test_absent_optional_sources_are_named_and_their_measures_not_invented(editable_copy):
    db, con, as_of = editable_copy
    # As a run on crm/accounts alone publishes them (tests/integration/test_partial_sources).
    con.execute(
        "UPDATE marts.icp_validation SET detail = 'present: crm/accounts; absent (their "
        "measures are NULL): crm/opportunities, billing/subscriptions, support/tickets, "
        "product/usage' WHERE measure = 'sources_present'"
    )
    con.execute(
        "UPDATE marts.fct_account_metrics SET opportunities_won = NULL, opportunities_lost = "
        "NULL, lifecycle_stage = 'prospect', mrr_12_months_ago_usd = NULL, current_mrr_usd = NULL"
    )
    con.execute("DELETE FROM marts.fct_segment_cohorts")
    con.close()

    page, context = _render(db)
    text = _text(page)
    assert context["sources_absent"] == [
        "crm/opportunities", "billing/subscriptions", "support/tickets", "product/usage"
    ]  # fmt: skip
    assert "Absent (their measures are NULL, nothing is invented): crm/opportunities" in text
    assert "win rate: not measured, no closed deals (crm/opportunities)." in text
    assert "customers retained: not measured" in text
    assert "Cohort retention: no customers in fct_segment_cohorts" in text
    assert context["cohort_charts"] == []
    assert "Quarantine not available: only the published file was given" in text


def test_quarantine_by_rule_and_file_comes_from_the_warehouse(pipeline_run, published_db):
    settings, _ = pipeline_run
    page, context = _render(published_db, settings.warehouse_path)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        expected = con.execute(
            "SELECT source_file, rule, count(*) FROM raw.quarantined_rows GROUP BY ALL"
        ).fetchall()
    assert context["quarantine_available"]
    assert sorted((q.source_file, q.rule, q.rows) for q in context["quarantine"]) == sorted(
        expected
    )
    total = sum(n for _, _, n in expected)
    text = _text(page)
    if total:
        assert f"{total:,} rows quarantined" in text
    else:
        assert "No row was quarantined" in text


def test_icp_report_command_writes_the_report_and_keeps_quality(pipeline_run, tmp_path):
    settings, _ = pipeline_run
    out = tmp_path / "report"
    quality = out / QUALITY_INDEX
    quality.parent.mkdir(parents=True)
    quality.write_text("<html>data docs</html>")
    result = CliRunner().invoke(
        app, ["report", "--warehouse", str(settings.warehouse_path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert '<a id="quality-link" href="quality/index.html">' in page
    assert quality.read_text() == "<html>data docs</html>"
    assert "Asset check results are recorded by the Dagster run" in _text(page)
    assert not list(out.glob(".tmp-report-*"))
    shutil.rmtree(quality.parent)
    build_report(published_dir_for(settings.warehouse_path) / DB_FILE, out)
    assert "Great Expectations Data Docs: not written" in _text((out / "index.html").read_text())

    unknown = CliRunner().invoke(
        app,
        ["report", "--warehouse", str(settings.warehouse_path), "--out", str(out),
         "--as-of", "1999-01-01"],
    )  # fmt: skip
    assert unknown.exit_code == 2 and "no scores as of 1999-01-01" in unknown.output


def test_a_report_that_cannot_be_built_fails_its_asset_with_the_reason(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [published_report],
        resources={"warehouse": WarehouseResource(path=str(warehouse))},
        partition_key="2026-11-20",
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "ICP report not written: no published marts at" in message
    assert str(tmp_path / "published" / DB_FILE) in message
