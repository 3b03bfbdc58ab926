"""The whole graph materialized through Dagster on generated data: the published contract."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import date

import duckdb
import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from dagster_project.defs import build_definitions
from dagster_project.defs.jobs import FULL_RUN_JOB
from dagster_project.progress import planned_steps
from dagster_project.run import run_pipeline
from tests.conftest import settings_for

SCORE_COLUMNS = {
    "account_id": "VARCHAR",
    "as_of_date": "DATE",
    "fit_score": "DECIMAL(7,2)",
    "fit_probability": "DOUBLE",
    "fit_confidence": "VARCHAR",
    "fit_tier": "VARCHAR",
    "is_anti_icp": "BOOLEAN",
    "anti_icp_reasons": "VARCHAR[]",
    "top_factors": "STRUCT(factor VARCHAR, points DECIMAL(7,2))[]",
    "icp_segment": "VARCHAR",
    "route": "VARCHAR",
    "score_version": "VARCHAR",
    "scored_at": "TIMESTAMP",
    "factor_points": "STRUCT(factor VARCHAR, points DECIMAL(7,2))[]",
}


def _read(settings, sql, params=None):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def test_whole_graph_materializes_with_every_check_passing(pipeline_run):
    from dagster_project.defs import build_definitions

    settings, summary = pipeline_run
    assert summary.success, summary.failures
    assert summary.checks_failed == []
    defs = build_definitions(settings)
    asset_graph = defs.resolve_asset_graph()
    materializable = {key.to_user_string() for key in asset_graph.materializable_asset_keys}
    assert {
        "raw/crm__accounts",
        "staging/stg_crm__accounts",
        "marts/dim_accounts",
        "marts/fct_account_metrics",
        "marts/account_fit_scores",
    } <= materializable
    check_names = {key.name for key in asset_graph.asset_check_keys}
    assert "test_int_account_mrr_monthly_classifies_movements" in check_names, (
        "dbt unit tests are asset checks"
    )
    checks_run = summary.checks_passed + len(summary.checks_warned)
    assert checks_run >= len(list(asset_graph.asset_check_keys))
    assert summary.accounts_scored > 0
    assert summary.rows_quarantined == 0, "the generator writes valid data"


def test_a_successful_run_leaves_no_dbt_target_folders(pipeline_run):
    """Each dbt invocation writes ~4 MB under dbt/target; nightly runs must not pile them up."""
    from dagster_project.defs.transform.dbt import DBT_TARGET_ROOT

    _, summary = pipeline_run
    assert summary.success
    left = [p.name for p in DBT_TARGET_ROOT.glob(f"*-{summary.run_id[:7]}-*")]
    assert left == []
    assert (DBT_TARGET_ROOT / "manifest.json").exists(), "the project's own manifest stays"


def test_published_scores_satisfy_the_contract(pipeline_run):
    settings, summary = pipeline_run
    columns = dict(
        _read(
            settings,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'account_fit_scores'",
        )
    )
    assert columns == SCORE_COLUMNS
    (accounts,) = _read(settings, "SELECT count(*) FROM marts.dim_accounts")[0]
    stats = _read(
        settings,
        """
        SELECT count(*), count(DISTINCT account_id), min(fit_score), max(fit_score),
               count(DISTINCT as_of_date), count(DISTINCT score_version),
               count(*) FILTER (WHERE is_anti_icp AND route <> 'disqualify'),
               count(*) FILTER (WHERE is_anti_icp <> (len(anti_icp_reasons) > 0))
        FROM marts.account_fit_scores
        """,
    )[0]
    rows, distinct, low, high, dates, versions, anti_not_disqualified, reasons_mismatch = stats
    assert rows == distinct == accounts == summary.accounts_scored
    assert 0 <= low <= high <= 100
    assert dates == versions == 1
    assert anti_not_disqualified == reasons_mismatch == 0
    tiers = dict(
        _read(settings, "SELECT fit_tier, count(*) FROM marts.account_fit_scores GROUP BY 1")
    )
    assert set(tiers) <= {"high", "medium", "low"} and len(tiers) >= 2
    routes = {r for (r,) in _read(settings, "SELECT DISTINCT route FROM marts.account_fit_scores")}
    assert routes <= {"senior_ae", "ae", "sdr_nurture", "disqualify"}
    history = _read(
        settings, "SELECT count(*), count(DISTINCT account_id) FROM marts.account_fit_score_history"
    )[0]
    assert history == (accounts, accounts)


def test_no_contact_pii_in_published_marts(pipeline_run):
    settings, _ = pipeline_run
    columns = {
        c
        for (c,) in _read(
            settings,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts'",
        )
    }
    assert not {
        c
        for c in columns
        if any(p in c for p in ("email", "phone", "first_name", "last_name", "contact"))
    }


def test_explain_lists_factors_that_add_up_to_the_score(pipeline_run):
    settings, _ = pipeline_run
    account_id, fit_score = _read(
        settings,
        "SELECT account_id, fit_score FROM marts.account_fit_scores "
        "WHERE len(factor_points) >= 2 ORDER BY fit_score DESC, account_id LIMIT 1",
    )[0]
    result = CliRunner().invoke(
        app, ["explain", account_id, "--warehouse", str(settings.warehouse_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"fit score {fit_score}" in result.output
    # The sample's learned score is validated: its confidence and probability are shown.
    assert "confidence: validated, probability of becoming a best customer" in result.output
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    listed = sum(float(points) for factor, points, _ in rows if factor not in ("factor", "total"))
    assert {evidence for _, _, evidence in rows} <= {"evidence", "low sample", ""}
    assert listed == pytest.approx(float(fit_score))
    assert re.search(rf"total\s*│\s*{re.escape(str(fit_score))}", result.output)


@pytest.fixture(scope="module")
def cli_run_again(pipeline_run, tmp_path_factory):
    """``icp run`` on the session's landing zone again, into a new warehouse, through the CLI
    as cron runs it: stdout is not a terminal (CliRunner's), so progress is one line per step."""
    settings, _ = pipeline_run
    root = tmp_path_factory.mktemp("cli_run_again")
    again = settings_for(settings.landing_dir, root / "again.duckdb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        env.delenv("ICP_PROGRESS", raising=False)
        result = CliRunner().invoke(
            app,
            ["run", "--landing", str(again.landing_dir), "--warehouse", str(again.warehouse_path)],
        )
    assert result.exit_code == 0, result.output
    return again, result.output


def test_same_input_twice_gives_the_same_scores(pipeline_run, cli_run_again):
    settings, _ = pipeline_run
    again, _ = cli_run_again
    query = "SELECT * EXCLUDE (scored_at) FROM marts.account_fit_scores ORDER BY account_id"
    assert _read(settings, query) == _read(again, query)


PROGRESS_LINE = re.compile(r"^(\d\d:\d\d:\d\d)  (\S+) +(.*)$")


def test_icp_run_in_a_log_shows_every_step_started_then_succeeded(cli_run_again):
    again, output = cli_run_again
    job = build_definitions(again).resolve_job_def(FULL_RUN_JOB)
    step_keys = {step.key for step in planned_steps(job)}
    assert "\r" not in output and "\x1b" not in output, "a log gets no control characters"
    events: dict[str, list[str]] = {}
    order = []
    for line in output.splitlines():
        match = PROGRESS_LINE.match(line)
        if match and (match[2] in step_keys or match[2] == "run"):
            events.setdefault(match[2], []).append(match[3])
            order.append(match[2])
    assert set(events) == step_keys | {"run"}
    for key in step_keys:
        started, succeeded = events[key]
        assert started == "started", key
        seconds = re.match(r"succeeded in (\d+\.\d) s", succeeded)
        assert seconds, (key, succeeded)
        assert 0 <= float(seconds[1]) < 3600
    # dbt's step counts its models and tests.
    assert re.search(r"\((\d+)/\1 models, (\d+)/\2 tests\)", events["dbt_models"][1])
    assert order[0] == order[-1] == "run"
    assert re.fullmatch(
        rf"succeeded in \d+\.\d s \({len(step_keys)} succeeded\)", events["run"][-1]
    )
    # Ingest before dbt before scoring before publish, as the steps ran.
    assert order.index("raw__crm__accounts") < order.index("dbt_models")
    assert order.index("dbt_models") < order.index("account_fit_scores")
    assert order.index("account_fit_scores") < order.index("published__marts")
    # The summary table comes after, as before.
    assert output.index("icp-pipeline run") > output.rindex("  run  ")


def test_missing_required_column_fails_the_run_naming_file_and_column(sample_landing, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing)
    newest = sorted(p.name for p in landing.iterdir() if p.name[:1].isdigit())[-1]
    tickets = landing / newest / "support" / "tickets.csv"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT * EXCLUDE (created_at) FROM read_csv(?, all_varchar = true)) "
            "TO ? (HEADER, DELIMITER ',')",
            [str(tickets), str(tmp_path / "tickets.csv")],
        )
    shutil.move(tmp_path / "tickets.csv", tickets)
    summary = run_pipeline(settings_for(landing, tmp_path / "warehouse.duckdb"))
    assert not summary.success
    failure = "\n".join(summary.failures)
    assert f"{newest}/support/tickets.csv" in failure and "created_at" in failure
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        tables = {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
            ).fetchall()
        }
    assert "account_fit_scores" not in tables, "scoring must not run on a failed ingest"


