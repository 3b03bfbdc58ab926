"""The second synthetic landing zone (``sample_data.planted_structures``): contract and signal."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from dagster_project.ingest.contracts import load_contracts
from dagster_project.sample_data import (
    STRUCTURES,
    StructuredSummary,
    generate_structured_landing_zone,
)
from dagster_project.sample_data.planted_structures import DEPLOYMENTS, INDUSTRIES, TECH_ITEMS

END = date(2026, 11, 20)
SMALL = 400
LARGE = 3000
TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"
)
INTEGER = re.compile(r"^[+-]?\d+(\.0+)?$")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    """``zone(structure, accounts)``: a generated landing zone (cached per module)."""
    cache: dict[tuple[str, int, int], tuple[Path, StructuredSummary]] = {}

    def make(structure: str, accounts: int = SMALL, seed: int = 1):
        key = (structure, accounts, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{structure}_{accounts}_{seed}")
            summary = generate_structured_landing_zone(
                out, structure=structure, accounts=accounts, seed=seed, end_date=END
            )
            cache[key] = (out, summary)
        return cache[key]

    return make


def _read(out: Path, entity: str) -> pd.DataFrame:
    return pd.read_csv(out / END.isoformat() / f"{entity}.csv", dtype=str, keep_default_na=False)


def _digest(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*.csv"))
    }


def test_structures_and_summary(zone):
    assert STRUCTURES == ("interactions", "size_peak", "tech_and_size", "no_signal")
    out, summary = zone("interactions")
    assert summary.structure == "interactions"
    assert summary.accounts == SMALL and summary.seed == 1
    assert summary.planted_icp_share == pytest.approx(0.2, abs=0.005)
    for relative in summary.files_written:
        assert (out / relative).is_file()
    assert "_truth/planted_segments.csv" in summary.files_written
    assert summary.row_counts["crm/accounts"] == SMALL
    # about 40 % prospects
    assert 0.45 < summary.customers / SMALL < 0.75


def test_unknown_structure_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown structure"):
        generate_structured_landing_zone(tmp_path, structure="nope", accounts=100)


def test_deterministic_for_the_same_arguments(tmp_path):
    for structure in STRUCTURES:
        first, second = tmp_path / f"{structure}_a", tmp_path / f"{structure}_b"
        generate_structured_landing_zone(first, structure=structure, accounts=SMALL, seed=5)
        generate_structured_landing_zone(second, structure=structure, accounts=SMALL, seed=5)
        assert _digest(first) == _digest(second)
    other = tmp_path / "other_seed"
    generate_structured_landing_zone(other, structure="no_signal", accounts=SMALL, seed=6)
    assert _digest(other) != _digest(tmp_path / "no_signal_a")


@pytest.mark.parametrize("structure", STRUCTURES)
def test_every_row_meets_the_contract(zone, structure):
    out, summary = zone(structure)
    contracts = load_contracts()
    landing_entities = {name for name, c in contracts.items() if not c.is_reference}
    written = {
        path.relative_to(out / END.isoformat()).with_suffix("").as_posix()
        for path in (out / END.isoformat()).rglob("*.csv")
    }
    assert written <= landing_entities
    assert {"crm/accounts", "crm/opportunities", "billing/subscriptions"} <= written
    keys: dict[str, set[str]] = {}
    parents_first = ["crm/accounts", "billing/subscriptions"]
    for entity in parents_first + sorted(written - set(parents_first)):
        contract = contracts[entity]
        frame = _read(out, entity)
        assert len(frame) > 0, entity
        assert set(contract.required_columns) <= set(frame.columns), entity
        assert set(frame.columns) <= set(contract.column_names), entity
        for column in frame.columns:
            rule = contract.column(column)
            values = frame[column]
            present = values[values != ""]
            where = f"{entity}.{column}"
            if not rule.nullable:
                assert (values != "").all(), where
            if rule.min_length:
                assert (present.str.len() >= rule.min_length).all(), where
            if rule.allowed_values:
                allowed = {value.lower() for value in rule.allowed_values}
                assert set(present.str.lower()) <= allowed, where
            if rule.pattern:
                assert present.str.fullmatch(rule.pattern).all(), where
            if rule.dtype == "datetime64[ns, UTC]":
                assert present.str.match(TIMESTAMP).all(), where
                stamps = pd.to_datetime(present, utc=True)
                assert (stamps < pd.Timestamp(END, tz="UTC")).all(), where
                assert (stamps > pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=4 * 365)).all()
            if rule.dtype in ("Int64", "Float64"):
                pattern = INTEGER if rule.dtype == "Int64" else NUMBER
                assert present.str.match(pattern).all(), where
                numbers = present.astype(float)
                if rule.min_value is not None:
                    assert (numbers >= rule.min_value).all(), where
                if rule.max_value is not None:
                    assert (numbers <= rule.max_value).all(), where
            if rule.dtype == "boolean":
                assert set(present.str.lower()) <= {"true", "false"}, where
        key = list(contract.primary_key)
        assert not frame.duplicated(key).any(), entity
        if len(key) == 1:
            keys[entity] = set(frame[key[0]])
        for column, parent in contract.foreign_keys.items():
            present = frame.loc[frame[column] != "", column]
            assert set(present) <= keys[parent], f"{entity}.{column} -> {parent}"
    accounts = _read(out, "crm/accounts")
    assert accounts["account_id"].str.fullmatch(r"A-\d{6}").all()
    assert set(accounts["currency"]) == {"USD"}
    assert summary.row_counts == {e: len(_read(out, e)) for e in summary.row_counts}


def test_events_follow_their_account_and_subscription(zone):
    out, _ = zone("size_peak")
    accounts = _read(out, "crm/accounts").set_index("account_id")
    created = pd.to_datetime(accounts["created_at"], utc=True)
    updated = pd.to_datetime(accounts["updated_at"], utc=True)
    assert (updated >= created).all()
    opportunities = _read(out, "crm/opportunities")
    opp_created = pd.to_datetime(opportunities["created_at"], utc=True)
    assert (opp_created.values >= created.loc[opportunities["account_id"]].values).all()
    closed = opportunities["closed_at"] != ""
    assert (closed == (opportunities["stage"] != "open")).all()
    assert (
        pd.to_datetime(opportunities.loc[closed, "closed_at"], utc=True) >= opp_created[closed]
    ).all()
    assert (opportunities.loc[opportunities["stage"] == "lost", "lost_reason"] != "").all()
    subscriptions = _read(out, "billing/subscriptions").set_index("subscription_id")
    ended = subscriptions["ended_at"] != ""
    assert (ended == (subscriptions["status"] == "canceled")).all()
    invoices = _read(out, "billing/invoices")
    issued = pd.to_datetime(invoices["issued_at"], utc=True)
    started = pd.to_datetime(subscriptions.loc[invoices["subscription_id"], "started_at"], utc=True)
    assert (issued.values >= started.values).all()
    # every customer (a subscription) has a won deal, prospects none
    won = set(opportunities.loc[opportunities["stage"] == "won", "account_id"])
    assert set(subscriptions["account_id"]) == won
    paid = invoices["status"] == "paid"
    assert ((invoices["paid_at"] != "") == paid).all()


def test_truth_file(zone):
    out, summary = zone("tech_and_size")
    truth = pd.read_csv(out / "_truth" / "planted_segments.csv")
    assert list(truth.columns) == ["account_id", "planted_segment", "latent_fit"]
    accounts = _read(out, "crm/accounts")
    assert list(truth["account_id"]) == list(accounts["account_id"])
    shares = truth["planted_segment"].value_counts(normalize=True)
    assert shares["icp"] == pytest.approx(0.20, abs=0.005)
    assert shares["anti_icp"] == pytest.approx(0.10, abs=0.005)
    assert (
        truth.loc[truth.planted_segment == "icp", "latent_fit"].min()
        >= truth.loc[truth.planted_segment != "icp", "latent_fit"].max()
    )
    assert (
        truth.loc[truth.planted_segment == "anti_icp", "latent_fit"].max()
        <= truth.loc[truth.planted_segment != "anti_icp", "latent_fit"].min()
    )
    assert abs(truth["latent_fit"].mean()) < 0.01
    assert truth["latent_fit"].std() == pytest.approx(1.0, abs=0.01)
    assert summary.planted_icp_share == pytest.approx(shares["icp"])


def test_messy_industries_are_case_and_space_variants_only(zone):
    out, _ = zone("interactions", LARGE)
    industry = _read(out, "crm/accounts")["industry"]
    assert 0.05 < (industry == "").mean() < 0.11
    present = industry[industry != ""]
    canonical = present.str.strip().str.lower().str.replace(" ", "_")
    assert set(canonical) <= set(INDUSTRIES)
    messy = present != canonical
    assert 0.11 < messy.mean() < 0.19
    assert (present.str.strip() != present).any() and (present.str.contains("[A-Z]")).any()


def _frames(out: Path) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Accounts with the truth, and two outcomes: became a customer, retained customer."""
    accounts = _read(out, "crm/accounts")
    truth = pd.read_csv(out / "_truth" / "planted_segments.csv").set_index("account_id")
    accounts = accounts.join(truth, on="account_id")
    opportunities = _read(out, "crm/opportunities")
    subscriptions = _read(out, "billing/subscriptions")
    won = set(opportunities.loc[opportunities["stage"] == "won", "account_id"])
    running = set(subscriptions.loc[subscriptions["ended_at"] == "", "account_id"])
    customer = accounts["account_id"].isin(won)
    retained = accounts["account_id"].isin(running)
    return accounts, customer, retained


