"""A second synthetic landing zone: known ICP structures planted behind realistic exports.

This generator is a test bed for the learned ICP that the method was not designed around. It
writes one export folder, ``<out>/<end_date>/``, holding the full history (about three years)
in its timestamps, in the layout and column rules of ``schemas/<source>/<entity>.yaml``:

* ``crm/accounts``: id (``A-000001``), name, domain, industry (12 values), employee_count
  (log-normal, 5..20,000), annual_revenue (USD, from size), currency (always ``USD``), country
  (ISO-2, 10 values), business_model, deployment, tech_stack (``;``-separated, 15 items, each
  with its own prevalence), funding_stage, last_funding_at, open_roles, churned_at,
  created_at, updated_at, is_deleted. About 40 % of the accounts never buy (prospects).
* ``crm/opportunities``: a won deal at every customer's start (plus a won expansion deal for
  an add-on, and sometimes a lost deal before the win); lost and open deals for prospects.
* ``crm/activities``: a few touches per account over its life.
* ``billing/subscriptions``: one main subscription per customer (``ended_at`` = churn), its MRR
  changing at every anniversary (expansion or contraction), and for some an add-on
  subscription; ``billing/invoices``: one invoice per subscription and month.
* ``support/tickets`` (priority, category, solved_at, CSAT on part of the solved tickets),
  ``product/usage`` (per day and feature, the last 90 days) and ``feedback/nps_responses``
  (about every six months), for customers.
* ``<out>/_truth/planted_segments.csv``: ``account_id, planted_segment, latent_fit``, where
  ``latent_fit`` is the account's standardised latent fit ``z`` and ``planted_segment`` is
  ``icp`` for the top 20 % of ``z`` over all accounts, ``anti_icp`` for the bottom 10 %,
  ``other`` otherwise. The pipeline ignores the ``_truth`` folder.

**The latent fit.** Every account's attributes are drawn independently of one another (except
that funding stage and revenue follow size), the same for every structure with the same seed.
The structure then decides how the attributes make up ``z``: ``z`` is the structure's signal,
standardised, times ``sqrt(0.7)`` plus independent noise times ``sqrt(0.3)`` (so the
attributes explain about 70 % of the latent fit), standardised again.

* ``interactions``: an industry effect that depends on the deployment (fintech + cloud strongly
  good, fintech + on_prem bad; healthcare, manufacturing and telecom the other way round), and
  a business model x size interaction (b2b_saas good at 50-2,000 employees and poor outside,
  marketplace good from 1,000, services good below 100); main effects (country, funding) are
  modest. An additive model sees only the marginal averages of these effects.
* ``size_peak``: a non-monotone size effect, a bump peaking at 400 employees (200-800 good,
  very small and very large accounts poor), plus a few industries (software and healthcare up,
  retail and education down).
* ``tech_and_size``: the tech stack and size only: two or more of {snowflake, dbt, segment,
  looker} strongly good (one a little), ``oracle`` bad, and a mild monotone size effect.
  Industry, country, business model, deployment and funding have no effect of their own
  (funding stage and revenue follow size, so they carry some of size's signal indirectly).
* ``no_signal``: ``z`` is drawn independently of every attribute, and every missingness is
  independent of ``z`` too: no attribute says anything about any outcome. The truth file is
  still written (the top 20 % of a ``z`` that drives outcomes but not attributes).

**Outcomes follow the latent fit** through probabilistic links (never deterministic):

* becoming a customer (a won deal): ``P = sigmoid(0.5 + 1.3 z)``, about 60 % of accounts;
  prospects get lost deals (60 %, some two) and open ones (20 %), and some customers lost a
  deal before their win (more often for poor fit), so win rates rise with ``z``.

After the sale, a customer's outcomes follow its propensity ``q = 0.7 z + 0.71 luck``
(``luck`` standard normal, shared by all its outcomes), each with its own noise on top:

* churn: ``P(churn within 90 days) = sigmoid(-2.6 - 1.3 q)``, afterwards a constant monthly
  hazard ``0.014 exp(-0.9 q)``; churn ends every subscription of the account (and is recorded
  as the account's ``churned_at``);
* revenue: the starting MRR follows size (``~ employees^0.3``); at every anniversary MRR changes
  by ``0.06 + 0.14 q`` plus noise (contraction for poor fit), and an add-on subscription (with
  a won expansion deal) is bought with ``P = sigmoid(-1.6 + q)``; invoices price every month
  (a few uncollectible ones, more for poor fit);
* support: tickets arrive in proportion to the MRR billed (so tickets per 1k MRR does not
  depend on size) at a rate ``0.9 exp(-0.55 q)`` per 1k MRR-month, with account-level noise;
  CSAT (on 45 % of solved tickets), priority and resolution time get better with ``q``;
* product usage: the share of active days in the last 90 days and the number of features used
  rise with ``q``; NPS (a survey about every six months, answered half the time) scores
  ``7.2 + 1.5 q`` plus noise, cut to 0-10.

The label noise (``luck`` and each outcome's own noise) keeps it realistic: roughly 15-25 % of
the pipeline's best customers are "lucky", with a latent fit outside the top 30 % of accounts
(a third are outside the planted ICP, under 10 % below the median), and an oracle that knew
``z`` tells the pipeline's best from its worst customers with an AUC around 0.85, not 1.

**Missingness depends on fit** (except in ``no_signal``): employee_count is missing for about
5 % of high-fit and 20 % of low-fit accounts; industry for 8 % of all accounts, and 15 % of the
industries present are written in Title Case (``Financial Services``) or with trailing spaces,
which the pipeline canonicalises; country, business model, deployment, funding stage, revenue,
open roles and tech stack are missing at small random rates. The latent fit is always computed
from the true attributes, missing or not.

Everything is vectorised (numpy; files written through DuckDB) and deterministic for the same
arguments: 20,000 accounts take a few seconds. No timestamp is on or after ``end_date``
(midnight UTC), and every row passes the contract's rules (nothing is quarantined).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

__all__ = [
    "STRUCTURES",
    "StructuredSummary",
    "generate_structured_landing_zone",
]

STRUCTURES: tuple[str, ...] = ("interactions", "size_peak", "tech_and_size", "no_signal")

ICP_SHARE = 0.20
ANTI_ICP_SHARE = 0.10
HISTORY_DAYS = 3 * 365
USAGE_WINDOW_DAYS = 90
SIGNAL_SHARE = 0.7  # share of the latent fit's variance that the attributes explain
LUCK_FIT = 0.7  # weight of the latent fit in the outcome propensity (the rest is luck)

INDUSTRIES = (
    "software",
    "fintech",
    "healthcare",
    "financial_services",
    "ecommerce",
    "manufacturing",
    "education",
    "media",
    "logistics",
    "retail",
    "real_estate",
    "telecom",
)
INDUSTRY_P = (0.15, 0.10, 0.10, 0.08, 0.09, 0.09, 0.07, 0.07, 0.07, 0.07, 0.05, 0.06)
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "SE", "ES", "IN")
COUNTRY_P = (0.34, 0.12, 0.10, 0.08, 0.06, 0.08, 0.06, 0.05, 0.05, 0.06)
BUSINESS_MODELS = ("b2b_saas", "agency", "ecommerce", "services", "marketplace", "nonprofit")
BUSINESS_MODEL_P = (0.32, 0.12, 0.16, 0.18, 0.12, 0.10)
DEPLOYMENTS = ("cloud", "hybrid", "on_prem")
DEPLOYMENT_P = (0.55, 0.25, 0.20)
FUNDING_STAGES = ("bootstrapped", "seed", "series_a", "series_b", "series_c_plus", "public")
FUNDING_P = (0.25, 0.15, 0.18, 0.15, 0.15, 0.12)
TECH_ITEMS = {
    "aws": 0.50,
    "gcp": 0.20,
    "azure": 0.22,
    "salesforce": 0.40,
    "hubspot": 0.32,
    "slack": 0.60,
    "jira": 0.45,
    "zendesk": 0.25,
    "snowflake": 0.26,
    "dbt": 0.22,
    "segment": 0.20,
    "looker": 0.18,
    "tableau": 0.20,
    "oracle": 0.15,
    "sap": 0.12,
}
MODERN_DATA_STACK = ("snowflake", "dbt", "segment", "looker")

# interactions: industry x deployment (cloud, hybrid, on_prem).
INDUSTRY_BY_DEPLOYMENT = {
    "software": (0.9, 0.3, -0.7),
    "fintech": (1.6, 0.2, -1.4),
    "healthcare": (-0.6, 0.3, 0.9),
    "financial_services": (-0.4, 0.5, 0.6),
    "ecommerce": (0.6, 0.0, -0.8),
    "manufacturing": (-0.7, 0.2, 0.7),
    "education": (0.2, -0.1, -0.4),
    "media": (0.4, 0.0, -0.5),
    "logistics": (-0.3, 0.6, 0.2),
    "retail": (0.1, -0.2, -0.3),
    "real_estate": (-0.2, 0.0, -0.2),
    "telecom": (-0.5, 0.2, 0.8),
}
COUNTRY_EFFECT = {"US": 0.15, "GB": 0.10, "IN": -0.15}
FUNDING_EFFECT = {"series_a": 0.10, "series_b": 0.10, "bootstrapped": -0.05}
SIZE_PEAK_INDUSTRY_EFFECT = {"software": 0.5, "healthcare": 0.4, "retail": -0.5, "education": -0.3}

ACTIVITY_TYPES = (
    "email_open",
    "email_reply",
    "content_download",
    "webinar",
    "demo_request",
    "pricing_page_visit",
    "meeting",
)
ACTIVITY_P = (0.35, 0.12, 0.15, 0.08, 0.07, 0.13, 0.10)
LOST_REASONS = ("price", "competitor", "no_budget", "timing", "no_decision", "missing_feature")
TICKET_CATEGORIES = ("how_to", "bug", "billing", "integration", "feature_request", "outage")
TICKET_CATEGORY_P = (0.32, 0.25, 0.12, 0.14, 0.12, 0.05)
PRIORITIES = ("low", "normal", "high", "urgent")
FEATURES = (
    "dashboards",
    "reports",
    "alerts",
    "api",
    "integrations",
    "exports",
    "workflows",
    "admin",
)
FEATURE_BASE = (0.6, -0.8, -1.5, -1.9, -1.7, -2.2, -2.4, -3.0)  # log-odds of use on an active day

NAME_FIRST = (
    "Bright", "Blue", "North", "Silver", "Quantum", "Cedar", "Iron", "Lumen", "Nova", "Pine",
    "Red", "Stone", "Swift", "True", "Vector", "Wild", "Zen", "Amber", "Arc", "Bold",
    "Clear", "Core", "Delta", "Echo", "First", "Golden", "Harbor", "High", "Key", "Lake",
    "Maple", "Meta", "Nimble", "Orbit", "Prime", "Rapid", "River", "Solar", "Summit", "Terra",
)  # fmt: skip
NAME_SECOND = (
    "loop", "path", "wave", "field", "works", "stack", "bridge", "point", "line", "forge",
    "leaf", "gate", "sight", "scale", "mark", "shift", "base", "flow", "grid", "peak",
    "ridge", "spark", "vale", "view", "wing", "yard", "bay", "cloud", "hub", "labs",
    "logic", "metrics", "nest", "pulse", "quest", "rock", "sail", "tide", "trail", "vista",
)  # fmt: skip
NAME_SUFFIX = (
    "Inc.", "Ltd", "GmbH", "Group", "& Co.", "Partners, LLC", "Systems", "Technologies",
    "Analytics", "Health", "Logistics", "Media",
)  # fmt: skip


DOMAIN_ENDINGS = (
    ".com", ".io", ".de", ".co", ".net", ".co.uk", ".tech", ".ai", ".app", ".health", ".dev",
    ".media",
)  # fmt: skip


@dataclass(frozen=True)
class StructuredSummary:
    """What :func:`generate_structured_landing_zone` wrote."""

    structure: str
    accounts: int
    seed: int
    files_written: tuple[str, ...]  # paths relative to ``out_dir``
    planted_icp_share: float
    customers: int = 0
    row_counts: dict[str, int] = field(default_factory=dict)  # per landing entity


def generate_structured_landing_zone(
    out_dir: Path,
    *,
    structure: str,
    accounts: int = 3000,
    seed: int = 1,
    end_date: date = date(2026, 11, 20),
) -> StructuredSummary:
    """Write a landing zone with the planted ``structure`` (one of :data:`STRUCTURES`).

    ``out_dir/<end_date>/`` and ``out_dir/_truth/`` are replaced; nothing else is touched.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; choose one of {STRUCTURES}")
    if accounts < 20:
        raise ValueError("accounts must be at least 20")
    out_dir = Path(out_dir)
    attr_rng, fit_rng, outcome_rng, text_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(4)
    )
    end_ts = np.datetime64(end_date.isoformat(), "s")

    attrs = _draw_attributes(attr_rng, accounts)
    z = _latent_fit(fit_rng, attrs, structure)
    tables = _outcomes(outcome_rng, attrs, z, end_ts.astype("datetime64[D]"))
    tables["crm/accounts"] = _accounts_table(text_rng, attrs, z, tables, structure, end_ts)
    truth = _truth_table(attrs["account_id"], z)

    export_dir = out_dir / end_date.isoformat()
    truth_dir = out_dir / "_truth"
    for folder in (export_dir, truth_dir):
        if folder.exists():
            shutil.rmtree(folder)
    order = (
        "crm/accounts",
        "crm/opportunities",
        "crm/activities",
        "billing/subscriptions",
        "billing/invoices",
        "support/tickets",
        "product/usage",
        "feedback/nps_responses",
    )
    written: list[str] = []
    counts: dict[str, int] = {}
    con = duckdb.connect()
    try:
        for entity in order:
            frame = _to_timestamps(tables[entity], end_ts)
            path = export_dir / f"{entity}.csv"
            _write_csv(con, frame, path)
            written.append(path.relative_to(out_dir).as_posix())
            counts[entity] = len(frame)
        truth_path = truth_dir / "planted_segments.csv"
        _write_csv(con, truth, truth_path)
        written.append(truth_path.relative_to(out_dir).as_posix())
    finally:
        con.close()
    return StructuredSummary(
        structure=structure,
        accounts=accounts,
        seed=seed,
        files_written=tuple(written),
        planted_icp_share=float((truth["planted_segment"] == "icp").mean()),
        customers=int(tables["_customers"]),
        row_counts=counts,
    )


