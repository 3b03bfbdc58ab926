"""The dbt project and the dbt executable, imported by the dbt assets and the resources."""

import sys
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_project.settings import PROJECT_ROOT

__all__ = [
    "DBT_PIPELINE_TARGET",
    "DBT_PROJECT",
    "DBT_PROJECT_DIR",
    "POSTGRES_DBT_TARGET",
    "dbt_executable",
]

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
#: The profiles.yml target of the pipeline's dbt steps (it keeps the warehouse open for a whole
#: build); the manifest is parsed with it too, so each step's partial parse stays valid.
DBT_PIPELINE_TARGET = "pipeline"
#: The profiles.yml target of the pipeline's dbt steps on the PostgreSQL target.
POSTGRES_DBT_TARGET = "postgres"
DBT_PROJECT = DbtProject(
    project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=DBT_PIPELINE_TARGET
)


def dbt_executable() -> str:
    """The ``dbt`` next to the running interpreter, else ``dbt`` from PATH.

    ``.venv/bin/icp`` started by its path (cron, systemd) does not have the venv's bin on
    PATH, so dagster-dbt would not find ``dbt`` there.
    """
    beside_interpreter = Path(sys.executable).parent / "dbt"
    return str(beside_interpreter) if beside_interpreter.is_file() else "dbt"
