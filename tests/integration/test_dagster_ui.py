"""The Dagster web server loads workspace.yaml and shows the whole asset graph with checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dagster_project.settings import PROJECT_ROOT

QUERY = """
{ assetNodes { assetKey { path } groupName hasAssetChecks assetChecksOrError {
    ... on AssetChecks { checks { name blocking } } } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_webserver_shows_ingest_dbt_scoring_assets_and_checks(sample_landing, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "ICP_LANDING": str(sample_landing),
        "ICP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
    }
    Path(tmp_path / "dagster.yaml").touch()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline:
            try:
                nodes = _graphql(port)["data"]["assetNodes"]
                if nodes:
                    break
            except OSError:
                time.sleep(1)
        assert nodes, "the web server did not answer with the asset graph"
        with socket.create_connection(("127.0.0.1", port)):
            pass
    finally:
        process.terminate()
        process.wait(timeout=30)
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {
        "raw/crm__accounts",
        "raw/support__tickets",
        "staging/stg_crm__accounts",
        "marts/dim_accounts",
        "marts/fct_account_metrics",
        "marts/account_fit_scores",
    } <= set(by_key)
    groups = {n["groupName"] for n in nodes}
    assert {"ingest", "scoring"} <= groups
    score_checks = {
        c["name"]: c["blocking"]
        for c in by_key["marts/account_fit_scores"]["assetChecksOrError"]["checks"]
    }
    assert score_checks["one_row_per_account"] is True
    assert by_key["marts/dim_accounts"]["hasAssetChecks"], "dbt tests appear as asset checks"
    assert by_key["raw/crm__accounts"]["hasAssetChecks"]


@pytest.mark.slow
def test_webserver_listens_on_loopback_only_by_default():
    """dagster-webserver's own default host is 127.0.0.1; guard against that changing."""
    from dagster_webserver.cli import DEFAULT_WEBSERVER_HOST

    assert DEFAULT_WEBSERVER_HOST == "127.0.0.1"
