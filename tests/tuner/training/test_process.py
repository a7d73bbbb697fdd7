"""Training in a child process, supervised with asyncio: it learns, it fails, it cancels, it resumes.

Nothing is mocked: each test starts ``python -m tuner.training`` on the 4-bit demo base.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.base_model import BaseModelSpec
from adapters.validation import EngineLimits, validate_adapter_dir
from tests.tuner.training.factories import Example, answer, write_dataset
from tuner.training import (
    EXIT_CANCELLED,
    TrainingConfig,
    TrainingEvent,
    TrainingProcess,
    TrainingStatus,
    preset,
)

pytestmark = pytest.mark.slow

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=64 << 20)
ENDLESS = 100_000
"""max_steps for runs that a test stops: far more than it lets happen."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(demo_model: Path, dataset: Path, out: Path, **changes: Any) -> TrainingConfig:
    """A cheap run: batches of 2, so each step takes a few milliseconds."""
    return TrainingConfig(
        base_model=str(demo_model),
        dataset=dataset,
        output_dir=out,
        hyperparameters=preset("demo", batch_size=2),
        **changes,
    )


def exact_match(base_model: Path, adapter: Path | None, rows: list[Example]) -> float:
    """Greedy accuracy of the full-precision base (what vLLM serves), with ``adapter`` if given."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    hits = 0
    with torch.no_grad():
        for row in rows:
            inputs = tokenizer.apply_chat_template(
                row["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            # A one-word answer takes up to ~8 tokens of the demo's byte-level BPE.
            output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
            text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            hits += text.strip() == answer(row)
    return hits / len(rows)


async def test_the_demo_preset_learns_the_routing_task(
    demo_model: Path, routing_dataset: Path, routing_split: tuple[list[Example], list[Example]], tmp_path: Path
) -> None:
    base_weights = _sha256(demo_model / "model.safetensors")
    events: list[TrainingEvent] = []
    config = TrainingConfig(
        base_model=str(demo_model), dataset=routing_dataset, output_dir=tmp_path / "job", hyperparameters=preset("demo")
    )
    outcome = await TrainingProcess(config, on_event=events.append).run()

    assert outcome.status == TrainingStatus.succeeded, outcome.reason
    result = outcome.result
    assert result is not None and result.adapter_dir == tmp_path / "job" / "adapter"
    kinds = [event.type for event in events]
    assert kinds[:2] == ["loading", "started"] and kinds[-1] == "result"
    assert {"step", "eval", "checkpoint"} <= set(kinds)
    steps = [event for event in events if event.type == "step"]
    assert all(e.loss is not None and e.learning_rate is not None and e.peak_rss_bytes for e in steps)
    assert any(e.tokens_per_s for e in steps)
    evals = [event.eval_loss for event in events if event.type == "eval"]
    assert len(evals) == 5 and evals[-1] < evals[0]  # one evaluation per epoch, and it improved
    metrics = result.metrics
    assert metrics.eval_loss == min(evals) and metrics.train_examples == 200 and metrics.holdout_examples == 40
    assert metrics.tokens_per_s and metrics.peak_rss_bytes > 0 and metrics.peak_gpu_bytes is None

    manifest = validate_adapter_dir(result.adapter_dir, base=BaseModelSpec.load(str(demo_model)), limits=LIMITS)
    assert manifest.rank == 16 and len(manifest.target_modules) == 7
    assert _sha256(demo_model / "model.safetensors") == base_weights  # the base is never written

    _, holdout = routing_split
    assert exact_match(demo_model, None, holdout) <= 0.1
    assert exact_match(demo_model, result.adapter_dir, holdout) >= 0.9


async def test_a_killed_run_fails_with_a_reason_and_a_restart_resumes(
    demo_model: Path, small_dataset: Path, tmp_path: Path
) -> None:
    config = _config(demo_model, small_dataset, tmp_path / "job", max_steps=60, checkpoint_steps=3)
    process: TrainingProcess | None = None

    def kill_after_a_checkpoint(event: TrainingEvent) -> None:
        # SIGKILL is what the kernel's out-of-memory killer sends: no handler runs.
        if event.type == "checkpoint" and process is not None and process.pid:
            os.kill(process.pid, signal.SIGKILL)

    process = TrainingProcess(config, on_event=kill_after_a_checkpoint)
    outcome = await process.run()
    assert outcome.status == TrainingStatus.failed
    assert outcome.returncode == -signal.SIGKILL and outcome.reason and "SIGKILL" in outcome.reason
    assert not config.adapter_dir.exists()
    saved = max(int(p.name.rsplit("-", 1)[1]) for p in config.checkpoints_dir.glob("checkpoint-*"))
    assert 3 <= saved < 60

    events: list[TrainingEvent] = []
    outcome = await TrainingProcess(config, on_event=events.append).run()
    assert outcome.status == TrainingStatus.succeeded, outcome.reason
    assert outcome.result is not None and outcome.result.resumed_from_step == saved
    started = next(event for event in events if event.type == "started")
    assert started.resumed_from_step == saved and started.message and f"resuming from step {saved}" in started.message
    assert min(e.step for e in events if e.type == "step") == saved + 1
    assert outcome.result.metrics.global_step == 60


async def test_cancel_stops_at_a_step_boundary(demo_model: Path, small_dataset: Path, tmp_path: Path) -> None:
    stepping = asyncio.Event()
    process = TrainingProcess(
        _config(demo_model, small_dataset, tmp_path / "job", max_steps=ENDLESS),
        on_event=lambda event: stepping.set() if event.type == "step" else None,
    )
    await process.start()
    await asyncio.wait_for(stepping.wait(), 120)
    outcome = await process.cancel()
    assert outcome.status == TrainingStatus.cancelled and outcome.reason == "cancelled"
    assert outcome.returncode == EXIT_CANCELLED  # the child's handler stopped it, not the SIGKILL fallback
    assert not (tmp_path / "job" / "adapter").exists()


async def test_cancel_while_the_model_loads(demo_model: Path, small_dataset: Path, tmp_path: Path) -> None:
    loading = asyncio.Event()
    process = TrainingProcess(
        _config(demo_model, small_dataset, tmp_path / "job", max_steps=ENDLESS),
        on_event=lambda event: loading.set() if event.type == "loading" else None,
    )
    await process.start()
    await asyncio.wait_for(loading.wait(), 120)
    outcome = await process.cancel()
    assert outcome.status == TrainingStatus.cancelled
    assert outcome.returncode == EXIT_CANCELLED


async def test_bad_input_fails_with_the_childs_error(demo_model: Path, tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    dataset = tmp_path / "data"
    DatasetDict({"validation": Dataset.from_list([{"prompt": [], "completion": []}])}).save_to_disk(str(dataset))
    outcome = await TrainingProcess(_config(demo_model, dataset, tmp_path / "job")).run()
    assert outcome.status == TrainingStatus.failed and outcome.returncode == 1
    assert outcome.reason is not None
    assert outcome.reason.startswith("training failed: ValueError: the dataset has no 'train' split")
    assert "Traceback" in outcome.reason  # the stderr tail
    assert "Traceback" in (tmp_path / "job" / "stderr.log").read_text()


def test_the_child_stops_when_its_parent_dies(demo_model: Path, small_dataset: Path, tmp_path: Path) -> None:
    """A parent killed with SIGKILL cannot cancel; its child sees its stdin close and stops."""
    config = _config(demo_model, small_dataset, tmp_path / "job", max_steps=ENDLESS)
    config.output_dir.mkdir()
    config_file = config.output_dir / "config.json"
    config_file.write_text(config.model_dump_json())
    child = subprocess.Popen(
        [sys.executable, "-m", "tuner.training", str(config_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        for line in child.stdout:
            event = TrainingEvent.from_line(line)
            if event is not None and event.type == "step":
                break
        child.stdin.close()  # what the parent's death does to the pipe
        assert child.wait(timeout=60) == EXIT_CANCELLED
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_write_dataset_round_trips(tmp_path: Path, routing_split: tuple[list[Example], list[Example]]) -> None:
    from datasets import load_from_disk

    train, holdout = routing_split
    data = load_from_disk(str(write_dataset(tmp_path / "d", train[:3], holdout[:2])))
    assert {name: len(split) for name, split in data.items()} == {"train": 3, "holdout": 2}
    assert data["train"][0]["completion"][0]["role"] == "assistant"
