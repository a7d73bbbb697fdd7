"""The gate's decision: pure, explained, and stored with its numbers.

A candidate passes when, on the adapter's fixed hold-out, its mean token NLL is lower than the
champion's by at least the margin (relative), none of its task-check pass rates falls more than
the tolerance below the champion's, and its NLL on the forgetting set rises by no more than the
tolerance. A passing candidate is promoted or starts a canary, as the policy says; any failed
criterion rejects it.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from tuner.gate.scoring import GateScores


class Verdict(StrEnum):
    promote = "promote"
    canary = "canary"
    reject = "reject"


class GatePolicy(BaseModel):
    """Per-adapter gate settings."""

    model_config = {"extra": "forbid"}

    margin: float = Field(default=0.02, ge=0, lt=1)
    """Relative hold-out NLL improvement the candidate needs: 0.02 means at least 2 % lower."""

    forgetting_tolerance: float = Field(default=0.05, ge=0)
    """Largest relative rise of the forgetting-set NLL over the champion's (0.05 = 5 %)."""

    check_tolerance: float = Field(default=0.0, ge=0, le=1)
    """Largest drop of any task check's pass rate below the champion's (absolute, 0..1)."""

    min_rows: int = Field(default=20, ge=1)
    """Fewer hold-out rows than this is too little evidence: the candidate is rejected."""

    on_pass: Literal["promote", "canary"] = "promote"
    canary_weight: float = Field(default=0.1, gt=0, lt=1)
    """Traffic share of the canary when ``on_pass`` is ``canary``."""


class GateDecision(BaseModel):
    """What the gate decided and why. ``reasons`` has one line per criterion, failed ones first."""

    verdict: Verdict
    reasons: list[str]
    numbers: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.verdict != Verdict.reject

    def to_metrics(self) -> dict[str, Any]:
        """JSON for ``AdapterVersion.metrics["gate"]``."""
        return self.model_dump(mode="json")


def _relative(new: float, old: float) -> float:
    """(new - old) / old; NaN when it is not defined."""
    if not (math.isfinite(new) and math.isfinite(old)) or old <= 0:
        return math.nan
    return (new - old) / old


def _pct(value: float) -> str:
    return f"{value * 100:+.1f} %"


def decide(champion: GateScores, candidate: GateScores, policy: GatePolicy | None = None) -> GateDecision:
    """Compare the two versions' scores (from :func:`tuner.gate.scoring.compare`) under ``policy``."""
    policy = policy or GatePolicy()
    failed: list[str] = []
    passed: list[str] = []
    champ, cand = champion.holdout, candidate.holdout
    if champ.rows != cand.rows or champ.tokens != cand.tokens:
        raise ValueError("champion and candidate must be scored on the same rows")
    numbers: dict[str, Any] = {
        "policy": policy.model_dump(),
        "holdout_rows": cand.rows,
        "holdout_tokens": cand.tokens,
        "champion": {"holdout": champ.summary()},
        "candidate": {"holdout": cand.summary()},
    }

    if cand.rows < policy.min_rows:
        failed.append(f"too few hold-out rows to judge: {cand.rows} < {policy.min_rows}")
    else:
        passed.append(f"hold-out rows: {cand.rows} >= {policy.min_rows}")

    change = _relative(cand.mean_nll, champ.mean_nll)
    numbers["holdout_nll_change"] = change
    nll_line = (
        f"hold-out NLL {champ.mean_nll:.4f} -> {cand.mean_nll:.4f} ({_pct(change)}); "
        f"needs at most {_pct(-policy.margin)}"
    )
    if math.isnan(change):
        failed.append(f"hold-out NLL could not be compared ({champ.mean_nll} -> {cand.mean_nll})")
    elif -change >= policy.margin:
        passed.append(nll_line)
    else:
        failed.append(nll_line)

    for name in sorted(champ.check_pass_rates.keys() | cand.check_pass_rates.keys()):
        before = champ.check_pass_rates.get(name, 0.0)
        after = cand.check_pass_rates.get(name, 0.0)
        line = f"check {name}: pass rate {before:.2f} -> {after:.2f}; may drop at most {policy.check_tolerance:.2f}"
        (passed if after >= before - policy.check_tolerance else failed).append(line)

    if champion.forgetting is None or candidate.forgetting is None:
        failed.append("no forgetting-set scores for both versions")
    else:
        f_champ, f_cand = champion.forgetting, candidate.forgetting
        if f_champ.tokens != f_cand.tokens:
            raise ValueError("champion and candidate must be scored on the same forgetting rows")
        rise = _relative(f_cand.mean_nll, f_champ.mean_nll)
        numbers["champion"]["forgetting"] = f_champ.summary()
        numbers["candidate"]["forgetting"] = f_cand.summary()
        numbers["forgetting_nll_change"] = rise
        line = (
            f"forgetting-set NLL {f_champ.mean_nll:.4f} -> {f_cand.mean_nll:.4f} ({_pct(rise)}); "
            f"may rise at most {_pct(policy.forgetting_tolerance)}"
        )
        if math.isnan(rise):
            failed.append(f"forgetting-set NLL could not be compared ({f_champ.mean_nll} -> {f_cand.mean_nll})")
        else:
            (passed if rise <= policy.forgetting_tolerance else failed).append(line)

    if failed:
        verdict = Verdict.reject
    else:
        verdict = Verdict(policy.on_pass)
        if verdict == Verdict.canary:
            numbers["canary_weight"] = policy.canary_weight
    reasons = [f"failed: {line}" for line in failed] + [f"passed: {line}" for line in passed]
    return GateDecision(verdict=verdict, reasons=reasons, numbers=_json_safe(numbers))


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None, so the numbers store as plain JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
