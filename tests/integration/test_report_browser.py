"""The ICP report in a real headless Chromium (Debian's ``chromium``): it loads from file://
without a console error, and every chart draws (an SVG with drawn marks, a screenshot that is
not blank).

The browser is the system's (``deploy/install_browser.sh`` installs it; playwright downloads
nothing): without it this test fails, it does not skip.
"""

from __future__ import annotations

import io
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from dagster_project.publish import DB_FILE, published_dir_for
from dagster_project.report import build_report
from tests.integration.test_report import _add_scored_date

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
#: A drawn chart has marks (bars, markers, lines) and is not one flat colour.
MIN_DRAWN_PATHS = 3
MIN_PIXEL_STDDEV = 10.0


@pytest.fixture(scope="module")
def report_with_history(pipeline_run, tmp_path_factory) -> Path:
    """The session run's report, with two earlier scored dates so the retro charts draw."""
    settings, _ = pipeline_run
    root = tmp_path_factory.mktemp("browser")
    db = root / DB_FILE
    shutil.copyfile(published_dir_for(settings.warehouse_path) / DB_FILE, db)
    with duckdb.connect(str(db)) as con:
        as_of = con.execute("SELECT max(as_of_date) FROM marts.account_fit_scores").fetchone()[0]
        _add_scored_date(con, as_of, as_of - timedelta(days=1), 3.0)
        _add_scored_date(con, as_of, as_of - timedelta(days=90), 10.0)
    result = build_report(db, root / "report", warehouse=settings.warehouse_path)
    return result.index_path


def test_the_report_renders_every_chart_in_headless_chromium(report_with_history):
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: run deploy/install_browser.sh (installs Debian's chromium)"
        )
    from PIL import Image, ImageStat
    from playwright.sync_api import sync_playwright

    page_text = report_with_history.read_text()
    expected_charts = page_text.count('class="plot"')
    assert expected_charts >= 9, expected_charts  # 7 evidence/retro charts + 2 cohort charts
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console {message.type}: {message.text}")
                    if message.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto(report_with_history.as_uri(), wait_until="load")
            page.wait_for_function(
                "n => document.querySelectorAll('.plot svg.main-svg').length >= n",
                arg=expected_charts,
                timeout=30_000,
            )
            for section in ("#verdict", "#coverage", "#icp-values", "#retro", "#quality"):
                assert page.locator(section).is_visible(), section
            charts = page.locator(".plot")
            assert charts.count() == expected_charts
            for index in range(expected_charts):
                chart = charts.nth(index)
                chart_id = chart.get_attribute("id")
                chart.scroll_into_view_if_needed()
                drawn = chart.evaluate(
                    # Marks of the traces only: axes and grid lines are paths too.
                    "el => [...el.querySelectorAll('g.trace path')]"
                    ".filter(p => (p.getAttribute('d') || '').length > 4).length"
                )
                assert drawn >= MIN_DRAWN_PATHS, (chart_id, drawn)
                image = Image.open(io.BytesIO(chart.screenshot())).convert("L")
                spread = ImageStat.Stat(image).stddev[0]
                assert image.width > 300 and image.height > 200, (chart_id, image.size)
                assert spread >= MIN_PIXEL_STDDEV, (chart_id, spread)
        finally:
            browser.close()
    assert not problems, problems
