"""Synthetic landing-zone data with a planted, documented ICP (see ``generator``)."""

from dagster_project.sample_data.generator import (
    ANTI_ICP_REASONS,
    FILE_FORMATS,
    PLANTED_SEGMENTS,
    GenerationSummary,
    generate_landing_zone,
)
from dagster_project.sample_data.planted_structures import (
    STRUCTURES,
    StructuredSummary,
    generate_structured_landing_zone,
)

__all__ = [
    "ANTI_ICP_REASONS",
    "FILE_FORMATS",
    "PLANTED_SEGMENTS",
    "STRUCTURES",
    "GenerationSummary",
    "StructuredSummary",
    "generate_landing_zone",
    "generate_structured_landing_zone",
]
