"""Mapping profiles: exports as Salesforce, HubSpot, Stripe or Zendesk write them, as data.

A company names, per source folder, the system its files come from in ``<landing>/landing.yaml``::

    sources:
      crm: salesforce            # a built-in profile (config/mappings/salesforce.yaml)
      billing: stripe
      support: mappings/our_desk.yaml   # a profile of its own, inside the landing root

A profile says, per contract entity, which file holds it and how each contract column comes
from the file's columns. It is YAML, parsed as data and compiled to SQL in which every value
is a bound parameter and every column is addressed by position, never by a name from the file.

``columns`` maps each contract column to a source column, or to a mapping with:

* ``column: Name`` (``lookup.Name`` for a column of a lookup file), or ``first_of: [A, B]``;
* ``constant: value``;
* ``cases: [{when: {Column: value-or-list, ...}, then: value}, ...]`` and ``else: value``;
* ``json_key: key`` (the column holds JSON text, e.g. Stripe ``metadata``);
* ``values: {source value: contract value}`` (matched like the value maps: case and
  separators folded; a value not listed passes unchanged, so the row rules still see it);
* ``transform``: ``upper``, ``lower``, ``domain`` (a URL to its bare host), ``epoch_seconds``,
  ``epoch_milliseconds`` (to an ISO timestamp);
* ``divide_by: 100`` (cents), ``multiply_by: item.quantity``, ``per_month: {interval:
  plan.interval, count: plan.interval_count}`` (an amount billed every ``count`` days, weeks,
  months or years, per month);
* ``when: {Column: value}``: NULL unless the condition holds (a Salesforce ``CloseDate`` is a
  close date only on a closed opportunity).

``lookups`` join other files of the same export folder, one row per key (the first in the
file): ``customer: {file: customer, key: id, on: customer_id}``; ``on`` may name a column of an
earlier lookup (``plan: {file: plan, key: id, on: item.plan_id}``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagster_project.ingest.contracts import EntityContract
from dagster_project.ingest.landing import LandingError
from dagster_project.ingest.value_maps import value_key, value_key_sql
from dagster_project.settings import PROJECT_ROOT

__all__ = [
    "BUILT_IN_PROFILES_DIR",
    "ColumnSpec",
    "EntityMapping",
    "LANDING_CONFIG",
    "Lookup",
    "MappingProfile",
    "entity_mapping_for",
    "load_landing_config",
    "load_profile",
    "column_sql",
]

BUILT_IN_PROFILES_DIR = PROJECT_ROOT / "config" / "mappings"
LANDING_CONFIG = "landing.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. \-]*$")
_TRANSFORMS = ("upper", "lower", "domain", "epoch_seconds", "epoch_milliseconds")
_COLUMN_KEYS = {
    "column",
    "first_of",
    "constant",
    "cases",
    "else",
    "json_key",
    "values",
    "transform",
    "divide_by",
    "multiply_by",
    "per_month",
    "when",
}


@dataclass(frozen=True)
class Lookup:
    """Another file of the export folder, joined on ``key`` = the value of ``on``."""

    alias: str
    file: str
    key: str
    on: str


@dataclass(frozen=True)
class ColumnSpec:
    """How one contract column is computed from the source columns (see the module doc)."""

    sources: tuple[str, ...] = ()
    constant: str | None = None
    cases: tuple[tuple[tuple[tuple[str, tuple[str, ...]], ...], str], ...] = ()
    otherwise: str | None = None
    json_key: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    transform: str | None = None
    divide_by: float | None = None
    multiply_by: str | None = None
    per_month: tuple[str, str | None] | None = None
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def referenced(self) -> set[str]:
        """Every source column (``name`` or ``lookup.name``) this spec reads."""
        names = set(self.sources)
        names.update(column for condition, _ in self.cases for column, _ in condition)
        names.update(column for column, _ in self.when)
        if self.multiply_by:
            names.add(self.multiply_by)
        if self.per_month:
            names.update(name for name in self.per_month if name)
        return names


@dataclass(frozen=True)
class EntityMapping:
    """One contract entity as a system exports it."""

    entity: str
    file: str
    columns: dict[str, ColumnSpec]
    lookups: tuple[Lookup, ...] = ()
    profile: str = ""

    def main_columns(self) -> set[str]:
        """Columns of the entity's own file that the mapping reads."""
        aliases = {lookup.alias for lookup in self.lookups}
        names = {name for spec in self.columns.values() for name in spec.referenced()}
        names.update(lookup.on for lookup in self.lookups)
        return {name for name in names if name.split(".", 1)[0] not in aliases}


