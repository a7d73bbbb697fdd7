"""The gate's decision, table-driven: every criterion passes or fails on its own, with a reason."""

from __future__ import annotations

import math

import pytest

from tuner.gate import GatePolicy, GateScores, Scores, Verdict, decide


def side(
    nll: float, forgetting: float | None = 2.0, *, rows: int = 40, checks: dict[str, float] | None = None
) -> GateScores:
    """Scores with the given mean NLLs over 100 answer tokens (and 50 forgetting tokens)."""
    holdout = Scores(rows=rows, tokens=100, sum_logprob=-nll * 100, check_pass_rates=checks or {})
    forgot = None if forgetting is None else Scores(rows=30, tokens=50, sum_logprob=-forgetting * 50)
    return GateScores(holdout=holdout, forgetting=forgot)


CASES = [
    # (case, champion, candidate, policy, verdict, failed reason fragment or None)
    ("clearly better", side(2.0), side(1.0), GatePolicy(), Verdict.promote, None),
    ("better by exactly the margin", side(2.0), side(1.96), GatePolicy(), Verdict.promote, None),
    ("better, below the margin", side(2.0), side(1.97), GatePolicy(), Verdict.reject, "hold-out NLL"),
    ("worse", side(2.0), side(2.5), GatePolicy(), Verdict.reject, "hold-out NLL"),
    ("equal", side(2.0), side(2.0), GatePolicy(), Verdict.reject, "hold-out NLL"),
    ("margin zero accepts equal", side(2.0), side(2.0), GatePolicy(margin=0.0), Verdict.promote, None),
    ("canary policy", side(2.0), side(1.0), GatePolicy(on_pass="canary"), Verdict.canary, None),
    ("forgetting within tolerance", side(2.0, 2.0), side(1.0, 2.09), GatePolicy(), Verdict.promote, None),
    ("forgetting past tolerance", side(2.0, 2.0), side(1.0, 2.2), GatePolicy(), Verdict.reject, "forgetting-set NLL"),
    ("forgetting improved", side(2.0, 2.0), side(1.0, 1.5), GatePolicy(), Verdict.promote, None),
    (
        "looser forgetting tolerance",
        side(2.0, 2.0),
        side(1.0, 2.2),
        GatePolicy(forgetting_tolerance=0.2),
        Verdict.promote,
        None,
    ),
    ("no forgetting scores", side(2.0, None), side(1.0, None), GatePolicy(), Verdict.reject, "no forgetting-set"),
    ("too few rows", side(2.0, rows=5), side(1.0, rows=5), GatePolicy(), Verdict.reject, "too few hold-out rows"),
    ("min rows lowered", side(2.0, rows=5), side(1.0, rows=5), GatePolicy(min_rows=5), Verdict.promote, None),
    (
        "a check regresses",
        side(2.0, checks={"exact_match": 0.8}),
        side(1.0, checks={"exact_match": 0.6}),
        GatePolicy(),
        Verdict.reject,
        "check exact_match",
    ),
    (
        "a check regresses within tolerance",
        side(2.0, checks={"exact_match": 0.8}),
        side(1.0, checks={"exact_match": 0.75}),
        GatePolicy(check_tolerance=0.1),
        Verdict.promote,
        None,
    ),
    (
        "checks improve",
        side(2.0, checks={"exact_match": 0.0, "regex": 0.1}),
        side(1.0, checks={"exact_match": 0.9, "regex": 1.0}),
        GatePolicy(),
        Verdict.promote,
        None,
    ),
    ("champion NLL undefined", side(math.nan), side(1.0), GatePolicy(), Verdict.reject, "could not be compared"),
]


@pytest.mark.parametrize(
    ("champion", "candidate", "policy", "verdict", "failure"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision(
    champion: GateScores, candidate: GateScores, policy: GatePolicy, verdict: Verdict, failure: str | None
) -> None:
    decision = decide(champion, candidate, policy)
    assert decision.verdict == verdict, decision.reasons
    failed = [reason for reason in decision.reasons if reason.startswith("failed: ")]
    if failure is None:
        assert failed == [] and decision.passed
    else:
        assert failed and all(failure in reason for reason in failed), failed
        assert not decision.passed
    # Every criterion is explained, failed ones first.
    assert decision.reasons and all(r.startswith(("failed: ", "passed: ")) for r in decision.reasons)
    assert decision.reasons == sorted(decision.reasons, key=lambda r: not r.startswith("failed: "))


def test_the_numbers_explain_the_decision_and_store_as_json() -> None:
    decision = decide(side(2.0, 3.0, checks={"exact_match": 0.1}), side(1.5, 3.03, checks={"exact_match": 0.9}))
    numbers = decision.numbers
    assert numbers["holdout_nll_change"] == pytest.approx(-0.25)
    assert numbers["forgetting_nll_change"] == pytest.approx(0.01)
    assert numbers["champion"]["holdout"]["mean_nll"] == pytest.approx(2.0)
    assert numbers["candidate"]["holdout"]["check_pass_rates"] == {"exact_match": 0.9}
    assert numbers["candidate"]["forgetting"]["mean_nll"] == pytest.approx(3.03)
    assert numbers["policy"]["margin"] == 0.02 and numbers["holdout_rows"] == 40
    assert "hold-out NLL 2.0000 -> 1.5000 (-25.0 %); needs at most -2.0 %" in decision.reasons[1]
    stored = decision.to_metrics()
    assert stored["verdict"] == "promote" and stored["reasons"] == decision.reasons


def test_undefined_numbers_store_as_null() -> None:
    decision = decide(side(math.nan), side(1.0))
    assert decision.numbers["holdout_nll_change"] is None
    assert decision.numbers["champion"]["holdout"]["mean_nll"] is None


def test_scores_on_different_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="same rows"):
        decide(side(2.0, rows=40), side(1.0, rows=39))


def test_canary_weight_is_reported() -> None:
    decision = decide(side(2.0), side(1.0), GatePolicy(on_pass="canary", canary_weight=0.25))
    assert decision.verdict == Verdict.canary and decision.numbers["canary_weight"] == 0.25
