"""Build the ICP report and write it atomically: ``<out>/index.html`` + ``<out>/assets/``.

The page is static and opens offline: the charts are plotly specs drawn by the plotly.js of
the installed plotly package, copied into ``assets/`` and referenced relatively. Writing is
atomic for a reader: the files are written into a temporary folder inside ``<out>``, the
script is renamed into ``assets/`` first and ``index.html`` last (``os.replace``), so a
reader sees the old report or the new one, never half of one. Nothing else in ``<out>`` is
touched: ``quality/`` (Great Expectations' Data Docs, written by its own step) stays.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import jinja2
import plotly

from dagster_project.report import charts, facts, narrative
from dagster_project.report.sources import ReportError, ReportSources, open_sources

__all__ = [
    "ASSETS_DIR",
    "INDEX_FILE",
    "QUALITY_INDEX",
    "REPORT_DIR",
    "CheckOutcome",
    "ReportResult",
    "build_report",
    "render_report",
    "report_dir_for",
]

REPORT_DIR = "report"
INDEX_FILE = "index.html"
ASSETS_DIR = "assets"
#: Great Expectations' Data Docs, written by the quality step into the report folder.
QUALITY_INDEX = Path("quality") / "index.html"
_TMP_PREFIX = ".tmp-report-"
_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
#: Cohort curves are drawn for the attributes with the widest spread of points.
_COHORT_ATTRIBUTES = 2


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluation of the run that writes the report.

    Attributes:
        asset: The checked asset's key, e.g. ``published/marts``.
        name: The check's name.
        passed: Whether it passed.
        severity: ``ERROR`` (blocking) or ``WARN``.
        detail: Why it failed, or empty.
    """

    asset: str
    name: str
    passed: bool
    severity: str
    detail: str = ""


@dataclass
class ReportResult:
    """What one report build wrote."""

    index_path: Path
    as_of_date: date
    bytes_written: int
    seconds: float
    charts: list[str] = field(default_factory=list)
    evidence: str = ""


def report_dir_for(published_dir: Path) -> Path:
    """``<published>/report``: where every run writes its report."""
    return Path(published_dir) / REPORT_DIR


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dagster_project.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _cohort_attributes(sources: ReportSources, as_of: date, profile) -> list[str]:
    """The cohort table's attributes whose values' points spread widest (the ICP's axes)."""
    points_range: dict[str, tuple[float, float]] = {}
    for value in profile:
        # The profile names tech items "tech_stack:<item>"; the cohorts pool them as one.
        attribute = (
            "tech_stack_item" if value.attribute.startswith("tech_stack:") else (value.attribute)
        )
        low, high = points_range.get(attribute, (0.0, 0.0))
        points = value.points or 0.0
        points_range[attribute] = (min(low, points), max(high, points))

    def spread(attribute: str) -> float:
        low, high = points_range.get(attribute, (0.0, 0.0))
        return high - low

    available = facts.cohort_attributes(sources, as_of)
    return sorted(available, key=lambda a: (-spread(a), a))[:_COHORT_ATTRIBUTES]


def _context(
    sources: ReportSources,
    as_of: date | None,
    checks: list[CheckOutcome] | None,
    quality_link: str | None,
) -> dict:
    dates = facts.scored_dates(sources)
    current = facts.current_date(sources)
    as_of = as_of or current
    if as_of not in dates:
        shown = ", ".join(str(d) for d in dates[-5:]) or "none"
        raise ReportError(f"no scores as of {as_of} in the history (newest dates: {shown})")
    overview = facts.run_overview(sources, as_of)
    validation = facts.validation_rows(sources, as_of)
    evidence = narrative.evidence(validation, overview)
    profile = facts.profile_values(sources, as_of)
    outcomes = facts.tier_outcomes(sources, as_of)
    reasons = facts.anti_icp_reasons(sources, as_of)
    histogram = facts.score_histogram(sources, as_of)
    previous, quarter_ago = facts.comparison_dates(dates, as_of)
    retros = []
    if previous is not None:
        retros.append(facts.retro(sources, "previous run", previous, as_of, profile))
    if quarter_ago is not None and quarter_ago != previous:
        retros.append(facts.retro(sources, "about 90 days earlier", quarter_ago, as_of, profile))
    auc_row = validation.get(facts.AUC_MEASURE)
    cohort_charts = []
    for index, attribute in enumerate(_cohort_attributes(sources, as_of, profile)):
        chart = charts.cohort_chart(
            attribute, facts.cohort_curves(sources, as_of, attribute), index
        )
        if chart is not None:
            cohort_charts.append(chart)
    present, absent, sources_detail = narrative.sources_present(validation)
    quarantine = facts.quarantine_counts(sources)
    return dict(
        as_of=as_of,
        current=current,
        is_current=as_of == current,
        dates=dates,
        built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        published_db=sources.published_db,
        publish_version=_publish_version(sources),
        overview=overview,
        evidence=evidence,
        coverage=narrative.coverage_sentence(overview),
        icp_sentences=narrative.icp_sentences(profile),
        anti_profile=narrative.anti_profile_sentences(profile),
        anti_icp=narrative.anti_icp_sentences(overview, reasons),
        segments=narrative.segment_sentences(overview, profile),
        tier_sentences=narrative.tier_outcome_sentences(outcomes),
        outcomes=outcomes,
        percent=narrative.percent,
        charts=dict(
            lift=charts.lift_chart(profile),
            tiers=charts.tier_outcome_chart(outcomes),
            calibration=charts.calibration_chart(facts.calibration(validation)),
            scores=charts.score_distribution_chart(histogram),
            auc=charts.auc_chart(
                facts.auc_estimates(validation), auc_row.threshold if auc_row else None
            ),
            retro_tiers=charts.retro_tier_chart(overview, retros),
            retro_scores=charts.retro_score_chart(
                facts.score_histogram(sources, as_of, facts.PSI_BUCKET_POINTS), retros
            ),
        ),
        cohort_charts=cohort_charts,
        retros=[(r, narrative.retro_sentences(r, overview)) for r in retros],
        validation=sorted(validation.values(), key=lambda row: row.measure),
        sources_present=present,
        sources_absent=absent,
        sources_detail=sources_detail,
        quarantine=quarantine,
        quarantine_total=sum(q.rows for q in quarantine),
        quarantine_available=sources.quarantine_table is not None,
        quarantine_note=sources.quarantine_note,
        checks=checks,
        quality_link=quality_link,
        plotly_script=f"{ASSETS_DIR}/{_plotly_asset_name()}",
    )


