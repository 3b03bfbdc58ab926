"""The dbt CLI resource skips dagster-dbt's per-step probes and keeps dbt's partial parse
valid across dates, and the unit-test check reports dbt's results (from the run's build or its
own ``dbt test``) faithfully."""

from __future__ import annotations

import os
import subprocess
from datetime import date

import yaml
from dagster_dbt import DbtCliResource

from dagster_project.defs.project import DBT_PIPELINE_TARGET, DBT_PROJECT, dbt_executable
from dagster_project.defs.resources import DBT_AS_OF_DATE_ENV, IcpDbtCliResource
from dagster_project.defs.transform.dbt import (
    _UNIT_TESTS,
    DBT_TARGET_ROOT,
    PARTIAL_PARSE_FILE,
    discard_target,
    ensure_manifest,
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


def _dbt_events(statuses: dict[str, str]) -> list[dict]:
    """dbt's structured events as the pipeline's dbt streams them: a start and a result per
    unit test, the error dbt logs about a failing one, and a model's result."""

    def event(name: str, unique_id: str, level: str = "info", **data) -> dict:
        return {
            "info": {"name": name, "level": level, "msg": f"{name} of {unique_id}"},
            "data": {"node_info": {"unique_id": unique_id}, **data},
        }

    return (
        [event("LogStartLine", uid) for uid in statuses]
        + [event("LogTestResult", uid, status=status) for uid, status in statuses.items()]
        + [event("RunResultFailure", u, "error") for u, s in statuses.items() if s == "fail"]
        + [event("LogModelResult", "model.icp_pipeline.dim_accounts", status="OK")]
    )


def test_a_failed_or_missing_unit_test_fails_its_check():
    keys = sorted(_UNIT_TESTS, key=lambda key: key.name)
    failing, missing, *passing = keys
    statuses = {_UNIT_TESTS[failing][1]: "fail"} | {_UNIT_TESTS[k][1]: "pass" for k in passing}
    results = unit_test_results(_dbt_events(statuses))
    assert all(uid.startswith("unit_test.") for uid in results)
    checks = {r.check_name: r for r in unit_test_check_results(keys, results, run_by="dbt build")}
    assert checks[failing.name].passed is False
    assert checks[failing.name].metadata["status"].value == "fail"
    assert checks[failing.name].metadata["message"].value == (
        f"RunResultFailure of {_UNIT_TESTS[failing][1]}"
    )
    assert all(checks[k.name].metadata["message"].value == "" for k in passing)
    assert checks[missing.name].passed is False
    assert checks[missing.name].metadata["status"].value == "not run"
    assert all(checks[k.name].passed for k in passing)
    assert {r.metadata["run by"].value for r in checks.values()} == {"dbt build"}


def test_each_invocation_gets_its_date_without_parsing_the_project_again(tmp_path):
    """The date and warehouse reach dbt as environment variables and each invocation keeps
    its partial parse: a new date compiles with that date and is not a full re-parse (a
    ``--vars`` holding the date made dbt parse all ~850 nodes and macros on every call)."""
    ensure_manifest()
    dbt = IcpDbtCliResource(project_dir=DBT_PROJECT, dbt_executable=dbt_executable())
    warehouse = str(tmp_path / "warehouse.duckdb")
    full_parses = []
    for as_of in (date(2026, 10, 19), date(2026, 10, 20)):
        invocation = dbt.cli_as_of(
            ["compile", "--select", "stg_crm__accounts"],
            as_of,
            warehouse,
            {"change_min_score_change": 10.0},
            manifest=DBT_PROJECT.manifest_path,
        )
        events = [event.raw_event["info"]["name"] for event in invocation.stream_raw_events()]
        invocation.wait()
        full_parses.append("UnableToPartialParse" in events)
        compiled = next(invocation.target_path.rglob("compiled/**/stg_crm__accounts.sql"))
        assert f"cast('{as_of.isoformat()}' as date)" in compiled.read_text()
        # dbt writes neither its 4 MB manifest (twice) nor run_results.json: the pipeline
        # reads results from the events; the partial parse is saved for the next one.
        assert not (invocation.target_path / "manifest.json").exists()
        assert not (invocation.target_path / "run_results.json").exists()
        assert (invocation.target_path / PARTIAL_PARSE_FILE).is_file()
        discard_target(invocation)
        assert not invocation.target_path.exists()
    assert full_parses[1] is False, "the second date parsed the whole project again"
    assert (DBT_TARGET_ROOT / PARTIAL_PARSE_FILE).is_file()
    assert DBT_AS_OF_DATE_ENV not in os.environ and os.environ.get("ICP_WAREHOUSE") != warehouse


def test_the_pipeline_target_keeps_the_warehouse_open_and_dev_does_not():
    """dbt reads profiles.yml with PyYAML's safe loader, which resolves the ``<<`` merge."""
    outputs = yaml.safe_load((DBT_PROJECT.profiles_dir / "profiles.yml").read_text())[
        "icp_pipeline"
    ]["outputs"]
    assert outputs[DBT_PIPELINE_TARGET]["keep_open"] is True
    assert outputs["dev"]["keep_open"] is False
    assert {k: v for k, v in outputs[DBT_PIPELINE_TARGET].items() if k != "keep_open"} == {
        k: v for k, v in outputs["dev"].items() if k != "keep_open"
    }
    resource = IcpDbtCliResource(project_dir=DBT_PROJECT, dbt_executable=dbt_executable())
    assert resource.target == DBT_PIPELINE_TARGET
