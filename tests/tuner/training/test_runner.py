"""The runner in this process, on the real 4-bit demo base: what the trainer does to the weights.

A few optimizer steps are enough to see that only the LoRA matrices train, that the quantized
base stays bit for bit what it was, and that a refresh continues from its parent's matrices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from adapters.base_model import BaseModelSpec
from adapters.validation import EngineLimits, validate_adapter_dir
from tests.tuner.training.factories import example, routing_task, write_dataset
from tuner.training import TrainingConfig, TrainingEvent, TrainingResult, preset
from tuner.training.runner import run

pytestmark = pytest.mark.slow

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=64 << 20)


class WeightWatch(TrainerCallback):
    """Copies of the live model's parameters when training begins and when it ends."""

    def __init__(self) -> None:
        self.trainable: list[str] = []
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}

    @staticmethod
    def _copy(model: Any) -> dict[str, Any]:
        return {name: param.detach().clone() for name, param in model.named_parameters()}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.trainable = [name for name, param in model.named_parameters() if param.requires_grad]
        self.before = self._copy(model)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.after = self._copy(model)


def _train(demo_model: Path, dataset: Path, out: Path, **changes: Any) -> tuple[TrainingResult, WeightWatch, list]:
    events: list[TrainingEvent] = []
    watch = WeightWatch()
    config = TrainingConfig(
        base_model=str(demo_model),
        dataset=dataset,
        output_dir=out,
        hyperparameters=preset("demo", batch_size=4, max_length=64),
        max_steps=4,
        **changes,
    )
    return run(config, on_event=events.append, callbacks=[watch]), watch, events


@pytest.fixture(scope="module")
def first_run(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, WeightWatch, list]:
    train, _ = routing_task(n_train=16, n_holdout=0, seed=2)
    too_long = example("Route this ticket to a team: " + "please " * 80 + "invoice", "billing")
    dataset = write_dataset(tmp_path_factory.mktemp("runner") / "data", [*train, too_long])
    return _train(demo_model, dataset, tmp_path_factory.mktemp("runner") / "out")


def test_only_the_lora_matrices_train(first_run: tuple[TrainingResult, WeightWatch, list]) -> None:
    result, watch, _ = first_run
    assert watch.trainable and all(".lora_A." in name or ".lora_B." in name for name in watch.trainable)
    assert result.metrics.trainable_params == sum(watch.before[name].numel() for name in watch.trainable)
    frozen = [name for name in watch.before if name not in watch.trainable]
    assert any("base_layer" in name for name in frozen)  # the 4-bit projections are there, and frozen
    changed = [name for name in frozen if not watch.before[name].equal(watch.after[name])]
    assert changed == []


def test_the_adapter_weights_moved(first_run: tuple[TrainingResult, WeightWatch, list]) -> None:
    _, watch, _ = first_run
    lora_b = [name for name in watch.trainable if ".lora_B." in name]
    # PEFT starts lora_B at zero, so a moved B is a trained one.
    assert all(not watch.before[name].any() for name in lora_b)
    assert all(watch.after[name].any() for name in lora_b)
    assert all(not watch.before[name].equal(watch.after[name]) for name in watch.trainable)


def test_the_result_is_a_servable_adapter(
    first_run: tuple[TrainingResult, WeightWatch, list], demo_model: Path
) -> None:
    result, _, events = first_run
    manifest = validate_adapter_dir(result.adapter_dir, base=BaseModelSpec.load(str(demo_model)), limits=LIMITS)
    assert (manifest.rank, manifest.alpha) == (16, 32)
    assert manifest.target_modules == sorted(preset("demo").target_modules)
    assert sorted(p.name for p in result.adapter_dir.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert result.metrics.dropped_too_long == 1 and result.metrics.train_examples == 16
    assert result.metrics.global_step == 4 and not result.metrics.stopped_early
    assert (result.init, result.init_reason) == ("fresh", "no parent adapter")
    assert [e.type for e in events][:2] == ["loading", "started"] and events[-1].type == "result"
    assert TrainingResult.model_validate_json((result.output_dir / "result.json").read_text()) == result


def test_a_refresh_continues_from_its_parent(
    first_run: tuple[TrainingResult, WeightWatch, list], demo_model: Path, small_dataset: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    parent = first_run[0].adapter_dir
    result, watch, _ = _train(demo_model, small_dataset, tmp_path / "out", parent_adapter=parent)
    assert result.init == "parent"
    saved = load_file(str(parent / "adapter_model.safetensors"))
    assert len(saved) == len(watch.trainable)
    for name in watch.trainable:
        assert (
            watch.before[name].to(saved[name.replace(".default", "")].dtype).equal(saved[name.replace(".default", "")])
        )
