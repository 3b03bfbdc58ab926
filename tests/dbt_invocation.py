"""The arguments that point a test's dbt invocation at the project and at its own scratch files
(so that it never writes the pipeline's dbt/target)."""

from __future__ import annotations

from pathlib import Path

from dagster_project.defs.project import DBT_PROJECT_DIR


def project_arguments(target_path: Path, log_path: Path) -> list[str]:
    return [
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_path),
        "--log-path",
        str(log_path),
    ]
