"""Input contracts: the pandera schemas in ``schemas/`` loaded into one typed description.

The YAML files are pandera ``DataFrameSchema`` documents (pandas API). They are the single
source of truth for each landing entity's columns, types and rules; this module reads them
once and offers two views of the same contract:

* :class:`EntityContract`, which the ingest turns into in-engine (DuckDB) row checks so every
  bad row is quarantined with a reason, and
* :func:`to_pandera_ibis_schema`, a pandera schema that validates the loaded raw table inside
  DuckDB (through ibis) as an independent guard on the result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandera.pandas as pa

__all__ = [
    "ColumnContract",
    "EntityContract",
    "default_schemas_dir",
    "load_contracts",
    "to_pandera_ibis_schema",
]

#: The dtype of a timestamp column in the YAML.
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
#: pandera dtype name in the YAML -> DuckDB type of the raw column.
_WAREHOUSE_TYPES = {
    "str": "VARCHAR",
    "Int64": "BIGINT",
    "Float64": "DOUBLE",
    "boolean": "BOOLEAN",
    TIMESTAMP_DTYPE: "TIMESTAMP",
}


@dataclass(frozen=True)
class ColumnContract:
    """One column of a landing entity as the contract states it."""

    name: str
    dtype: str
    nullable: bool
    required: bool
    allowed_values: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_exclusive: bool = False
    pattern: str | None = None
    min_length: int | None = None

    @property
    def warehouse_type(self) -> str:
        """DuckDB type of the column in the raw layer."""
        return _WAREHOUSE_TYPES[self.dtype]


@dataclass(frozen=True)
class EntityContract:
    """A landing entity (``crm/accounts`` ...) with its columns, keys and file location."""

    source: str
    entity: str
    columns: tuple[ColumnContract, ...]
    primary_key: tuple[str, ...]
    foreign_keys: dict[str, str] = field(default_factory=dict)
    is_optional_file: bool = False
    #: Header names exporters write for a column (``employees`` for ``employee_count``): not
    #: read as the column, but named in a warning (see :mod:`dagster_project.ingest.headers`).
    column_synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``source/entity``, as in the landing layout."""
        return f"{self.source}/{self.entity}"

    @property
    def raw_table(self) -> str:
        """Table name in the ``raw`` schema (``crm__accounts``)."""
        if self.source == "reference":
            return self.entity
        return f"{self.source}__{self.entity}"

    @property
    def is_reference(self) -> bool:
        """Reference data (fx rates) lives at the landing root, not in export folders."""
        return self.source == "reference"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Primary and foreign key columns, in contract order (trimmed, see docs/contract.md)."""
        keys = set(self.primary_key) | set(self.foreign_keys)
        return tuple(name for name in self.column_names if name in keys)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name: str) -> ColumnContract:
        return next(column for column in self.columns if column.name == name)


def default_schemas_dir() -> Path:
    """``$ICP_SCHEMAS_DIR`` or the ``schemas/`` folder of this repository."""
    configured = os.environ.get("ICP_SCHEMAS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "schemas"


def load_contracts(schemas_dir: Path | None = None) -> dict[str, EntityContract]:
    """Load every contract under ``schemas_dir``, keyed by ``source/entity``."""
    return dict(_load_contracts_cached(Path(schemas_dir or default_schemas_dir()).resolve()))


@cache
def _load_contracts_cached(schemas_dir: Path) -> tuple[tuple[str, EntityContract], ...]:
    contracts = []
    for path in sorted(schemas_dir.rglob("*.yaml")):
        schema = pa.DataFrameSchema.from_yaml(path.read_text(encoding="utf-8"))
        contract = _entity_contract(schema)
        contracts.append((contract.name, contract))
    if not contracts:
        raise FileNotFoundError(f"no input contracts (*.yaml) under {schemas_dir}")
    return tuple(contracts)


def _entity_contract(schema: pa.DataFrameSchema) -> EntityContract:
    metadata = schema.metadata or {}
    primary_key = metadata["primary_key"]
    columns = tuple(_column_contract(name, column) for name, column in schema.columns.items())
    return EntityContract(
        source=metadata["source"],
        entity=metadata["entity"],
        columns=columns,
        primary_key=tuple([primary_key] if isinstance(primary_key, str) else primary_key),
        foreign_keys=dict(metadata.get("foreign_keys") or {}),
        is_optional_file=bool(metadata.get("optional_file", False)),
        column_synonyms={
            name: tuple(str(s) for s in synonyms)
            for name, synonyms in (metadata.get("column_synonyms") or {}).items()
        },
    )


def _column_contract(name: str, column: pa.Column) -> ColumnContract:
    dtype = str(column.dtype)
    if dtype == "string":
        dtype = "str"
    if dtype == "bool":
        dtype = "boolean"
    if dtype not in _WAREHOUSE_TYPES:
        raise ValueError(f"column {name}: dtype {dtype!r} is not supported by the ingest")
    rules: dict[str, Any] = {}
    for check in column.checks:
        stats = check.statistics or {}
        if check.name == "isin":
            rules["allowed_values"] = tuple(str(v) for v in stats["allowed_values"])
        elif check.name == "greater_than_or_equal_to":
            rules["min_value"] = float(stats["min_value"])
        elif check.name == "greater_than":
            rules["min_value"] = float(stats["min_value"])
            rules["min_exclusive"] = True
        elif check.name == "in_range":
            rules["min_value"] = float(stats["min_value"])
            rules["max_value"] = float(stats["max_value"])
        elif check.name == "str_matches":
            rules["pattern"] = str(stats["pattern"])
        elif check.name == "str_length":
            rules["min_length"] = int(stats["min_value"])
        else:
            raise ValueError(f"column {name}: check {check.name!r} is not supported by the ingest")
    return ColumnContract(
        name=name,
        dtype=dtype,
        nullable=bool(column.nullable),
        required=bool(column.required),
        **rules,
    )


def to_pandera_ibis_schema(contract: EntityContract):
    """A pandera (ibis backend) schema of the typed raw table, to validate it inside DuckDB.

    Lineage columns and unknown extras are allowed (``strict=False``); keys repeat across
    exports in the raw layer, so uniqueness is checked per file by the ingest, not here.
    """
    import ibis.expr.datatypes as dt
    import pandera.ibis as pai

    ibis_types = {
        "str": dt.String(),
        "Int64": dt.Int64(),
        "Float64": dt.Float64(),
        "boolean": dt.Boolean(),
        TIMESTAMP_DTYPE: dt.Timestamp(scale=6),
    }
    columns = {}
    for column in contract.columns:
        # Enum sets are left out: the raw layer keeps the source's spelling (the ingest compares
        # case-insensitively and staging normalises), so only types, nulls and ranges apply.
        checks = []
        if column.min_value is not None:
            if column.min_exclusive:
                checks.append(pai.Check.gt(column.min_value))
            else:
                checks.append(pai.Check.ge(column.min_value))
        if column.max_value is not None:
            checks.append(pai.Check.le(column.max_value))
        columns[column.name] = pai.Column(
            ibis_types[column.dtype], checks=checks, nullable=column.nullable
        )
    return pai.DataFrameSchema(columns, strict=False, name=contract.raw_table)
