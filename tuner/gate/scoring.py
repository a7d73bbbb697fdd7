"""Scoring champion and candidate through the engine that will serve them.

The gate calls a :class:`Scorer` (the engine-backed one lives in ``gateway.evaluation``; tests
may pass their own). Both versions are scored on the same rows in the same run, so the
comparison holds whatever the machine's noise.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from adapters.registry import ServableVersion
from tuner.gate.checks import TaskChecks

T = TypeVar("T")
Messages = list[dict[str, Any]]

DEFAULT_CONCURRENCY = 16
"""Requests in flight per side: enough for the engine to batch them."""


@dataclass(frozen=True)
class EvalRow:
    """One evaluation example: the prompt's chat messages and the reference answer."""

    prompt: Messages
    answer: str

    @classmethod
    def from_example(cls, example: Mapping[str, Any]) -> EvalRow:
        """From a TRL prompt-completion row (what ``tuner.snapshots`` stores)."""
        completion = example["completion"]
        answer = completion[-1]["content"] if isinstance(completion, list) else completion
        if not isinstance(answer, str) or not answer:
            raise ValueError("an evaluation row needs a non-empty text answer")
        return cls(prompt=list(example["prompt"]), answer=answer)


def rows_from_examples(examples: Iterable[Mapping[str, Any]]) -> list[EvalRow]:
    """Evaluation rows from a snapshot split (a ``datasets.Dataset`` or a list of rows)."""
    return [EvalRow.from_example(example) for example in examples]


class Scorer(Protocol):
    """What the gate needs from an engine. ``adapter`` None is the base model."""

    async def nll(self, prompt: Messages, answer: str, adapter: ServableVersion | None) -> tuple[float, int]:
        """(sum of the answer tokens' log-probabilities given the prompt, number of answer tokens)."""
        ...

    async def generate(self, prompt: Messages, adapter: ServableVersion | None, max_tokens: int) -> str:
        """The greedy answer (temperature 0) to the prompt, at most ``max_tokens`` tokens."""
        ...


@dataclass(frozen=True)
class Scores:
    """One version on one set of rows."""

    rows: int
    tokens: int
    sum_logprob: float
    check_pass_rates: dict[str, float] = field(default_factory=dict)

    @property
    def mean_nll(self) -> float:
        """Mean negative log-likelihood per answer token (nats)."""
        return -self.sum_logprob / self.tokens if self.tokens else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "tokens": self.tokens,
            "mean_nll": self.mean_nll,
            "check_pass_rates": dict(self.check_pass_rates),
        }


@dataclass(frozen=True)
class GateScores:
    """One version's scores for the gate: the adapter's fixed hold-out and the forgetting set."""

    holdout: Scores
    forgetting: Scores | None = None


async def _bounded(calls: Sequence[Awaitable[T]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def evaluate(
    scorer: Scorer,
    rows: Sequence[EvalRow],
    adapter: ServableVersion | None,
    checks: TaskChecks | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Scores:
    """NLL of the reference answers, and each check's pass rate on the greedy answers."""
    nlls = _bounded([scorer.nll(row.prompt, row.answer, adapter) for row in rows], concurrency)
    named = checks.named() if checks is not None else []
    outputs: Awaitable[list[str]]
    if named and rows:
        assert checks is not None
        outputs = _bounded([scorer.generate(row.prompt, adapter, checks.max_tokens) for row in rows], concurrency)
    else:
        outputs = asyncio.sleep(0, result=[])
    scored, answers = await asyncio.gather(nlls, outputs)
    rates = {
        name: sum(check.passes(out, row.answer) for out, row in zip(answers, rows, strict=True)) / len(rows)
        for name, check in named
    }
    return Scores(
        rows=len(rows),
        tokens=sum(n for _, n in scored),
        sum_logprob=sum(logprob for logprob, _ in scored),
        check_pass_rates=rates,
    )


async def compare(
    scorer: Scorer,
    rows: Sequence[EvalRow],
    *,
    champion: ServableVersion | None,
    candidate: ServableVersion,
    checks: TaskChecks | None = None,
    forgetting: Sequence[EvalRow] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[GateScores, GateScores]:
    """(champion, candidate) scored on the same rows in the same run; ``champion`` None is the base.

    Both sides run concurrently, so the engine batches them together and neither sees a
    quieter machine than the other."""

    async def side(adapter: ServableVersion | None) -> GateScores:
        holdout, forgot = await asyncio.gather(
            evaluate(scorer, rows, adapter, checks, concurrency=concurrency),
            evaluate(scorer, forgetting, adapter, concurrency=concurrency),
        )
        return GateScores(holdout=holdout, forgetting=forgot if forgetting else None)

    champion_scores, candidate_scores = await asyncio.gather(side(champion), side(candidate))
    return champion_scores, candidate_scores