def _one_hot_attributes(accounts: pd.DataFrame) -> pd.DataFrame:
    employees = pd.to_numeric(accounts["employee_count"].replace("", np.nan))
    size_band = pd.cut(employees, [-1, 19, 99, 499, 999, np.inf]).astype(str)
    categorical = pd.DataFrame(
        {
            "industry": accounts["industry"].str.strip().str.lower().str.replace(" ", "_"),
            "country": accounts["country"],
            "size_band": size_band,
            "business_model": accounts["business_model"],
            "deployment": accounts["deployment"],
            "funding_stage": accounts["funding_stage"],
        }
    ).replace("", "missing")
    tech = accounts["tech_stack"].str.get_dummies(sep=";").add_prefix("tech_")
    return pd.concat([pd.get_dummies(categorical).astype(float), tech], axis=1)


def _cross(features: pd.DataFrame, left: str, right: str) -> pd.DataFrame:
    """Products of every ``left*`` with every ``right*`` one-hot column."""
    lefts = [c for c in features.columns if c.startswith(left)]
    rights = [c for c in features.columns if c.startswith(right)]
    return pd.DataFrame(
        {f"{a}&{b}": features[a] * features[b] for a in lefts for b in rights},
        index=features.index,
    )


def _cross_validated_auc(features: pd.DataFrame, outcome: pd.Series) -> float:
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = LogisticRegression(C=0.3, max_iter=2000)
    predicted = cross_val_predict(
        model, features.to_numpy(), outcome.to_numpy(), cv=folds, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(outcome, predicted))


