"""Reading, validating and quarantining landing files (pure Python + DuckDB, no Dagster)."""
