"""The evaluation gate on the real engine: a QLoRA candidate that learned the routing task beats
the base by far and is promoted; one trained on shuffled answers is rejected with its reasons.

Both candidates are trained in this process with the ``demo`` preset, then champion and
candidate are scored through one in-process vLLM engine with the engine-backed scorer.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapters.models import VersionStatus
from adapters.registry import ServableVersion
from gateway.engine.vllm_client import VLLMEngineClient
from gateway.evaluation import EngineScorer, EvaluationTokenizer
from switchyard.config import EngineSettings
from tests.tuner.training.factories import Example, example, routing_task, write_dataset
from tuner.gate import (
    EvalRow,
    GatePolicy,
    TaskChecks,
    Verdict,
    compare,
    decide,
    load_forgetting_set,
    rows_from_examples,
)
from tuner.training import TrainingConfig, preset
from tuner.training.runner import run

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CHECKS = TaskChecks.from_adapter({"checks": [{"type": "exact_match"}], "max_tokens": 12})


def shuffled(rows: list[Example], seed: int) -> list[Example]:
    answers = [row["completion"][0]["content"] for row in rows]
    random.Random(seed).shuffle(answers)
    return [example(row["prompt"][0]["content"], answer) for row, answer in zip(rows, answers, strict=True)]


def train(demo_model: Path, folder: Path, rows: list[Example], version_id: int, **changes: object) -> ServableVersion:
    config = TrainingConfig(
        base_model=str(demo_model),
        dataset=write_dataset(folder / "data", rows),
        output_dir=folder / "job",
        hyperparameters=preset("demo"),
        **changes,
    )
    result = run(config)
    return ServableVersion(
        adapter="router",
        version=version_id,
        version_id=version_id,
        path=result.adapter_dir,
        tenant=None,
        shared=False,
        status=VersionStatus.candidate,
    )


@pytest.fixture(scope="module")
def split() -> tuple[list[Example], list[Example]]:
    return routing_task(n_train=200, n_holdout=40, seed=0)


@pytest.fixture(scope="module")
def candidates(
    demo_model: Path, split: tuple[list[Example], list[Example]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ServableVersion]:
    train_rows, _ = split
    root = tmp_path_factory.mktemp("gate")
    return {
        "learned": train(demo_model, root / "learned", train_rows, 1),
        # Fewer steps: enough to learn the label prior from shuffled answers, not the task.
        "shuffled": train(demo_model, root / "shuffled", shuffled(train_rows, seed=1), 2, max_steps=40),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scorer(demo_model: Path, candidates: dict[str, ServableVersion]) -> AsyncIterator[EngineScorer]:
    # After training (the fixture above), so the engine does not share the two cores with it.
    engine = VLLMEngineClient(str(demo_model), EngineSettings(max_model_len=512, max_loras=2, max_cpu_loras=4))
    await engine.start()
    tokenizer = EvaluationTokenizer(str(demo_model))
    yield EngineScorer(engine, tokenizer)
    tokenizer.close()
    await engine.shutdown()


@pytest.fixture(scope="module")
def holdout(split: tuple[list[Example], list[Example]]) -> list[EvalRow]:
    return rows_from_examples(split[1])


async def test_a_candidate_that_learned_the_task_is_promoted(
    scorer: EngineScorer, candidates: dict[str, ServableVersion], holdout: list[EvalRow]
) -> None:
    champion, candidate = await compare(
        scorer, holdout, champion=None, candidate=candidates["learned"], checks=CHECKS, forgetting=load_forgetting_set()
    )
    decision = decide(champion, candidate, GatePolicy())
    print(decision.model_dump_json(indent=2))
    assert candidate.holdout.mean_nll <= 0.9 * champion.holdout.mean_nll
    assert champion.holdout.check_pass_rates["exact_match"] <= 0.1
    assert candidate.holdout.check_pass_rates["exact_match"] >= 0.9
    assert decision.verdict == Verdict.promote, decision.reasons


async def test_a_candidate_trained_on_shuffled_answers_is_rejected(
    scorer: EngineScorer, candidates: dict[str, ServableVersion], holdout: list[EvalRow]
) -> None:
    champion, candidate = await compare(
        scorer,
        holdout,
        champion=candidates["learned"],
        candidate=candidates["shuffled"],
        checks=CHECKS,
        forgetting=load_forgetting_set(),
    )
    decision = decide(champion, candidate, GatePolicy())
    print(decision.model_dump_json(indent=2))
    assert decision.verdict == Verdict.reject
    failed = [reason for reason in decision.reasons if reason.startswith("failed: ")]
    assert any("hold-out NLL" in reason for reason in failed)
    assert any("check exact_match" in reason for reason in failed)
    assert candidate.holdout.mean_nll > champion.holdout.mean_nll
