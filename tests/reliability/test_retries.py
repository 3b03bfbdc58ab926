"""Transient failures are retried with backoff; bugs and bad data fail at once.

The transient failure here is a real one: another process holds the warehouse file open for
writing (DuckDB allows one writing process per file) when the run starts.
"""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from dagster_project.defs.partitions import is_transient, retry_only_if_transient
from dagster_project.run import retry_cause, run_pipeline
from tests.conftest import settings_for

# Held from before the run starts until this long after the run took the warehouse lock (its
# first step is then trying to open the file): within the retry policy's patience (10, 20,
# 40 s, +-50%).
HOLD_SECONDS = 8
_HOLD_WAREHOUSE = """
import pathlib, sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
run_lock = pathlib.Path(sys.argv[1] + ".lock")
deadline = time.monotonic() + 600
while not run_lock.exists() and time.monotonic() < deadline:
    time.sleep(0.1)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_only_transient_errors_reach_the_retry_policy():
    assert is_transient(duckdb.IOException('Could not set lock on file "w.duckdb"'))
    assert is_transient(OSError(28, "No space left on device"))
    assert not is_transient(FileNotFoundError("x.csv"))
    assert not is_transient(duckdb.BinderException("Referenced column not found"))

    with pytest.raises(duckdb.IOException):
        with retry_only_if_transient("scoring"):
            raise duckdb.IOException("Could not set lock on file")
    with pytest.raises(dg.Failure) as failure:
        with retry_only_if_transient("scoring"):
            raise KeyError("fit_score")
    assert failure.value.allow_retries is False
    assert "scoring failed: KeyError" in failure.value.description

    # dagster-dbt's errors are Failures that allow retries: a model that does not compile
    # must fail at once, a locked warehouse file still retries.
    with pytest.raises(dg.Failure) as failure:
        with retry_only_if_transient("dbt build"):
            raise DagsterDbtCliRuntimeError("Binder Error: Referenced table not found")
    assert failure.value.allow_retries is False
    with pytest.raises(DagsterDbtCliRuntimeError) as failure:
        with retry_only_if_transient("dbt build"):
            raise DagsterDbtCliRuntimeError('IO Error: Could not set lock on file "w.duckdb"')
    assert failure.value.allow_retries is True


@pytest.mark.slow
def test_a_run_waits_out_a_locked_warehouse_file_and_succeeds(sample_landing, tmp_path):
    settings = settings_for(sample_landing, tmp_path / "warehouse.duckdb")
    duckdb.connect(str(settings.warehouse_path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WAREHOUSE, str(settings.warehouse_path), str(HOLD_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        summary = run_pipeline(settings, instance=instance)
        retried = [
            (event.step_key, retry_cause(event.dagster_event.step_retry_data.error))
            for event in instance.all_logs(summary.run_id)
            if event.dagster_event and event.dagster_event.is_step_up_for_retry
        ]
    holder.wait(30)
    assert summary.success, summary.failures
    assert retried, "the first step met the locked file and was retried"
    assert all("lock" in message.lower() for _, message in retried), retried
    assert time.monotonic() - started > HOLD_SECONDS
    assert holder.returncode == 0