# --------------------------------------------------------------------------------------------
# Attributes and latent fit


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / (std if std > 0 else 1.0)


def _draw_attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    log_emp = rng.normal(np.log(120.0), 1.5, n)
    employees = np.clip(np.round(np.exp(log_emp)), 5, 20000).astype(np.int64)
    # Funding follows size loosely: a size score plus noise, cut at the stages' quantiles.
    funding_score = 0.6 * _standardise(np.log(employees)) + 0.8 * rng.standard_normal(n)
    cuts = np.quantile(funding_score, np.cumsum(FUNDING_P)[:-1])
    funding = np.searchsorted(cuts, funding_score)
    tech = rng.random((n, len(TECH_ITEMS))) < np.array(list(TECH_ITEMS.values()))
    return {
        "account_id": np.char.add("A-", np.char.zfill(np.arange(1, n + 1).astype(str), 6)),
        "industry": rng.choice(len(INDUSTRIES), n, p=INDUSTRY_P),
        "country": rng.choice(len(COUNTRIES), n, p=COUNTRY_P),
        "employees": employees,
        "revenue_per_employee": np.exp(rng.normal(np.log(140_000.0), 0.5, n)),
        "business_model": rng.choice(len(BUSINESS_MODELS), n, p=BUSINESS_MODEL_P),
        "deployment": rng.choice(len(DEPLOYMENTS), n, p=DEPLOYMENT_P),
        "funding": funding,
        "tech": tech,
    }