def test_no_signal_outcomes_are_independent_of_the_attributes(zone):
    out, _ = zone("no_signal", LARGE)
    accounts, customer, retained = _frames(out)
    features = _one_hot_attributes(accounts)
    for outcome in (customer, retained):
        assert _cross_validated_auc(features, outcome) < 0.6
    # ... but the latent fit still drives the outcomes
    assert roc_auc_score(retained, accounts["latent_fit"]) > 0.7
    # ... and nothing is missing more often for low fit
    missing = accounts["employee_count"] == ""
    low = accounts["planted_segment"] == "anti_icp"
    high = accounts["planted_segment"] == "icp"
    assert abs(missing[low].mean() - missing[high].mean()) < 0.07


@pytest.mark.parametrize("structure", [s for s in STRUCTURES if s != "no_signal"])
def test_planted_structures_have_a_clear_signal(zone, structure):
    out, _ = zone(structure, LARGE)
    accounts, customer, retained = _frames(out)
    fit = accounts["latent_fit"]
    assert roc_auc_score(retained, fit) > 0.7
    assert roc_auc_score(customer, fit) > 0.7
    # the attributes carry it: one-hot attributes plus the planted interactions' crosses
    features = _one_hot_attributes(accounts)
    crosses = pd.concat(
        [
            _cross(features, "industry_", "deployment_"),
            _cross(features, "business_model_", "size_band_"),
        ],
        axis=1,
    )
    assert _cross_validated_auc(pd.concat([features, crosses], axis=1), retained) > 0.6
    # not deterministic: a good share of retained customers has no more than average fit
    assert (fit[retained] < fit.median()).mean() > 0.15
    # missingness depends on fit
    missing = accounts["employee_count"] == ""
    assert (
        missing[accounts.planted_segment == "anti_icp"].mean()
        > missing[accounts.planted_segment == "icp"].mean() + 0.05
    )