def test_bad_rows_are_quarantined_and_the_run_still_publishes(sample_landing, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing)
    newest = sorted(p.name for p in landing.iterdir() if p.name[:1].isdigit())[-1]
    with (landing / newest / "support" / "tickets.csv").open("a", encoding="utf-8") as handle:
        handle.write("T-BAD-1" + ",ACC-NOPE" + ",2026-11-20" + "," * 6 + "\n")
    settings = settings_for(landing, tmp_path / "warehouse.duckdb")
    summary = run_pipeline(settings)
    assert summary.success, summary.failures
    assert summary.rows_quarantined == 1
    rows = _read(settings, "SELECT source_file, rule FROM raw.quarantined_rows")
    assert rows == [(f"{newest}/support/tickets.csv", "orphan_foreign_key")]
    assert date.fromisoformat(summary.as_of_date) == date.fromisoformat(newest)


def test_as_of_an_earlier_export_scores_that_date_only(pipeline_run, tmp_path):
    settings, _ = pipeline_run
    exports = sorted(p.name for p in settings.landing_dir.iterdir() if p.name[:1].isdigit())
    earlier = date.fromisoformat(exports[0])
    past = replace(settings_for(settings.landing_dir, tmp_path / "past.duckdb"), as_of_date=earlier)
    summary = run_pipeline(past)
    assert summary.success, summary.failures
    assert _read(past, "SELECT DISTINCT as_of_date FROM marts.account_fit_scores") == [(earlier,)]
    newest_export_rows = _read(
        past, "SELECT count(*) FROM raw.crm__accounts WHERE _export_date > ?", [earlier]
    )
    assert newest_export_rows == [(0,)]
    (accounts_then,) = _read(past, "SELECT count(*) FROM marts.dim_accounts")[0]
    (accounts_now,) = _read(settings, "SELECT count(*) FROM marts.dim_accounts")[0]
    assert accounts_then != accounts_now, "later exports add or delete accounts"


def test_generate_command_writes_a_landing_zone(tmp_path):
    result = CliRunner().invoke(
        app, ["generate", "--out", str(tmp_path / "landing"), "--accounts", "60", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "landing" / "2026-11-20" / "crm" / "accounts.csv").exists()
    assert "crm/accounts.csv" in result.output
