"""The report's charts as plotly figure specs (JSON), from the small aggregated facts.

Each function returns a :class:`Chart` (an id, a title, a caption and the figure's JSON) or
None when the data for it is absent; the template draws every spec with the plotly.js copied
next to the report, so the page needs no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import plotly.graph_objects as go

from dagster_project.report.facts import (
    TIERS,
    AucEstimate,
    CalibrationBin,
    CohortCurve,
    ProfileValue,
    RetroComparison,
    RunOverview,
    ScoreBin,
    TierOutcome,
)

__all__ = [
    "Chart",
    "auc_chart",
    "calibration_chart",
    "cohort_chart",
    "lift_chart",
    "retro_score_chart",
    "retro_tier_chart",
    "score_distribution_chart",
    "tier_outcome_chart",
]

TIER_COLOURS = {"high": "#1b7837", "medium": "#f1a340", "low": "#b2182b"}
_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=60, r=20, t=30, b=50),
    legend=dict(orientation="h", y=-0.2),
    font=dict(family="system-ui, sans-serif", size=12),
)


@dataclass(frozen=True)
class Chart:
    """One chart of the report.

    Attributes:
        chart_id: The HTML id of the chart's element.
        title: Its heading.
        caption: What it shows and how to read it.
        spec: The plotly figure as JSON, safe to embed in a ``<script>`` element.
    """

    chart_id: str
    title: str
    caption: str
    spec: str


def _chart(chart_id: str, title: str, caption: str, figure: go.Figure, height: int) -> Chart:
    figure.update_layout(**_LAYOUT, height=height)
    # "<" escaped so that no value (an attribute value from the data) can close the script.
    spec = json.dumps(json.loads(figure.to_json()), separators=(",", ":")).replace("<", "\\u003c")
    return Chart(chart_id, title, caption, spec)


def lift_chart(profile: list[ProfileValue], per_side: int = 12) -> Chart | None:
    """Lift of the strongest and weakest attribute values, with 95% intervals."""
    if not profile:
        return None
    ranked = sorted(profile, key=lambda v: v.points or 0.0)
    shown = ranked if len(ranked) <= 2 * per_side else ranked[:per_side] + ranked[-per_side:]
    segments = sorted({v.segment for v in shown})
    figure = go.Figure()
    for segment in segments:
        values = [v for v in shown if v.segment == segment]
        label = (lambda v: v.label) if len(segments) == 1 else (lambda v: f"{v.segment}: {v.label}")
        figure.add_trace(
            go.Scatter(
                x=[v.lift for v in values],
                y=[label(v) for v in values],
                mode="markers",
                name=segment,
                marker=dict(
                    size=9,
                    color=["#1b7837" if (v.points or 0) > 0 else "#b2182b" for v in values],
                ),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=[v.lift_high - v.lift for v in values],
                    arrayminus=[v.lift - v.lift_low for v in values],
                    color="#666",
                ),
                customdata=[[v.points, v.share_best, v.share_all] for v in values],
                hovertemplate="%{y}<br>lift %{x:.2f}<br>points %{customdata[0]:+.2f}"
                "<br>best %{customdata[1]:.1%} vs all %{customdata[2]:.1%}<extra></extra>",
            )
        )
    figure.add_vline(x=1, line_dash="dash", line_color="#999")
    figure.update_xaxes(title="lift (share among best customers / share of all accounts)")
    figure.update_yaxes(categoryorder="array", categoryarray=[v.label for v in shown])
    return _chart(
        "chart-lift",
        "Lift per attribute value",
        f"The {len(shown)} values with the most and the fewest points of "
        f"{len(profile)} scored values; bars are 95% intervals. Right of the dashed line: more "
        "common among best customers than in the account base.",
        figure,
        height=max(360, 22 * len(shown) + 80),
    )


def tier_outcome_chart(outcomes: list[TierOutcome]) -> Chart | None:
    """Win rate, customers retained and NRR per tier."""
    if not outcomes:
        return None
    measures = [("win_rate", "win rate"), ("retention", "customers retained"), ("nrr", "NRR 12m")]
    figure = go.Figure()
    for outcome in outcomes:
        figure.add_trace(
            go.Bar(
                x=[label for _, label in measures],
                y=[getattr(outcome, measure) for measure, _ in measures],
                name=f"{outcome.tier} ({outcome.accounts:,} accounts)",
                marker_color=TIER_COLOURS.get(outcome.tier),
                hovertemplate="%{x}: %{y:.1%}<extra></extra>",
            )
        )
    figure.update_layout(barmode="group")
    figure.update_yaxes(tickformat=".0%")
    return _chart(
        "chart-tiers",
        "Win rate, retention and NRR by tier",
        "Win rate: won / closed deals; customers retained: accounts that became customers and "
        "still are; NRR: MRR now / MRR 12 months ago over the customers of then. A missing bar "
        "is a measure the sources cannot give.",
        figure,
        height=380,
    )


def calibration_chart(bins: list[CalibrationBin]) -> Chart | None:
    """Predicted against observed best-customer share per fifth of out-of-fold scores."""
    points = [b for b in bins if b.predicted is not None and b.observed is not None]
    if not points:
        return None
    top = max(max(b.predicted, b.observed) for b in points) * 1.1
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            name="perfect calibration",
            line=dict(dash="dash", color="#999"),
        )  # fmt: skip
    )
    figure.add_trace(
        go.Scatter(
            x=[b.predicted for b in points],
            y=[b.observed for b in points],
            mode="lines+markers+text",
            text=[f"Q{b.quintile}" for b in points],
            textposition="top left",
            name="out of fold",
            marker=dict(size=10, color="#2166ac"),
        )
    )
    figure.update_xaxes(title="mean fit_probability", tickformat=".0%")
    figure.update_yaxes(title="share that are best customers", tickformat=".0%")
    return _chart(
        "chart-calibration",
        "Calibration",
        "Each fifth of the labelled accounts scored out of fold: the probability the score "
        "gave them against how many turned out best customers. On the line: probabilities "
        "mean what they say.",
        figure,
        height=380,
    )


def score_distribution_chart(histogram: list[ScoreBin]) -> Chart | None:
    """Accounts per score bin, stacked by tier (the histogram was counted in DuckDB)."""
    if not histogram:
        return None
    figure = go.Figure()
    for tier in TIERS:
        bins = [b for b in histogram if b.tier == tier]
        if bins:
            figure.add_trace(
                go.Bar(
                    x=[(b.low + b.high) / 2 for b in bins],
                    y=[b.accounts for b in bins],
                    width=[b.high - b.low for b in bins],
                    name=tier,
                    marker_color=TIER_COLOURS[tier],
                    hovertemplate="score %{x}: %{y:,} accounts<extra></extra>",
                )
            )
    figure.update_layout(barmode="stack", bargap=0.05)
    figure.update_xaxes(title="fit score", range=[0, 100])
    figure.update_yaxes(title="accounts")
    return _chart(
        "chart-scores",
        "Score distribution",
        "Accounts per 5-point score bin, coloured by tier.",
        figure,
        height=360,
    )


def cohort_chart(attribute: str, curves: list[CohortCurve], index: int) -> Chart | None:
    """Logo retention after 0, 3, 6 and 12 months for each value of ``attribute``."""
    curves = [c for c in curves if any(r is not None for _, r, _ in c.points)]
    if not curves:
        return None
    figure = go.Figure()
    for curve in curves:
        months = [0] + [m for m, r, _ in curve.points if r is not None]
        retention = [1.0] + [r for _, r, _ in curve.points if r is not None]
        figure.add_trace(
            go.Scatter(
                x=months,
                y=retention,
                mode="lines+markers",
                name=f"{curve.segment_value} ({curve.customers:,})",
                line=dict(dash="dot" if curve.is_low_sample else "solid"),
                hovertemplate=f"{curve.segment_value}: "
                "%{y:.1%} retained after %{x} months<extra></extra>",
            )
        )
    figure.update_xaxes(title="months since becoming a customer", tickvals=[0, 3, 6, 12])
    figure.update_yaxes(title="logo retention", tickformat=".0%")
    return _chart(
        f"chart-cohorts-{index}",
        f"Cohort retention by {attribute}",
        f"Share of customers still customers after 3, 6 and 12 months, every acquisition cohort "
        f"of each {attribute} pooled (fct_segment_cohorts; customers in brackets; dotted: "
        "low sample).",
        figure,
        height=400,
    )


def auc_chart(estimates: list[AucEstimate], threshold: float | None) -> Chart | None:
    """Out-of-fold AUC of every candidate model with its interval and the no-signal bound."""
    if not estimates:
        return None
    figure = go.Figure(
        go.Bar(
            x=[e.auc for e in estimates],
            y=[e.model for e in estimates],
            orientation="h",
            marker_color="#2166ac",
            error_x=dict(
                type="data",
                symmetric=False,
                array=[(e.high - e.auc) if e.high is not None else 0 for e in estimates],
                arrayminus=[(e.auc - e.low) if e.low is not None else 0 for e in estimates],
            ),
            hovertemplate="%{y}: AUC %{x:.3f}<extra></extra>",
        )
    )
    figure.add_vline(x=0.5, line_dash="dot", line_color="#999")
    if threshold is not None:
        figure.add_vline(x=threshold, line_dash="dash", line_color="#b2182b")
    figure.update_xaxes(title="out-of-fold AUC", range=[0.4, 1.0])
    figure.update_yaxes(autorange="reversed")
    return _chart(
        "chart-auc",
        "Out-of-sample validation",
        "Cross-validated AUC of each candidate model with its 95% interval. Dotted: chance "
        "(0.5); dashed: the no-signal bound the lower end of the interval must clear.",
        figure,
        height=max(260, 40 * len(estimates) + 100),
    )


def retro_tier_chart(overview: RunOverview, retros: list[RetroComparison]) -> Chart | None:
    """Tier and ICP shares at each compared date and now."""
    if not retros:
        return None
    runs = [*(r.earlier for r in reversed(retros)), overview]
    runs = list({run.as_of_date: run for run in runs}.values())
    figure = go.Figure()
    for tier in TIERS:
        figure.add_trace(
            go.Bar(
                x=[str(run.as_of_date) for run in runs],
                y=[run.tier_share(tier) for run in runs],
                name=tier,
                marker_color=TIER_COLOURS[tier],
                hovertemplate=f"{tier}: " + "%{y:.1%}<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=[str(run.as_of_date) for run in runs],
            y=[run.icp_share for run in runs],
            mode="lines+markers",
            name="ICP (high, not anti-ICP)",
            line=dict(color="#000"),
        )
    )
    figure.update_layout(barmode="group")
    figure.update_xaxes(type="category", title="as-of date")
    figure.update_yaxes(title="share of accounts", tickformat=".0%")
    return _chart(
        "chart-retro-tiers", "Tier shares over time", "Share of accounts per tier.", figure, 360
    )


def retro_score_chart(histogram_now: list[ScoreBin], retros: list[RetroComparison]) -> Chart | None:
    """Score distributions (shares per 10-point bucket, the PSI's buckets) at each date."""
    if not retros:
        return None
    figure = go.Figure()
    series = [(r.earlier.as_of_date, r.earlier_histogram) for r in reversed(retros)]
    series.append(("now", histogram_now))
    seen = set()
    for label, histogram in series:
        if label in seen:
            continue
        seen.add(label)
        totals: dict[float, int] = {}
        for b in histogram:
            totals[b.low] = totals.get(b.low, 0) + b.accounts
        accounts = sum(totals.values()) or 1
        lows = sorted(totals)
        figure.add_trace(
            go.Scatter(
                x=[low + 5 for low in lows],
                y=[totals[low] / accounts for low in lows],
                mode="lines+markers",
                name=str(label),
            )
        )
    figure.update_xaxes(title="fit score (10-point buckets)", range=[0, 100])
    figure.update_yaxes(title="share of accounts", tickformat=".0%")
    return _chart(
        "chart-retro-scores",
        "Score distribution over time",
        "Share of accounts per 10-point bucket: the buckets of the PSI.",
        figure,
        360,
    )