def _lookup(names: tuple[str, ...], effects: dict[str, float], codes: np.ndarray) -> np.ndarray:
    table = np.array([effects.get(name, 0.0) for name in names])
    return table[codes]


def _structure_signal(attrs: dict[str, np.ndarray], structure: str) -> np.ndarray:
    emp = attrs["employees"].astype(float)
    industry = attrs["industry"]
    if structure == "interactions":
        matrix = np.array([INDUSTRY_BY_DEPLOYMENT[name] for name in INDUSTRIES])
        signal = matrix[industry, attrs["deployment"]]
        model = np.array(BUSINESS_MODELS)[attrs["business_model"]]
        size_fit = np.select(
            [
                model == "b2b_saas",
                model == "marketplace",
                model == "services",
                model == "ecommerce",
                model == "agency",
                model == "nonprofit",
            ],
            [
                np.where((emp >= 50) & (emp <= 2000), 0.9, -0.5),
                np.where(emp >= 1000, 0.8, np.where(emp < 100, -0.6, 0.0)),
                np.where(emp < 100, 0.5, -0.3),
                np.where((emp >= 100) & (emp <= 1000), 0.3, -0.1),
                np.full(emp.shape, -0.4),
                np.full(emp.shape, -0.3),
            ],
        )
        signal = signal + size_fit
        signal = signal + _lookup(COUNTRIES, COUNTRY_EFFECT, attrs["country"])
        return signal + _lookup(FUNDING_STAGES, FUNDING_EFFECT, attrs["funding"])
    if structure == "size_peak":
        bump = 1.6 * np.exp(-((np.log(emp) - np.log(400.0)) ** 2) / (2 * 0.8**2))
        return bump + _lookup(INDUSTRIES, SIZE_PEAK_INDUSTRY_EFFECT, industry)
    if structure == "tech_and_size":
        items = list(TECH_ITEMS)
        tech = attrs["tech"]
        modern = tech[:, [items.index(item) for item in MODERN_DATA_STACK]].sum(axis=1)
        oracle = tech[:, items.index("oracle")]
        size = np.clip(np.log10(emp) - 2.0, -1.3, 2.3)
        return (
            1.4 * (modern >= 2)
            + 0.35 * (modern == 1)
            + 0.25 * (modern >= 3)
            - 1.1 * oracle
            + 0.3 * size
        )
    raise ValueError(structure)


