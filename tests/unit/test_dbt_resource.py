"""The dbt CLI resource skips dagster-dbt's per-step probes, and the unit-test check reports
dbt's results (from the run's build or its own ``dbt test``) faithfully."""

from __future__ import annotations

import subprocess

from dagster_dbt import DbtCliResource

from dagster_project.defs.project import DBT_PROJECT, dbt_executable
from dagster_project.defs.resources import IcpDbtCliResource
from dagster_project.defs.transform.dbt import (
    _UNIT_TESTS,
    unit_test_check_results,
    unit_test_results,
)


def test_the_overridden_dagster_dbt_methods_still_exist():
    """An upgrade of dagster-dbt that renames them would silently bring the probes back."""
    assert "_cli_version" in vars(DbtCliResource)
    assert callable(vars(DbtCliResource)["_initialize_dbt_core_adapter"])


def test_the_dbt_version_is_the_installed_one_without_running_dbt(monkeypatch):
    resource = IcpDbtCliResource(project_dir=DBT_PROJECT, dbt_executable=dbt_executable())
    expected = subprocess.run(
        [dbt_executable(), "--version"], capture_output=True, text=True, check=True
    ).stdout

    def no_subprocess(*args, **kwargs):
        raise AssertionError("dbt --version was run")

    monkeypatch.setattr("dagster_dbt.core.resource.check_output", no_subprocess)
    version = resource._cli_version
    assert version.major == 1
    assert f"installed: {version}" in expected
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def _run_results(statuses: dict[str, str]) -> dict:
    return {
        "results": [
            {"unique_id": uid, "status": status, "message": f"{status} message"}
            for uid, status in statuses.items()
        ]
        + [{"unique_id": "model.icp_pipeline.dim_accounts", "status": "success"}]
    }


def test_a_failed_or_missing_unit_test_fails_its_check():
    keys = sorted(_UNIT_TESTS, key=lambda key: key.name)
    failing, missing, *passing = keys
    statuses = {_UNIT_TESTS[failing][1]: "fail"} | {_UNIT_TESTS[k][1]: "pass" for k in passing}
    results = unit_test_results(_run_results(statuses))
    assert all(uid.startswith("unit_test.") for uid in results)
    checks = {r.check_name: r for r in unit_test_check_results(keys, results, run_by="dbt build")}
    assert checks[failing.name].passed is False
    assert checks[failing.name].metadata["status"].value == "fail"
    assert checks[missing.name].passed is False
    assert checks[missing.name].metadata["status"].value == "not run"
    assert all(checks[k.name].passed for k in passing)
    assert {r.metadata["run by"].value for r in checks.values()} == {"dbt build"}
