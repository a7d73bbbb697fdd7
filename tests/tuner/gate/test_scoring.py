"""evaluate/compare with a scorer of known answers: sums, pass rates, and both sides on the same rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.models import VersionStatus
from adapters.registry import ServableVersion
from tuner.gate import EvalRow, GatePolicy, TaskChecks, Verdict, compare, decide, evaluate, load_forgetting_set
from tuner.gate.scoring import rows_from_examples

CANDIDATE = ServableVersion(
    adapter="router",
    version=2,
    version_id=7,
    path=Path("/nowhere"),
    tenant=None,
    shared=False,
    status=VersionStatus.candidate,
)


class TableScorer:
    """The candidate knows every answer (logprob -0.1 a token), the base does not (-2.0)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    async def nll(self, prompt: list[dict], answer: str, adapter: ServableVersion | None) -> tuple[float, int]:
        self.calls.append(("nll", prompt[-1]["content"], adapter and adapter.version_id))
        tokens = len(answer.split())
        return (-0.1 if adapter else -2.0) * tokens, tokens

    async def generate(self, prompt: list[dict], adapter: ServableVersion | None, max_tokens: int) -> str:
        self.calls.append(("generate", prompt[-1]["content"], adapter and adapter.version_id))
        return ROWS_BY_PROMPT[prompt[-1]["content"]] if adapter else "I do not know"


ROWS = [EvalRow(prompt=[{"role": "user", "content": f"q{i}"}], answer=f"answer {i}") for i in range(25)]
ROWS_BY_PROMPT = {row.prompt[0]["content"]: row.answer for row in ROWS}
CHECKS = TaskChecks.from_adapter({"checks": [{"type": "exact_match"}, {"type": "regex", "pattern": r"answer \d+"}]})


async def test_evaluate_sums_tokens_and_rates_checks() -> None:
    scores = await evaluate(TableScorer(), ROWS, CANDIDATE, CHECKS)
    assert (scores.rows, scores.tokens) == (25, 50)
    assert scores.mean_nll == pytest.approx(0.1)
    assert scores.check_pass_rates == {"exact_match": 1.0, "regex": 1.0}
    base = await evaluate(TableScorer(), ROWS, None, CHECKS)
    assert base.mean_nll == pytest.approx(2.0) and base.check_pass_rates == {"exact_match": 0.0, "regex": 0.0}


async def test_without_checks_nothing_is_generated() -> None:
    scorer = TableScorer()
    scores = await evaluate(scorer, ROWS, None)
    assert scores.check_pass_rates == {} and {kind for kind, _, _ in scorer.calls} == {"nll"}


async def test_compare_scores_both_sides_on_the_same_rows_then_decides() -> None:
    scorer = TableScorer()
    forgetting = load_forgetting_set()
    champion, candidate = await compare(
        scorer, ROWS, champion=None, candidate=CANDIDATE, checks=CHECKS, forgetting=forgetting
    )
    asked = {
        adapter: sorted(p for kind, p, a in scorer.calls if a == adapter and kind == "nll") for adapter in (None, 7)
    }
    assert asked[None] == asked[7] and len(asked[7]) == len(ROWS) + len(forgetting)
    assert champion.forgetting is not None and champion.forgetting.rows == len(forgetting)
    # This candidate also "improves" the forgetting set; the decision is promote.
    decision = decide(champion, candidate, GatePolicy())
    assert decision.verdict == Verdict.promote, decision.reasons


def test_rows_from_snapshot_examples() -> None:
    rows = rows_from_examples(
        [{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}]}]
    )
    assert rows == [EvalRow(prompt=[{"role": "user", "content": "hi"}], answer="hello")]
    with pytest.raises(ValueError, match="non-empty"):
        rows_from_examples([{"prompt": [], "completion": [{"role": "assistant", "content": ""}]}])


def test_the_forgetting_set_ships_with_the_package() -> None:
    rows = load_forgetting_set()
    assert len(rows) >= 30 and len({row.prompt[0]["content"] for row in rows}) == len(rows)
    assert all(row.answer and row.prompt[0]["role"] == "user" for row in rows)