def _latent_fit(rng: np.random.Generator, attrs: dict[str, np.ndarray], structure: str):
    n = len(attrs["account_id"])
    noise = rng.standard_normal(n)
    if structure == "no_signal":
        return _standardise(noise)
    signal = _standardise(_structure_signal(attrs, structure))
    return _standardise(np.sqrt(SIGNAL_SHARE) * signal + np.sqrt(1 - SIGNAL_SHARE) * noise)


def _truth_table(account_ids: np.ndarray, z: np.ndarray) -> pd.DataFrame:
    n = len(z)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-z, kind="stable")] = np.arange(n)  # 0 = best
    segment = np.where(
        rank < round(ICP_SHARE * n),
        "icp",
        np.where(rank >= n - round(ANTI_ICP_SHARE * n), "anti_icp", "other"),
    )
    return pd.DataFrame(
        {"account_id": account_ids, "planted_segment": segment, "latent_fit": np.round(z, 6)}
    )


# --------------------------------------------------------------------------------------------
# Outcomes. Times are float days relative to end_date's midnight (negative = before it);
# every event is kept strictly before 0.


def _explode(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent index and 0-based ordinal within the parent for ``counts`` children each."""
    counts = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    ordinal = np.arange(counts.sum()) - np.repeat(starts, counts)
    return parent, ordinal


def _ids(prefix: str, count: int, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(1, count + 1).astype(str), width))


_LAST = -1.0 / 86400  # one second before end_date's midnight


def _outcomes(
    rng: np.random.Generator, attrs: dict[str, np.ndarray], z: np.ndarray, end_day: np.datetime64
) -> dict:
    n = len(z)
    ids = attrs["account_id"]
    # outcome propensity: fit plus the account's luck
    q = LUCK_FIT * z + np.sqrt(1 - LUCK_FIT**2) * rng.standard_normal(n)
    emp = attrs["employees"].astype(float)

    # ---- who buys, and when
    is_customer = rng.random(n) < _sigmoid(0.5 + 1.3 * z)
    cust = np.flatnonzero(is_customer)
    pros = np.flatnonzero(~is_customer)
    nc = len(cust)
    qc = q[cust]
    start = rng.uniform(-HISTORY_DAYS + 30, -20, nc)
    cycle = 14 + np.exp(rng.normal(np.log(35), 0.5, nc)) * np.exp(-0.15 * qc)
    won_created = start - cycle
    created = np.empty(n)
    created[cust] = won_created - rng.uniform(1, 90, nc)
    created[pros] = rng.uniform(-HISTORY_DAYS, -10, len(pros))

    # ---- churn: an early-churn chance, then a constant monthly hazard
    early = rng.random(nc) < _sigmoid(-2.6 - 1.3 * qc)
    hazard_per_day = 0.014 * np.exp(-0.9 * qc) / 30.44
    churn_after = np.where(
        early, rng.uniform(15, 88, nc), 90 + rng.exponential(1.0 / hazard_per_day)
    )
    churn_at = start + churn_after
    churned = churn_at < _LAST
    stop = np.where(churned, churn_at, 0.0)  # services run until churn or the export

    # ---- subscriptions: main (all customers) and add-on (some)
    mrr0 = np.round(110 * emp[cust] ** 0.3 * np.exp(rng.normal(0, 0.35, nc)), 2)
    growth = np.clip(0.06 + 0.14 * qc + 0.10 * rng.standard_normal(nc), -0.35, 0.6)
    tenure = stop - start
    has_addon = (rng.random(nc) < _sigmoid(-1.6 + qc)) & (tenure > 60)
    addon_start = start + tenure * rng.uniform(0.2, 0.9, nc)
    addon_mrr = np.round(mrr0 * rng.uniform(0.15, 0.5, nc), 2)

    sub_cust = np.concatenate([np.arange(nc), np.flatnonzero(has_addon)])
    sub_is_addon = np.concatenate([np.zeros(nc, bool), np.ones(has_addon.sum(), bool)])
    sub_start = np.concatenate([start, addon_start[has_addon]])
    sub_base = np.concatenate([mrr0, addon_mrr[has_addon]])
    sub_growth = np.where(sub_is_addon, 0.0, growth[sub_cust])
    sub_stop = stop[sub_cust]
    ns = len(sub_cust)
    sub_ids = _ids("S-", ns, 7)

    # invoices: one per subscription and calendar month, from the start month to the stop
    inv_sub, inv_k, inv_issued = _monthly_invoices(sub_start, sub_stop, end_day)
    inv_amount = np.round(sub_base[inv_sub] * (1 + sub_growth[inv_sub]) ** (inv_k // 12), 2)
    last_k = np.zeros(ns, dtype=np.int64)
    np.maximum.at(last_k, inv_sub, inv_k)
    sub_mrr = np.round(sub_base * (1 + sub_growth) ** (last_k // 12), 2)
    last_change = sub_start + 365.0 * (last_k // 12)
    sub_canceled = churned[sub_cust]
    sub_updated = np.where(sub_canceled, sub_stop, np.minimum(last_change, _LAST))

    subscriptions = pd.DataFrame(
        {
            "subscription_id": sub_ids,
            "account_id": ids[cust][sub_cust],
            "plan": np.where(
                sub_is_addon,
                "addon_seats",
                np.where(
                    mrr0[sub_cust] < 400,
                    "starter",
                    np.where(mrr0[sub_cust] < 1200, "growth", "enterprise"),
                ),
            ),
            "mrr": sub_mrr,
            "currency": "USD",
            "started_at": sub_start,
            "ended_at": np.where(sub_canceled, sub_stop, np.nan),
            "status": np.where(sub_canceled, "canceled", "active"),
            "updated_at": sub_updated,
            "is_deleted": False,
        }
    )

    ni = len(inv_sub)
    q_inv = qc[sub_cust[inv_sub]]
    u = rng.random(ni)
    uncollectible = u < _sigmoid(-4.2 - 0.9 * q_inv)
    void = (~uncollectible) & (rng.random(ni) < 0.004)
    paid_at = inv_issued + rng.uniform(0.1, 12, ni)
    unpaid = paid_at >= _LAST
    inv_status = np.where(
        uncollectible, "uncollectible", np.where(void, "void", np.where(unpaid, "open", "paid"))
    )
    is_paid = inv_status == "paid"
    invoices = pd.DataFrame(
        {
            "invoice_id": _ids("I-", ni, 8),
            "account_id": ids[cust][sub_cust[inv_sub]],
            "subscription_id": sub_ids[inv_sub],
            "issued_at": inv_issued,
            "amount": inv_amount,
            "currency": "USD",
            "status": inv_status,
            "paid_at": np.where(is_paid, paid_at, np.nan),
            "updated_at": np.where(
                is_paid, paid_at, np.minimum(inv_issued + np.where(unpaid, 0, 30), _LAST)
            ),
        }
    )

    # ---- opportunities
    opp_parts = []
    # won at each customer's start
    opp_parts.append(
        {
            "account": cust,
            "created": won_created,
            "closed": start,
            "stage": np.full(nc, "won"),
            "amount": np.round(12 * mrr0, 2),
        }
    )
    # won expansion deal for the add-on
    addon_idx = np.flatnonzero(has_addon)
    exp_created = addon_start[addon_idx] - rng.uniform(5, 40, len(addon_idx))
    exp_created = np.maximum(exp_created, start[addon_idx] + 1)
    opp_parts.append(
        {
            "account": cust[addon_idx],
            "created": exp_created,
            "closed": addon_start[addon_idx],
            "stage": np.full(len(addon_idx), "won"),
            "amount": np.round(12 * addon_mrr[addon_idx], 2),
        }
    )
    # a lost deal before some customers' win
    lost_first = np.flatnonzero(rng.random(nc) < _sigmoid(-1.2 - 0.5 * qc))
    span = won_created[lost_first] - created[cust[lost_first]]
    lf_created = created[cust[lost_first]] + span * rng.uniform(0.0, 0.4, len(lost_first))
    lf_closed = lf_created + (won_created[lost_first] - lf_created) * rng.uniform(
        0.4, 0.9, len(lost_first)
    )
    opp_parts.append(
        {
            "account": cust[lost_first],
            "created": lf_created,
            "closed": lf_closed,
            "stage": np.full(len(lost_first), "lost"),
            "amount": np.round(12 * mrr0[lost_first] * rng.uniform(0.8, 1.3, len(lost_first)), 2),
        }
    )
    # prospects: lost deals (one or two) and open deals
    npros = len(pros)
    n_lost = (rng.random(npros) < 0.6).astype(int) + (rng.random(npros) < 0.12).astype(int)
    lp, _ = _explode(n_lost)
    lp_acc = pros[lp]
    lp_created = created[lp_acc] + rng.uniform(0, 1, len(lp)) * (-30 - created[lp_acc]).clip(0)
    lp_closed = np.minimum(lp_created + 14 + np.exp(rng.normal(np.log(40), 0.6, len(lp))), _LAST)
    est_mrr = 110 * emp[lp_acc] ** 0.3 * np.exp(rng.normal(0, 0.35, len(lp)))
    opp_parts.append(
        {
            "account": lp_acc,
            "created": lp_created,
            "closed": lp_closed,
            "stage": np.full(len(lp), "lost"),
            "amount": np.round(12 * est_mrr, 2),
        }
    )
    open_p = pros[rng.random(npros) < 0.2]
    op_created = np.maximum(created[open_p], -150) + rng.uniform(0, 1, len(open_p)) * (
        -1 - np.maximum(created[open_p], -150)
    ).clip(0)
    opp_parts.append(
        {
            "account": open_p,
            "created": op_created,
            "closed": np.full(len(open_p), np.nan),
            "stage": np.full(len(open_p), "open"),
            "amount": np.round(12 * 110 * emp[open_p] ** 0.3, 2),
        }
    )
    opp = {key: np.concatenate([part[key] for part in opp_parts]) for key in opp_parts[0]}
    order = np.lexsort((opp["created"], opp["account"]))
    opp = {key: value[order] for key, value in opp.items()}
    no = len(order)
    is_lost = opp["stage"] == "lost"
    opportunities = pd.DataFrame(
        {
            "opportunity_id": _ids("O-", no, 7),
            "account_id": ids[opp["account"]],
            "created_at": opp["created"],
            "closed_at": opp["closed"],
            "stage": opp["stage"],
            "amount": opp["amount"],
            "currency": "USD",
            "lost_reason": np.where(
                is_lost, np.array(LOST_REASONS)[rng.integers(0, len(LOST_REASONS), no)], None
            ),
            "updated_at": np.where(np.isnan(opp["closed"]), opp["created"], opp["closed"]),
            "is_deleted": False,
        }
    )

    # ---- activities: a few touches over each account's life
    n_act = rng.poisson(3.5, n)
    ap, _ = _explode(n_act)
    act_time = created[ap] + rng.uniform(0, 1, len(ap)) * (_LAST - created[ap])
    activities = pd.DataFrame(
        {
            "activity_id": _ids("ACT-", len(ap), 7),
            "account_id": ids[ap],
            "occurred_at": act_time,
            "activity_type": np.array(ACTIVITY_TYPES)[
                rng.choice(len(ACTIVITY_TYPES), len(ap), p=ACTIVITY_P)
            ],
            "updated_at": act_time,
        }
    )
    order = np.lexsort((activities["occurred_at"].to_numpy(), ap))
    activities = activities.iloc[order].reset_index(drop=True)
    activities["activity_id"] = _ids("ACT-", len(ap), 7)

    # ---- support tickets: in proportion to the MRR billed, fewer for good fit
    billed = np.zeros(nc)
    np.add.at(billed, sub_cust[inv_sub], inv_amount)
    ticket_rate = 0.9 * np.exp(-0.55 * qc + 0.35 * rng.standard_normal(nc))  # per 1k MRR-month
    n_tickets = rng.poisson(ticket_rate * billed / 1000.0)
    tp, _ = _explode(n_tickets)
    nt = len(tp)
    q_t = qc[tp]
    t_created = start[tp] + rng.uniform(0, 1, nt) * (np.minimum(stop[tp], _LAST) - start[tp])
    prio_score = -0.5 * q_t + rng.standard_normal(nt)
    priority = np.array(PRIORITIES)[np.searchsorted(np.array([-0.55, 0.75, 1.6]), prio_score)]
    resolve_hours = np.exp(rng.normal(np.log(16), 1.0, nt) - 0.25 * q_t)
    t_solved = t_created + resolve_hours / 24.0
    solved = t_solved < _LAST
    has_csat = solved & (rng.random(nt) < 0.45)
    csat = np.clip(np.round(3.7 + 0.75 * q_t + rng.normal(0, 0.9, nt)), 1, 5)
    tickets = pd.DataFrame(
        {
            "ticket_id": _ids("T-", nt, 7),
            "account_id": ids[cust][tp],
            "created_at": t_created,
            "solved_at": np.where(solved, t_solved, np.nan),
            "priority": priority,
            "status": np.where(solved, "solved", "open"),
            "category": np.array(TICKET_CATEGORIES)[
                rng.choice(len(TICKET_CATEGORIES), nt, p=TICKET_CATEGORY_P)
            ],
            "csat": pd.array(np.where(has_csat, csat, np.nan), dtype="Float64").astype("Int64"),
            "updated_at": np.where(solved, t_solved, t_created),
        }
    )
    order = np.lexsort((tickets["created_at"].to_numpy(), tp))
    tickets = tickets.iloc[order].reset_index(drop=True)
    tickets["ticket_id"] = _ids("T-", nt, 7)

    # ---- product usage: per day and feature over the last USAGE_WINDOW_DAYS
    first_day = np.maximum(np.ceil(start), -USAGE_WINDOW_DAYS)
    last_day = np.where(churned, np.floor(stop) - 1, -1)  # days fully before churn / export
    n_days = np.clip(last_day - first_day + 1, 0, None).astype(np.int64)
    up, uk = _explode(n_days)
    day = first_day[up] + uk
    p_active = _sigmoid(0.1 + 1.2 * qc + 0.4 * rng.standard_normal(nc))
    active = rng.random(len(up)) < p_active[up]
    up, day = up[active], day[active]
    feature_logit = np.array(FEATURE_BASE)[None, :] + 0.6 * qc[up][:, None]
    used = rng.random((len(up), len(FEATURES))) < _sigmoid(feature_logit)
    used[:, 0] |= ~used.any(axis=1)  # an active day uses at least the first feature
    row, feat = np.nonzero(used)
    nu = len(row)
    usage = pd.DataFrame(
        {
            "account_id": ids[cust][up[row]],
            "occurred_at": day[row],
            "feature": np.array(FEATURES)[feat],
            "quantity": (1 + rng.poisson(np.exp(1.0 + 0.3 * qc[up[row]]), nu)).astype(float),
        }
    )

    # ---- NPS: a survey about every six months from day 60, answered half the time
    n_surveys = np.where(tenure > 60, np.floor((tenure - 60) / 180) + 1, 0).astype(np.int64)
    sp, sk = _explode(n_surveys)
    responded = start[sp] + 60 + 180 * sk + rng.uniform(0, 14, len(sp))
    answered = (rng.random(len(sp)) < 0.5) & (responded < np.minimum(stop[sp], _LAST))
    sp, responded = sp[answered], responded[answered]
    score = np.clip(np.round(7.2 + 1.5 * qc[sp] + rng.normal(0, 1.6, len(sp))), 0, 10)
    nps = pd.DataFrame(
        {
            "account_id": ids[cust][sp],
            "responded_at": np.round(responded * 86400) / 86400,
            "score": score.astype(np.int64),
        }
    )

    return {
        "crm/opportunities": opportunities,
        "crm/activities": activities,
        "billing/subscriptions": subscriptions,
        "billing/invoices": invoices,
        "support/tickets": tickets,
        "product/usage": usage,
        "feedback/nps_responses": nps,
        "_created": created,
        "_churned_at": _scatter(n, cust, np.where(churned, stop, np.nan)),
        "_customers": nc,
    }


def _scatter(n: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan)
    out[index] = values
    return out


def _monthly_invoices(
    start: np.ndarray, stop: np.ndarray, end_day: np.datetime64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One invoice per calendar month from each subscription's start until it stops.

    Times are relative days; the calendar is end_day's. An invoice keeps the start's day of
    month (capped at the 28th) and time of day. Returns (subscription index, month number k,
    issue time in relative days), only invoices issued before the stop and the export.
    """
    start_day = np.floor(start)
    start_frac = start - start_day
    start_date = end_day + start_day.astype(np.int64).astype("timedelta64[D]")
    start_month = start_date.astype("datetime64[M]")
    day_of_month = (start_date - start_month.astype("datetime64[D]")).astype(np.int64)
    day_of_month = np.minimum(day_of_month, 27)
    stop_date = end_day + np.floor(stop).astype(np.int64).astype("timedelta64[D]")
    months = (stop_date.astype("datetime64[M]") - start_month).astype(np.int64) + 1
    sub, k = _explode(np.maximum(months, 1))
    issued_date = (start_month[sub] + k.astype("timedelta64[M]")).astype("datetime64[D]") + (
        day_of_month[sub].astype("timedelta64[D]")
    )
    # The first invoice is issued at the start (a start on the 29th-31st is not pulled back).
    issued = np.maximum((issued_date - end_day).astype(np.int64) + start_frac[sub], start[sub])
    keep = (issued < stop[sub]) & (issued < _LAST)
    return sub[keep], k[keep], issued[keep]


# --------------------------------------------------------------------------------------------
# Accounts table


def _accounts_table(
    rng: np.random.Generator,
    attrs: dict[str, np.ndarray],
    z: np.ndarray,
    tables: dict,
    structure: str,
    end_ts: np.datetime64,
) -> pd.DataFrame:
    n = len(z)
    no_signal = structure == "no_signal"
    created = tables["_created"]

    combos = len(NAME_FIRST) * len(NAME_SECOND) * len(NAME_SUFFIX)
    pick = rng.permutation(combos)[:n] if n <= combos else rng.integers(0, combos, n)
    first = np.array(NAME_FIRST)[pick // (len(NAME_SECOND) * len(NAME_SUFFIX))]
    second = np.array(NAME_SECOND)[(pick // len(NAME_SUFFIX)) % len(NAME_SECOND)]
    suffix_idx = pick % len(NAME_SUFFIX)
    suffix = np.array(NAME_SUFFIX)[suffix_idx]
    stem = np.char.add(first, second)
    name = np.char.add(np.char.add(stem, " "), suffix)
    tld = np.array(DOMAIN_ENDINGS)[suffix_idx]  # one ending per suffix: domains stay unique
    domain = np.char.add(np.char.lower(stem), tld)
    if n > combos:  # names repeat: keep the names, number the domains
        numbered = np.char.add(np.char.lower(stem), np.char.replace(attrs["account_id"], "A-", ""))
        domain = np.char.add(numbered, tld)

    def missing(rate: float) -> np.ndarray:
        return rng.random(n) < rate

    # employee_count: missing for ~5 % of high-fit and ~20 % of low-fit accounts
    emp_missing_p = 0.125 if no_signal else 0.05 + 0.15 * _sigmoid(-2.5 * z)
    emp_missing = rng.random(n) < emp_missing_p
    employees = pd.array(attrs["employees"], dtype="Int64")
    employees[emp_missing] = pd.NA

    industry = np.array(INDUSTRIES, dtype=object)[attrs["industry"]]
    style = rng.random(n)
    title = np.array([name.replace("_", " ").title() for name in INDUSTRIES], dtype=object)
    industry = np.where(style < 0.075, title[attrs["industry"]], industry)
    spaces = np.array(["", " ", "  "], dtype=object)[rng.integers(1, 3, n)]
    industry = np.where((style >= 0.075) & (style < 0.15), industry + spaces, industry)
    industry = np.where(missing(0.08), None, industry)

    revenue = np.round(attrs["employees"] * attrs["revenue_per_employee"], -3)
    funding = np.array(FUNDING_STAGES, dtype=object)[attrs["funding"]]
    funded = (attrs["funding"] > 0) & ~missing(0.05)
    stage_recency = np.array([0, 500, 600, 700, 800, 1000])[attrs["funding"]]
    last_funding = -rng.uniform(20, 20 + stage_recency.clip(1), n)

    tech = attrs["tech"]
    stack = np.full(n, "", dtype="U200")
    for j, item in enumerate(TECH_ITEMS):  # 15 items, not a loop over accounts
        stack = np.where(tech[:, j], np.char.add(stack, ";" + item), stack)
    stack = np.char.lstrip(stack, ";").astype(object)
    stack = np.where((stack == "") | missing(0.07), None, stack)

    open_roles = pd.array(
        np.minimum(rng.poisson(0.3 + 0.015 * attrs["employees"]), 500), dtype="Int64"
    )
    open_roles[missing(0.15)] = pd.NA

    updated = created + rng.uniform(0, 1, n) * (_LAST - created)
    churned_at = tables["_churned_at"]
    updated = np.where(np.isnan(churned_at), updated, np.maximum(updated, churned_at))

    return pd.DataFrame(
        {
            "account_id": attrs["account_id"],
            "account_name": name,
            "domain": domain,
            "industry": industry,
            "employee_count": employees,
            "annual_revenue": np.where(missing(0.10), np.nan, revenue),
            "currency": "USD",
            "country": np.where(missing(0.03), None, np.array(COUNTRIES)[attrs["country"]]),
            "business_model": np.where(
                missing(0.04), None, np.array(BUSINESS_MODELS)[attrs["business_model"]]
            ),
            "deployment": np.where(missing(0.06), None, np.array(DEPLOYMENTS)[attrs["deployment"]]),
            "tech_stack": stack,
            "funding_stage": np.where(missing(0.08), None, funding),
            "last_funding_at": np.where(funded, last_funding, np.nan),
            "open_roles": open_roles,
            "churned_at": churned_at,
            "created_at": created,
            "updated_at": updated,
            "is_deleted": False,
        }
    )


# --------------------------------------------------------------------------------------------
# Writing

_TIME_COLUMNS = (
    "created_at",
    "updated_at",
    "closed_at",
    "occurred_at",
    "started_at",
    "ended_at",
    "issued_at",
    "paid_at",
    "solved_at",
    "responded_at",
    "last_funding_at",
    "churned_at",
)


def _to_timestamps(frame: pd.DataFrame, end_ts: np.datetime64) -> pd.DataFrame:
    """Relative float days -> UTC timestamps in whole seconds, NaN -> NaT."""
    out = frame.copy()
    for column in _TIME_COLUMNS:
        if column in out.columns:
            days = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
            seconds = np.floor(days * 86400.0)
            valid = ~np.isnan(seconds)
            stamps = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[s]")
            stamps[valid] = end_ts + seconds[valid].astype(np.int64).astype("timedelta64[s]")
            out[column] = stamps.astype("datetime64[ns]")
    return out


def _write_csv(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, path: Path) -> None:
    """CSV through DuckDB, timestamps as ISO 8601 UTC text (``2026-11-19T13:05:00Z``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(
        f'strftime("{name}", \'%Y-%m-%dT%H:%M:%SZ\') AS "{name}"'
        if name in _TIME_COLUMNS
        else f'"{name}"'
        for name in frame.columns
    )
    con.register("frame_to_write", frame)
    try:
        con.execute(
            f"COPY (SELECT {columns} FROM frame_to_write) TO '{path.as_posix()}' "
            "(FORMAT csv, HEADER true, DELIMITER ',')"
        )
    finally:
        con.unregister("frame_to_write")