@dataclass(frozen=True)
class MappingProfile:
    name: str
    entities: dict[str, EntityMapping] = field(default_factory=dict)


def _fail(where: str, message: str) -> LandingError:
    return LandingError(f"mapping profile {where}: {message}")


def _name(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _NAME.match(text):
        raise _fail(where, f"{value!r} is not a column or file name")
    return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _condition(raw: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(where, "a condition is a mapping {column: value or [values]}")
    return tuple(
        (
            _name(column, where),
            tuple(_text(v) for v in (value if isinstance(value, list) else [value])),
        )
        for column, value in raw.items()
    )


def _column_spec(raw: Any, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        return ColumnSpec(sources=(_name(raw, where),))
    if not isinstance(raw, dict):
        raise _fail(where, "a column is a source column name or a mapping")
    unknown = set(raw) - _COLUMN_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}")
    sources: tuple[str, ...] = ()
    if "column" in raw:
        sources = (_name(raw["column"], where),)
    elif "first_of" in raw:
        sources = tuple(_name(name, where) for name in raw["first_of"])
    cases = tuple(
        (_condition(case.get("when"), where), _text(case["then"]))
        for case in raw.get("cases") or []
        if isinstance(case, dict) and "then" in case
    )
    if len(cases) != len(raw.get("cases") or []):
        raise _fail(where, "each case is {when: {...}, then: value}")
    if not (sources or "constant" in raw or cases):
        raise _fail(where, "needs column, first_of, constant or cases")
    transform = raw.get("transform")
    if transform is not None and transform not in _TRANSFORMS:
        raise _fail(where, f"transform {transform!r} is not one of {_TRANSFORMS}")
    per_month = raw.get("per_month")
    if per_month is not None:
        if not isinstance(per_month, dict) or "interval" not in per_month:
            raise _fail(where, "per_month is {interval: column, count: column}")
        per_month = (
            _name(per_month["interval"], where),
            _name(per_month["count"], where) if per_month.get("count") else None,
        )
    divide_by = raw.get("divide_by")
    if divide_by is not None and (
        isinstance(divide_by, bool) or not isinstance(divide_by, (int, float)) or divide_by == 0
    ):
        raise _fail(where, "divide_by is a number other than 0")
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise _fail(where, "values is a mapping {source value: contract value}")
    return ColumnSpec(
        sources=sources,
        constant=_text(raw["constant"]) if raw.get("constant") is not None else None,
        cases=cases,
        otherwise=_text(raw["else"]) if raw.get("else") is not None else None,
        json_key=_text(raw["json_key"]) if raw.get("json_key") is not None else None,
        values=tuple((_text(k), "" if v is None else _text(v)) for k, v in values.items()),
        transform=transform,
        divide_by=float(divide_by) if divide_by is not None else None,
        multiply_by=_name(raw["multiply_by"], where) if raw.get("multiply_by") else None,
        per_month=per_month,
        when=_condition(raw["when"], where) if raw.get("when") is not None else (),
    )


def _entity_mapping(
    profile: str, entity: str, raw: Any, contracts: dict[str, EntityContract]
) -> EntityMapping:
    where = f"{profile}, {entity}"
    if entity not in contracts:
        raise _fail(where, f"unknown entity; the contracts are {sorted(contracts)}")
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise _fail(where, "an entity needs file and columns")
    contract = contracts[entity]
    columns = {}
    for column, spec in raw["columns"].items():
        if column not in contract.column_names:
            raise _fail(f"{where}.{column}", f"not a column of {entity}")
        columns[column] = _column_spec(spec, f"{where}.{column}")
    missing = [c for c in contract.required_columns if c not in columns]
    if missing:
        raise _fail(where, f"required column(s) {', '.join(missing)} not mapped")
    lookups = []
    for alias, lookup in (raw.get("lookups") or {}).items():
        if isinstance(lookup, dict):
            # YAML 1.1 reads a bare `on` key as the boolean true.
            lookup = {("on" if key is True else key): value for key, value in lookup.items()}
        if not isinstance(lookup, dict) or set(lookup) != {"file", "key", "on"}:
            raise _fail(f"{where}.lookups.{alias}", "a lookup is {file, key, on}")
        lookups.append(
            Lookup(
                alias=_name(alias, where),
                file=_name(lookup["file"], where),
                key=_name(lookup["key"], where),
                on=_name(lookup["on"], where),
            )
        )
    return EntityMapping(
        entity=entity,
        file=_name(raw.get("file") or contract.entity, where),
        columns=columns,
        lookups=tuple(lookups),
        profile=profile,
    )


def load_profile(path: Path, contracts: dict[str, EntityContract]) -> MappingProfile:
    """Parse a mapping profile file (YAML data; nothing in it is evaluated)."""
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise LandingError(f"mapping profile {path}: cannot be read: {error}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("entities"), dict):
        raise _fail(str(path), "a profile needs name and entities")
    name = str(raw.get("name") or path.stem)
    return MappingProfile(
        name=name,
        entities={
            entity: _entity_mapping(name, entity, spec, contracts)
            for entity, spec in raw["entities"].items()
        },
    )


def load_landing_config(landing_root: Path) -> dict[str, Path]:
    """Source folder (``crm``) -> profile file, from ``<landing>/landing.yaml`` (none: {}).

    A value is a built-in profile name or a path relative to the landing root, which must
    stay inside it.
    """
    root = Path(landing_root).resolve()
    config = root / LANDING_CONFIG
    if not config.is_file():
        return {}
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise LandingError(f"{LANDING_CONFIG}: not valid YAML: {error}") from error
    sources = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(sources, dict):
        raise LandingError(f"{LANDING_CONFIG}: expected 'sources: {{<folder>: <profile>}}'")
    profiles = {}
    for source, value in sources.items():
        value = str(value)
        if re.fullmatch(r"[a-z0-9_]+", value):
            path = BUILT_IN_PROFILES_DIR / f"{value}.yaml"
            if not path.is_file():
                built_in = sorted(p.stem for p in BUILT_IN_PROFILES_DIR.glob("*.yaml"))
                raise LandingError(
                    f"{LANDING_CONFIG}: sources.{source}: no built-in profile {value!r} "
                    f"(built in: {', '.join(built_in)}; or give a path to your own)"
                )
        else:
            path = (root / value).resolve()
            if not path.is_relative_to(root):
                raise LandingError(
                    f"{LANDING_CONFIG}: sources.{source}: {value} resolves outside the landing "
                    f"root {root}"
                )
            if not path.is_file():
                raise LandingError(f"{LANDING_CONFIG}: sources.{source}: no file {value}")
        profiles[str(source)] = path
    return profiles


def entity_mapping_for(
    landing_root: Path, contract: EntityContract, contracts: dict[str, EntityContract]
) -> EntityMapping | None:
    """The mapping of ``contract``'s entity in the profile its source folder names, if any."""
    profile_path = load_landing_config(landing_root).get(contract.source)
    if profile_path is None:
        return None
    return load_profile(profile_path, contracts).entities.get(contract.name)


def column_sql(spec: ColumnSpec, resolve, params: dict[str, object], prefix: str) -> str:
    """SQL (text) of one contract column; ``resolve(name)`` gives the SQL of a source column
    (``name`` or ``lookup.name``) as text, and every value of the spec is bound in ``params``
    under names starting with ``prefix``."""
    counter = itertools.count()

    def bind(value: object) -> str:
        key = f"{prefix}_{next(counter)}"
        params[key] = value
        return f"${key}"

    def matches(condition) -> str:
        return " AND ".join(
            f"lower(trim({resolve(column)})) IN ({', '.join(bind(v.lower()) for v in values)})"
            for column, values in condition
        )

    if spec.sources:
        texts = [f"nullif(trim({resolve(name)}), '')" for name in spec.sources]
        value = texts[0] if len(texts) == 1 else f"coalesce({', '.join(texts)})"
    elif spec.constant is not None:
        value = f"CAST({bind(spec.constant)} AS VARCHAR)"
    else:
        value = "CAST(NULL AS VARCHAR)"
    if spec.cases:
        branches = " ".join(
            f"WHEN {matches(condition)} THEN {bind(then)}" for condition, then in spec.cases
        )
        fallback = bind(spec.otherwise) if spec.otherwise is not None else value
        value = f"(CASE {branches} ELSE {fallback} END)"
    if spec.json_key is not None:
        value = f"json_extract_string({value}, {bind('$.' + spec.json_key)})"
    if spec.values:
        keys = [value_key(source) for source, _ in spec.values]
        targets = [target for _, target in spec.values]
        value = (
            f"(CASE WHEN list_position({bind(keys)}, {value_key_sql(value)}) > 0 "
            f"THEN nullif({bind(targets)}[list_position({bind(keys)}, "
            f"{value_key_sql(value)})], '') ELSE {value} END)"
        )
    if spec.transform == "upper":
        value = f"upper({value})"
    elif spec.transform == "lower":
        value = f"lower({value})"
    elif spec.transform == "domain":
        # https://www.example.com/en-us -> example.com
        without_scheme = f"regexp_replace(lower(trim({value})), '^[a-z][a-z0-9+.-]*://', '')"
        host = f"split_part(regexp_replace({without_scheme}, '^www[.]', ''), '/', 1)"
        value = f"nullif({host}, '')"
    elif spec.transform in ("epoch_seconds", "epoch_milliseconds"):
        scale = 1 if spec.transform == "epoch_seconds" else 1000
        value = (
            f"strftime(to_timestamp(try_cast({value} AS DOUBLE) / {scale}), "
            "'%Y-%m-%dT%H:%M:%S') || 'Z'"
        )
    if spec.divide_by is not None or spec.multiply_by or spec.per_month:
        number = f"try_cast({value} AS DECIMAL(38, 10))"
        if spec.multiply_by:
            number = f"({number} * coalesce(try_cast(nullif(trim({resolve(spec.multiply_by)}), "
            number += "'') AS DECIMAL(38, 10)), 1))"
        if spec.divide_by is not None:
            number = f"({number} / {bind(spec.divide_by)})"
        if spec.per_month:
            interval, count = spec.per_month
            months = (
                f"(CASE lower(trim({resolve(interval)})) WHEN 'month' THEN 1 WHEN 'year' "
                "THEN 12 WHEN 'week' THEN 12.0 / 52 WHEN 'day' THEN 12.0 / 365.25 END)"
            )
            if count:
                months = (
                    f"({months} * coalesce(try_cast(nullif(trim({resolve(count)}), '') "
                    "AS DECIMAL(38, 10)), 1))"
                )
            number = f"({number} / {months})"
        # Text again: the row rules check and cast it like any other value. NULL when the
        # source value is not a number, so the rules see the original text instead.
        value = f"coalesce(CAST(CAST({number} AS DOUBLE) AS VARCHAR), {value})"
    if spec.when:
        value = f"(CASE WHEN {matches(spec.when)} THEN {value} END)"
    return value
