"""A company has some sources, never all: each realistic combination runs end to end.

From the generated sample landing zone, each case keeps only some source folders (no
invented placeholder rows) and runs the whole pipeline through Dagster: it must succeed,
score every account, leave the facts of an absent source NULL (not 0) and say in
``icp_validation`` which sources were present and what the labels came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.contracts import load_contracts
from dagster_project.ingest.landing import export_dates
from dagster_project.publish import published_dir_for
from dagster_project.run import run_pipeline
from tests.conftest import settings_for

pytestmark = pytest.mark.slow

#: Entity -> a fact of fct_account_metrics that needs it.
FACT_OF = {
    "crm/opportunities": "opportunities_won",
    "crm/activities": "activities_last_30_days",
    "billing/subscriptions": "current_mrr_usd",
    "billing/invoices": "lifetime_revenue_usd",
    "support/tickets": "tickets_total",
}

CASES = {
    "crm_only": (["crm/accounts", "crm/opportunities"], "deal outcomes"),
    "accounts_and_billing": (
        ["crm/accounts", "billing/subscriptions", "billing/invoices"],
        "customer value",
    ),
    "product_led_no_sales_pipeline": (
        ["crm/accounts", "billing/subscriptions", "billing/invoices", "support/tickets"],
        "customer value",
    ),
}


def _keep_only(sample_landing: Path, target: Path, entities: list[str]) -> Path:
    for export in export_dates(sample_landing):
        for entity in entities:
            source, name = entity.split("/")
            for path in (sample_landing / export.isoformat() / source).glob(f"{name}.*"):
                destination = target / export.isoformat() / source / path.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
    shutil.copy2(sample_landing / "fx_rates.csv", target / "fx_rates.csv")
    return target


def _run(landing: Path, warehouse: Path):
    summary = run_pipeline(settings_for(landing, warehouse))
    assert summary.success, (summary.failures, summary.check_failure_details)
    return summary


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_subset_of_sources_runs_end_to_end_and_scores_every_account(
    sample_landing, tmp_path, case
):
    entities, basis = CASES[case]
    landing = _keep_only(sample_landing, tmp_path / "landing", entities)
    warehouse = tmp_path / "warehouse.duckdb"
    summary = _run(landing, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        accounts = con.execute("SELECT count(*) FROM marts.dim_accounts").fetchone()[0]
        assert summary.accounts_scored == accounts > 0
        for entity, fact in FACT_OF.items():
            known = con.execute(
                f"SELECT count({fact}) FROM marts.fct_account_metrics "
                "WHERE as_of_date = (SELECT max(as_of_date) FROM marts.fct_account_metrics)"
            ).fetchone()[0]
            assert (known == accounts) if entity in entities else (known == 0), (entity, fact)
        for contract in load_contracts().values():
            if contract.name not in entities and not contract.is_reference:
                rows = con.execute(f"SELECT count(*) FROM raw.{contract.raw_table}").fetchone()[0]
                assert rows == 0, contract.name  # nothing invented
        sources, labels = (
            con.execute(
                "SELECT detail FROM marts.icp_validation WHERE measure = $measure",
                {"measure": measure},
            ).fetchone()[0]
            for measure in ("sources_present", "outcome_labels")
        )
    absent = [e for e in FACT_OF if e not in entities]
    assert sources.endswith("absent (their measures are NULL): " + ", ".join(
        sorted(absent, key=list(FACT_OF).index) + ["billing/churn_events", "product/usage",
                                                   "feedback/nps_responses"]
    )), sources  # fmt: skip
    assert basis in labels
    assert summary.sources == sources
    # The run's ICP report renders and names every absent source.
    page = (published_dir_for(warehouse) / "report" / "index.html").read_text()
    for entity in absent:
        assert f'<li class="missing">{entity}</li>' in page, entity


def test_header_only_files_of_every_optional_entity_pass(sample_landing, tmp_path):
    """Accounts, and for every other entity a file with its header and no rows."""
    landing = _keep_only(sample_landing, tmp_path / "landing", ["crm/accounts"])
    newest = export_dates(landing)[-1].isoformat()
    for contract in load_contracts().values():
        if contract.is_reference or contract.name == "crm/accounts":
            continue
        path = landing / newest / contract.source / f"{contract.entity}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(",".join(contract.column_names) + "\n", encoding="utf-8")
    warehouse = tmp_path / "warehouse.duckdb"
    summary = _run(landing, warehouse)
    assert summary.checks_failed == []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        accounts = con.execute("SELECT count(*) FROM marts.dim_accounts").fetchone()[0]
        validation = dict(
            con.execute("SELECT measure, status FROM marts.icp_validation").fetchall()
        )
    assert summary.accounts_scored == accounts > 0
    # Accounts alone hold no outcome: the hand-set rules score them, and say why.
    assert validation["outcome_labels"] == "skipped"
    assert validation["learned_model"] == "warn"
