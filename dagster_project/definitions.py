"""The one root of the Dagster code location (``dagster dev -w workspace.yaml``).

Paths come from the environment (``ICP_LANDING``, ``ICP_WAREHOUSE``, ``ICP_SCORING_CONFIG``,
``ICP_AS_OF_DATE``), with defaults under the working directory.
"""

from dagster_project.defs import build_definitions
from dagster_project.settings import Settings

defs = build_definitions(Settings.from_env())