def _publish_version(sources: ReportSources) -> str:
    try:
        row = sources.con.execute('SELECT version FROM "published".meta.publish_info').fetchone()
    except Exception:  # an older published file without meta.publish_info
        return "unknown"
    return row[0] if row else "unknown"


def _plotly_asset_name() -> str:
    # Versioned: a reader holding the old index.html still finds the script it names.
    return f"plotly-{plotly.__version__}.min.js"


def render_report(
    sources: ReportSources,
    as_of: date | None = None,
    checks: list[CheckOutcome] | None = None,
    quality_link: str | None = None,
) -> tuple[str, dict]:
    """The report's HTML and the context it was rendered from (for tests).

    Raises:
        ReportError: When ``as_of`` is not a scored date, or the file holds no scores.
    """
    context = _context(sources, as_of, checks, quality_link)
    html = _environment().get_template("index.html.j2").render(**context)
    return html, context


def build_report(
    published_db: Path,
    out_dir: Path,
    *,
    warehouse: Path | None = None,
    as_of: date | None = None,
    checks: list[CheckOutcome] | None = None,
) -> ReportResult:
    """Read the published marts and write ``<out_dir>/index.html`` (and its script).

    Args:
        published_db: ``<published>/icp_marts.duckdb``.
        out_dir: The report folder (created if needed); ``quality/`` in it is kept.
        warehouse: The warehouse file, for the quarantine; optional.
        as_of: A scored date of the history; default: the current published date.
        checks: The run's asset check evaluations, when built inside a run.

    Returns:
        Where the report went, its date, size and build time.

    Raises:
        ReportError: When the published file is missing, has no scores or not ``as_of``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    quality_link = QUALITY_INDEX.as_posix() if (out_dir / QUALITY_INDEX).is_file() else None
    with open_sources(Path(published_db), warehouse) as sources:
        html, context = render_report(sources, as_of, checks, quality_link)
    index = _write_atomically(out_dir, html)
    shown = [c.chart_id for c in context["charts"].values() if c is not None]
    shown += [c.chart_id for c in context["cohort_charts"]]
    return ReportResult(
        index_path=index,
        as_of_date=context["as_of"],
        bytes_written=index.stat().st_size + (out_dir / context["plotly_script"]).stat().st_size,
        seconds=time.perf_counter() - started,
        charts=shown,
        evidence=context["evidence"].status,
    )


def _write_atomically(out_dir: Path, html: str) -> Path:
    staging = out_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    assets = out_dir / ASSETS_DIR
    script_name = _plotly_asset_name()
    try:
        (staging / ASSETS_DIR).mkdir(parents=True)
        shutil.copyfile(_PLOTLY_JS, staging / ASSETS_DIR / script_name)
        staged_index = staging / INDEX_FILE
        with open(staged_index, "w", encoding="utf-8") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        assets.mkdir(exist_ok=True)
        # The script first, the page that names it last.
        os.replace(staging / ASSETS_DIR / script_name, assets / script_name)
        os.replace(staged_index, out_dir / INDEX_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in assets.glob("plotly-*.min.js"):
        if old.name != script_name:
            old.unlink(missing_ok=True)
    return out_dir / INDEX_FILE
