"""The environment `uv sync` installs loads its libraries from bytecode.

Where PYTHONDONTWRITEBYTECODE is set (container images, this project's CI machine), Python
never writes the bytecode it compiles, so without bytecode compiled at install time
(``[tool.uv] compile-bytecode``) every process compiles dagster, dbt and pandas from source
again: about 3 s for each `icp` command and for each dbt process a run starts.
"""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["dagster", "dagster_dbt", "dbt.cli.main", "pandas", "pandera"])
def test_each_library_module_has_its_bytecode_on_disk(module):
    source = importlib.util.find_spec(module).origin
    assert Path(importlib.util.cache_from_source(source)).exists(), (
        f"{module} has no bytecode beside {source}: install with `uv sync` "
        "(pyproject's [tool.uv] compile-bytecode)"
    )