def _true_attributes(structure: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The generator's true (unmasked) attributes and latent fit, for structure checks."""
    from dagster_project.sample_data import planted_structures as ps

    rng = np.random.default_rng(np.random.SeedSequence(3).spawn(4)[0])
    attrs = ps._draw_attributes(rng, LARGE)
    fit_rng = np.random.default_rng(np.random.SeedSequence(3).spawn(4)[1])
    return attrs, ps._latent_fit(fit_rng, attrs, structure)


def _eta_squared(groups: np.ndarray, values: np.ndarray) -> float:
    frame = pd.DataFrame({"g": groups, "v": values})
    means = frame.groupby("g")["v"].transform("mean")
    return float(((means - values.mean()) ** 2).sum() / ((values - values.mean()) ** 2).sum())


def test_tech_and_size_ignores_industry_country_and_deployment():
    attrs, fit = _true_attributes("tech_and_size")
    for attribute in ("industry", "country", "business_model", "deployment"):
        assert _eta_squared(attrs[attribute], fit) < 0.015, attribute
    items = list(TECH_ITEMS)
    modern = attrs["tech"][:, [items.index(i) for i in ("snowflake", "dbt", "segment", "looker")]]
    two_or_more = modern.sum(axis=1) >= 2
    oracle = attrs["tech"][:, items.index("oracle")]
    assert fit[two_or_more].mean() - fit[~two_or_more].mean() > 0.8
    assert fit[oracle].mean() - fit[~oracle].mean() < -0.5


def test_size_peak_is_non_monotone():
    attrs, fit = _true_attributes("size_peak")
    employees = attrs["employees"]
    peak = fit[(employees >= 200) & (employees <= 800)].mean()
    assert peak - fit[employees < 30].mean() > 0.7
    assert peak - fit[employees > 5000].mean() > 0.7


def test_interactions_flip_the_industry_effect_with_deployment():
    attrs, fit = _true_attributes("interactions")
    fintech = attrs["industry"] == INDUSTRIES.index("fintech")
    cloud = attrs["deployment"] == DEPLOYMENTS.index("cloud")
    on_prem = attrs["deployment"] == DEPLOYMENTS.index("on_prem")
    assert fit[fintech & cloud].mean() - fit[fintech & on_prem].mean() > 1.5
    healthcare = attrs["industry"] == INDUSTRIES.index("healthcare")
    assert fit[healthcare & on_prem].mean() > fit[healthcare & cloud].mean() + 0.5
