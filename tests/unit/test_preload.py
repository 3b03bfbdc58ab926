"""The libraries of the steps after dbt are not imported with the definitions, and the dbt
step's preload imports them in the background, once per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from dagster_project.defs.preload import LATER_STEP_MODULES


def _in_a_fresh_interpreter(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_the_definitions_leave_them_to_the_preload_and_it_imports_each_once():
    output = _in_a_fresh_interpreter(
        f"""
        import os, sys
        os.environ.pop("GX_ANALYTICS_ENABLED", None)
        import dagster_project.definitions
        from dagster_project.defs.preload import preload_later_steps
        modules = {LATER_STEP_MODULES!r}
        print("before", [m for m in modules if m in sys.modules])
        first = preload_later_steps()
        assert preload_later_steps() is first, "a second thread was started"
        first.join(timeout=240)
        print("after", [m for m in modules if m in sys.modules])
        print("analytics", os.environ.get("GX_ANALYTICS_ENABLED"))
        """
    )
    assert "before []" in output
    assert f"after {list(LATER_STEP_MODULES)!r}" in output
    assert "analytics False" in output
