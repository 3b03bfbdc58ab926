"""The ICP in words: sentences generated from the aggregated facts, never written by hand.

Each function turns a few facts into plain sentences for the head of sales ops, the PM or the
RevOps analyst who reads the report. When the evidence says there is no signal, the words say
so first and make no claim about who the best customers are.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.report.facts import (
    AUC_MEASURE,
    ICP_TIERS,
    ProfileValue,
    RetroComparison,
    RunOverview,
    TierOutcome,
    ValidationRow,
)

__all__ = [
    "Evidence",
    "anti_icp_sentences",
    "anti_profile_sentences",
    "coverage_sentence",
    "evidence",
    "icp_sentences",
    "percent",
    "reason_label",
    "retro_sentences",
    "segment_sentences",
    "sources_present",
    "tier_outcome_sentences",
]

VALIDATED, NO_SIGNAL, NOT_VALIDATED = "validated", "no_signal", "not_validated"
SOURCES_MEASURE = "sources_present"
_ABSENT_MARKER = "absent"


@dataclass(frozen=True)
class Evidence:
    """The out-of-sample verdict behind the scores.

    Attributes:
        status: ``validated``, ``no_signal`` or ``not_validated`` (no learned model).
        headline: One sentence, for the top of the report.
        details: The sentences that follow it.
    """

    status: str
    headline: str
    details: list[str]

    @property
    def is_validated(self) -> bool:
        """Whether the tiers are backed by out-of-sample evidence."""
        return self.status == VALIDATED


def percent(share: float | None, digits: int = 0) -> str:
    """``0.4123`` -> ``41%``; None -> ``n/a``."""
    if share is None:
        return "n/a"
    return f"{share * 100:.{digits}f}%"


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def evidence(validation: dict[str, ValidationRow], overview: RunOverview) -> Evidence:
    """The verdict of ``out_of_sample_auc`` (``ok`` or ``no_signal``), in words."""
    auc = validation.get(AUC_MEASURE)
    learned = validation.get("learned_model")
    fallback = [learned.detail] if learned is not None and learned.detail else []
    insufficient = overview.confidence_accounts.get("insufficient_evidence", 0)
    if auc is not None and auc.status == "ok":
        return Evidence(
            VALIDATED,
            f"Validated: out of sample the score tells best customers from the rest "
            f"(AUC {_number(auc.value)}; the lower end of its 95% interval clears the "
            f"no-signal bound {_number(auc.threshold, 2)}).",
            [auc.detail],
        )
    if auc is not None and auc.status == NO_SIGNAL:
        return Evidence(
            NO_SIGNAL,
            f"No signal: out of sample the learned score cannot tell best customers from the "
            f"rest (AUC {_number(auc.value)}; a signal needs the lower end of its 95% interval "
            f"above {_number(auc.threshold, 2)}). The tiers in this report are the configured "
            "rules' tiers, "
            "not a validated ICP: do not read them as one.",
            [
                auc.detail,
                *fallback,
                f"{_count(insufficient, 'account')} carry fit_confidence = insufficient_evidence.",
            ],
        )
    return Evidence(
        NOT_VALIDATED,
        "Not validated: this run did not test a learned ICP out of sample, so its tiers are "
        "the configured rules' and carry no evidence from your outcomes.",
        fallback
        + (
            [f"{_count(insufficient, 'account')} carry fit_confidence = insufficient_evidence."]
            if insufficient
            else []
        ),
    )


def _value_sentence(value: ProfileValue) -> str:
    return (
        f"{value.label}: {percent(value.share_best)} of best customers vs "
        f"{percent(value.share_all)} of all accounts, lift {value.lift:.2f} "
        f"(95% interval {value.lift_low:.2f}-{value.lift_high:.2f}), "
        f"{value.points:+.1f} points"
    )


def icp_sentences(profile: list[ProfileValue], limit: int = 8) -> list[str]:
    """Who the best customers are: the ICP values (lift interval above 1), strongest first."""
    icp = [value for value in profile if value.is_icp]
    if not icp:
        return [
            "No attribute value is over-represented among best customers beyond chance "
            "(no lift interval lies above 1)."
            if profile
            else "No ICP profile for this date: the run published no learned profile."
        ]
    sentences = [_value_sentence(value) for value in icp[:limit]]
    if len(icp) > limit:
        sentences.append(f"and {len(icp) - limit} more values with a lift interval above 1.")
    return sentences


def anti_profile_sentences(profile: list[ProfileValue], limit: int = 6) -> list[str]:
    """The values best customers avoid (lift interval below 1, negative points)."""
    anti = sorted((v for v in profile if v.is_anti_icp), key=lambda v: v.points or 0)
    sentences = [_value_sentence(value) for value in anti[:limit]]
    if len(anti) > limit:
        sentences.append(f"and {len(anti) - limit} more values with a lift interval below 1.")
    return sentences


def reason_label(code: str) -> str:
    """A reason code in words: ``learned_fast_churn:deployment=on_prem`` -> ``fast churn
    (learned): deployment=on_prem``, ``too_small`` -> ``too small``."""
    kind, _, evidence_text = code.partition(":")
    if kind.startswith("learned_"):
        words = kind.removeprefix("learned_").replace("_", " ")
        return f"{words} (learned): {evidence_text}" if evidence_text else f"{words} (learned)"
    return code.replace("_", " ")


def anti_icp_sentences(overview: RunOverview, reasons: list[tuple[str, int]]) -> list[str]:
    """How many accounts are anti-ICP, and why (an account can have several reasons)."""
    if not overview.anti_icp_accounts:
        return ["No account is anti-ICP."]
    share = overview.anti_icp_accounts / overview.accounts
    sentences = [
        f"{_count(overview.anti_icp_accounts, 'account')} ({percent(share, 1)}) are anti-ICP "
        "and routed to disqualify, whatever their score; "
        f"{overview.high_tier_accounts - overview.icp_accounts:,} of them are in the high tier."
    ]
    sentences += [
        f"{reason_label(code)}: {_count(n, 'account')} ({percent(n / overview.accounts, 1)})"
        for code, n in reasons
    ]
    return sentences


def coverage_sentence(overview: RunOverview) -> str:
    """How much of the account base the ICP covers."""
    tiers = "/".join(ICP_TIERS)
    return (
        f"The ICP ({tiers} tier, not anti-ICP) covers {overview.icp_accounts:,} of "
        f"{overview.accounts:,} accounts ({percent(overview.icp_share, 1)}); the high tier "
        f"holds {overview.high_tier_accounts:,} ({percent(overview.tier_share('high'), 1)})."
    )


def segment_sentences(overview: RunOverview, profile: list[ProfileValue]) -> list[str]:
    """The ICP segments when the run found several (one sentence each)."""
    segments = {k: v for k, v in overview.segment_accounts.items() if k != "none"}
    if len(segments) <= 1:
        return []
    sentences = []
    for segment, accounts in segments.items():
        top = [v.label for v in profile if v.segment == segment and v.is_icp][:3]
        sentences.append(
            f"{segment}: {_count(accounts, 'account')} "
            f"({percent(accounts / overview.accounts, 1)})"
            + (f", set apart by {', '.join(top)}" if top else "")
        )
    return sentences


def tier_outcome_sentences(outcomes: list[TierOutcome]) -> list[str]:
    """``win rate 41% for high-tier accounts vs 12% for low`` and the same for retention, NRR."""
    by_tier = {outcome.tier: outcome for outcome in outcomes}
    high, low = by_tier.get("high"), by_tier.get("low")
    if high is None or low is None:
        return ["Not every tier has accounts, so the tiers cannot be compared."]
    sentences = []
    for measure, what, missing in (
        ("win_rate", "win rate", "no closed deals (crm/opportunities)"),
        ("retention", "customers retained", "no customers (billing)"),
        ("nrr", "net revenue retention (12 months)", "no revenue 12 months ago (billing)"),
    ):
        high_value, low_value = getattr(high, measure), getattr(low, measure)
        if high_value is None or low_value is None:
            sentences.append(f"{what}: not measured, {missing}.")
        else:
            sentences.append(
                f"{what} {percent(high_value)} for high-tier accounts vs "
                f"{percent(low_value)} for low"
            )
    return sentences


def retro_sentences(retro: RetroComparison, overview: RunOverview) -> list[str]:
    """What moved since an earlier date: ICP membership, values, tier shares and PSI."""
    earlier = retro.earlier
    stable = "stable" if retro.psi < 0.1 else "moderate shift" if retro.psi < 0.2 else "shift"
    sentences = [
        f"Since {earlier.as_of_date}: {retro.accounts_entered_icp:,} accounts entered the ICP "
        f"and {retro.accounts_left_icp:,} left it ({retro.accounts_stayed_icp:,} stayed); the "
        f"ICP went from {percent(earlier.icp_share, 1)} to {percent(overview.icp_share, 1)} "
        "of accounts.",
        "Tier shares: "
        + ", ".join(
            f"{tier} {percent(earlier.tier_share(tier), 1)} -> "
            f"{percent(overview.tier_share(tier), 1)}"
            for tier in ("high", "medium", "low")
        )
        + ".",
        f"Score distribution PSI {retro.psi:.4f} ({stable}; below 0.1 is stable, above 0.2 "
        "a shift worth a look).",
    ]
    if retro.values_entered:
        sentences.append(
            "Entered the ICP profile: " + ", ".join(v.label for v in retro.values_entered) + "."
        )
    if retro.values_left:
        sentences.append(
            "Left the ICP profile: " + ", ".join(v.label for v in retro.values_left) + "."
        )
    if not retro.values_entered and not retro.values_left:
        sentences.append("The same attribute values make up the ICP profile.")
    if set(earlier.score_versions) != set(overview.score_versions):
        sentences.append(
            f"Score version {', '.join(earlier.score_versions)} -> "
            f"{', '.join(overview.score_versions)}."
        )
    return sentences


def sources_present(validation: dict[str, ValidationRow]) -> tuple[list[str], list[str], str]:
    """The sources the run found and those it lacked, from the ``sources_present`` row.

    Returns:
        (present, absent, the row's full detail); empty lists when the row is missing.
    """
    row = validation.get(SOURCES_MEASURE)
    if row is None:
        return [], [], ""
    present_text, _, absent_text = row.detail.partition(_ABSENT_MARKER)
    present = [
        item.strip() for item in present_text.removeprefix("present:").split(";") if item.strip()
    ]
    absent = [item.strip() for item in absent_text.partition(":")[2].split(",") if item.strip()]
    return present, absent, row.detail
