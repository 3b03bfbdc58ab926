"""Finding landing files: export-date folders, one file per entity, paths kept inside the root."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dagster_project.ingest.contracts import EntityContract

__all__ = [
    "COMPLETION_MODES",
    "SUCCESS_MARKER",
    "LandingFile",
    "LandingError",
    "complete_export_dates",
    "export_dates",
    "missing_expected_files",
    "find_entity_files",
    "freshness_findings",
]

#: Suffixes the contract allows, in order of preference when several exist.
FILE_SUFFIXES = (".parquet", ".csv.gz", ".csv")
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: The file an exporter writes last into an export-date folder to say it is complete.
SUCCESS_MARKER = "_SUCCESS"
#: How an export folder is known to be complete: its ``_SUCCESS`` marker, or a file for every
#: expected entity (for exporters that write no marker).
COMPLETION_MODES = ("marker", "files")


class LandingError(Exception):
    """A landing file that cannot be ingested; the message names the file and the problem."""


@dataclass(frozen=True)
class LandingFile:
    """One file to ingest: its path, its path relative to the landing root, its export date."""

    path: Path
    relative_path: str
    export_date: date | None

    @property
    def file_format(self) -> str:
        return "parquet" if self.path.name.endswith(".parquet") else "csv"


def export_dates(landing_root: Path, as_of: date | None = None) -> list[date]:
    """Export-date folders under the landing root, oldest first, up to ``as_of`` inclusive.

    Folders whose name is not a date (``_truth``, ``tmp``) are not exports and are ignored.
    """
    root = _existing_root(landing_root)
    dates = []
    for child in root.iterdir():
        if not (child.is_dir() and _DATE_FOLDER.match(child.name)):
            continue
        try:
            folder_date = date.fromisoformat(child.name)
        except ValueError:
            continue
        if as_of is None or folder_date <= as_of:
            dates.append(folder_date)
    return sorted(dates)


def find_entity_files(
    landing_root: Path,
    contract: EntityContract,
    as_of: date | None = None,
    file_stem: str | None = None,
) -> list[LandingFile]:
    """Every file of ``contract``'s entity in export folders dated <= ``as_of``, named
    ``<entity>.<suffix>`` or, for a system's export (a mapping profile), ``<file_stem>.<suffix>``.

    Raises:
        LandingError: a file resolves outside the landing root (``..`` or a symlink), or a
            folder holds the entity in two formats (which one is meant would be a guess).
    """
    root = _existing_root(landing_root)
    if contract.is_reference:
        candidates = [(None, root)]
    else:
        candidates = [
            (d, root / d.isoformat() / contract.source) for d in export_dates(root, as_of)
        ]
    files = []
    for export_date, folder in candidates:
        present = [folder / f"{file_stem or contract.entity}{suffix}" for suffix in FILE_SUFFIXES]
        present = [path for path in present if path.exists() or path.is_symlink()]
        if len(present) > 1:
            names = ", ".join(_relative(root, path) for path in present)
            raise LandingError(f"{names}: one entity in two formats in the same export folder")
        if present:
            files.append(
                LandingFile(
                    path=_confined(root, present[0]),
                    relative_path=_relative(root, present[0]),
                    export_date=export_date,
                )
            )
    return files


def _existing_root(landing_root: Path) -> Path:
    root = Path(landing_root).resolve()
    if not root.is_dir():
        raise LandingError(f"landing root {landing_root} does not exist or is not a folder")
    return root


def _confined(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise LandingError(
            f"{_relative(root, path)}: resolves to {resolved}, outside the landing root {root}"
        )
    if not resolved.is_file():
        raise LandingError(f"{_relative(root, path)}: not a regular file")
    return resolved


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def freshness_findings(
    landing_root: Path,
    contracts: Iterable[EntityContract],
    today: date,
    max_age_days: int,
) -> list[str]:
    """What is stale or missing in the landing zone as of ``today`` (empty: all is well).

    The newest export folder must be at most ``max_age_days`` old and hold a file for every
    expected entity (see :func:`missing_expected_files`).
    """
    dates = export_dates(landing_root)
    if not dates:
        return [f"no export folder (YYYY-MM-DD) under {landing_root}"]
    newest = dates[-1]
    findings = []
    age = (today - newest).days
    if age > max_age_days:
        findings.append(
            f"the newest export, {newest}, is {age} days old (more than {max_age_days})"
        )
    findings += [
        f"{newest}/{name}: missing from the newest export "
        f"(expected {name.split('/')[-1]}.csv, .csv.gz or .parquet)"
        for name in missing_expected_files(landing_root, contracts, newest)
    ]
    return findings


def missing_expected_files(
    landing_root: Path, contracts: Iterable[EntityContract], export_date: date
) -> list[str]:
    """Names (``crm/accounts``) of the entities expected in that export folder but absent.

    Expected: the required entities (``crm/accounts``), and every entity the previous export
    folder held: a source the company sends comes in each export, so one that has not landed
    yet means the folder is still being written. An entity the company never sent is not
    expected (sources are optional).
    """
    root = _existing_root(landing_root)
    earlier = [d for d in export_dates(root) if d < export_date]
    contracts = list(contracts)
    return _missing_files(
        root, contracts, export_date, earlier[-1] if earlier else None, _file_stems(root, contracts)
    )


def _missing_files(
    root: Path,
    contracts: list[EntityContract],
    export_date: date,
    previous_date: date | None,
    stems: dict[str, str],
) -> list[str]:
    previous = root / previous_date.isoformat() if previous_date else None
    folder = root / export_date.isoformat()
    return [
        contract.name
        for contract in contracts
        if not contract.is_reference
        and (
            not contract.is_optional_file
            or (previous is not None and _has_entity_file(previous, contract, stems))
        )
        and not _has_entity_file(folder, contract, stems)
    ]


def _file_stems(root: Path, contracts: list[EntityContract]) -> dict[str, str]:
    """Each entity's file name without suffix: its own, or a mapping profile's."""
    from dagster_project.ingest.contracts import load_contracts
    from dagster_project.ingest.mapping import entity_mapping_for

    every_contract = load_contracts()
    stems = {}
    for contract in contracts:
        mapping = (
            None if contract.is_reference else entity_mapping_for(root, contract, every_contract)
        )
        stems[contract.name] = mapping.file if mapping else contract.entity
    return stems


def _has_entity_file(folder: Path, contract: EntityContract, stems: dict[str, str]) -> bool:
    return any(
        (folder / contract.source / f"{stems[contract.name]}{suffix}").is_file()
        for suffix in FILE_SUFFIXES
    )


def complete_export_dates(
    landing_root: Path, contracts: Iterable[EntityContract], mode: str
) -> list[date]:
    """Export dates whose folder is complete, oldest first: it holds ``_SUCCESS`` (mode
    ``marker``) or a file for every expected entity (mode ``files``: crm/accounts and each
    entity of the previous export folder)."""
    if mode not in COMPLETION_MODES:
        raise ValueError(f"export completion mode {mode!r} is not one of {COMPLETION_MODES}")
    contracts = list(contracts)
    root = _existing_root(landing_root)
    dates = export_dates(root)
    if mode == "marker":
        return [d for d in dates if (root / d.isoformat() / SUCCESS_MARKER).is_file()]
    # The file names (landing.yaml and its profiles) are read once, not once per folder.
    stems = _file_stems(root, contracts)
    return [
        export_date
        for previous, export_date in zip([None, *dates], dates, strict=False)
        if not _missing_files(root, contracts, export_date, previous, stems)
    ]
