"""Publishing the marts for readers: a DuckDB file and Parquet folders, swapped atomically.

Pure Python (DuckDB only, no Dagster). See :mod:`dagster_project.publish.snapshot` and
docs/consumers.md.
"""

from dagster_project.publish.snapshot import (
    CURRENT_LINK,
    DB_FILE,
    DEFAULT_KEEP_VERSIONS,
    PARQUET_DIR,
    PUBLISHED_TABLES,
    PublishError,
    PublishResult,
    contact_pii_columns,
    current_parquet_version,
    publish_marts,
    published_dir_for,
)

__all__ = [
    "CURRENT_LINK",
    "DB_FILE",
    "DEFAULT_KEEP_VERSIONS",
    "PARQUET_DIR",
    "PUBLISHED_TABLES",
    "PublishError",
    "PublishResult",
    "contact_pii_columns",
    "current_parquet_version",
    "publish_marts",
    "published_dir_for",
]
