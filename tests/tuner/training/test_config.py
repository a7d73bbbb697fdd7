"""Hyperparameters: defaults, bounds, presets, OpenAI's job hyperparameters, and the init decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tuner.training import (
    Hyperparameters,
    TrainingConfig,
    TrainingEvent,
    from_openai,
    preset,
    resolve_init,
    to_openai,
)
from tuner.training.config import ALL_LINEAR, ATTENTION


def test_defaults_follow_the_field() -> None:
    hp = Hyperparameters()
    assert (hp.r, hp.lora_alpha, hp.lora_dropout) == (16, 32, 0.05)
    assert (hp.learning_rate, hp.lr_scheduler, hp.warmup_ratio, hp.n_epochs) == (2e-4, "cosine", 0.03, 3)
    assert hp.target_modules == ATTENTION
    assert hp.early_stopping_patience == 2
    assert hp.init_from == "parent" and hp.completion_only_loss


def test_the_demo_preset_is_what_makes_the_demo_model_learn() -> None:
    demo = preset("demo")
    assert (demo.learning_rate, demo.n_epochs, demo.r) == (3e-3, 5, 16)
    assert demo.target_modules == ALL_LINEAR
    assert demo.completion_only_loss


def test_preset_overrides_are_validated() -> None:
    assert preset("demo", n_epochs=2).n_epochs == 2
    with pytest.raises(ValidationError):
        preset("demo", r=0)
    with pytest.raises(ValueError, match="unknown hyperparameter preset"):
        preset("nope")


@pytest.mark.parametrize(
    "field",
    [
        {"r": 0},
        {"r": 1024},
        {"lora_alpha": 0},
        {"lora_dropout": 1.0},
        {"learning_rate": 0},
        {"learning_rate": 1.0},
        {"warmup_ratio": 1.0},
        {"n_epochs": 0},
        {"n_epochs": 51},
        {"batch_size": 0},
        {"gradient_accumulation_steps": 0},
        {"max_length": 8},
        {"early_stopping_patience": 0},
        {"target_modules": []},
        {"target_modules": ["lm_head"]},
        {"lr_scheduler": "exotic"},
        {"init_from": "somewhere"},
        {"learning_rte": 1e-4},  # misspelt: refused, not ignored
    ],
)
def test_out_of_bounds_hyperparameters_are_refused(field: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Hyperparameters(**field)


def test_target_modules_are_deduplicated_in_serving_order() -> None:
    assert Hyperparameters(target_modules=["v_proj", "q_proj", "v_proj"]).target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, {}),
        ({"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}, {}),
        ({"n_epochs": 2}, {"n_epochs": 2}),
        ({"learning_rate_multiplier": 2}, {"learning_rate": 4e-4}),
        ({"learning_rate_multiplier": 0.5}, {"learning_rate": 1e-4}),
        # The effective batch is kept exactly; the per-device batch never exceeds the adapter's own (8).
        ({"batch_size": 32}, {"batch_size": 8, "gradient_accumulation_steps": 4}),
        ({"batch_size": 6}, {"batch_size": 6, "gradient_accumulation_steps": 1}),
        ({"batch_size": 12}, {"batch_size": 6, "gradient_accumulation_steps": 2}),
        ({"batch_size": 7 * 11}, {"batch_size": 7, "gradient_accumulation_steps": 11}),
        ({"batch_size": 1}, {"batch_size": 1, "gradient_accumulation_steps": 1}),
    ],
)
def test_openai_hyperparameters_map_onto_the_adapters_own(
    requested: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    base = Hyperparameters()
    mapped = from_openai(requested, base=base).model_dump()
    wanted = base.model_dump() | expected
    assert mapped.pop("learning_rate") == pytest.approx(wanted.pop("learning_rate"))
    assert mapped == wanted


@pytest.mark.parametrize(
    "requested",
    [
        {"n_epochs": 0},
        {"n_epochs": 51},
        {"n_epochs": "3"},
        {"n_epochs": True},
        {"n_epochs": 2.5},
        {"batch_size": 0},
        {"batch_size": 257},
        {"learning_rate_multiplier": 0},
        {"learning_rate_multiplier": -1.0},
        {"learning_rate_multiplier": 11},
        {"learning_rate_multiplier": "fast"},
        {"prompt_loss_weight": 0.1},
    ],
)
def test_bad_openai_hyperparameters_are_refused(requested: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        from_openai(requested, base=Hyperparameters())


def test_a_multiplier_past_the_learning_rate_bound_is_refused() -> None:
    with pytest.raises(ValidationError):
        from_openai({"learning_rate_multiplier": 10}, base=Hyperparameters(learning_rate=0.05))


def test_to_openai_reports_the_effective_batch() -> None:
    hp = from_openai({"n_epochs": 4, "batch_size": 32}, base=Hyperparameters())
    assert to_openai(hp) == {"n_epochs": 4, "batch_size": 32}


def _parent(folder: Path, **config: Any) -> Path:
    folder.mkdir()
    fields = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": list(ALL_LINEAR)} | config
    (folder / "adapter_config.json").write_text(json.dumps(fields))
    return folder


def test_continue_from_a_parent_of_the_same_shape(tmp_path: Path) -> None:
    parent = _parent(tmp_path / "p", target_modules=["model.layers.0.self_attn.q_proj", *ALL_LINEAR[1:]])
    assert resolve_init(preset("demo"), parent)[0] == "parent"


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"r": 8}, "rank 8"),
        ({"target_modules": ATTENTION}, "targets"),
        ({"target_modules": ".*proj"}, "pattern"),
        ({"rank_pattern": {"q_proj": 4}}, "per-module"),
        ({"peft_type": "IA3"}, "not a LoRA"),
    ],
)
def test_start_fresh_when_the_parent_does_not_fit(tmp_path: Path, config: dict[str, Any], why: str) -> None:
    init, reason = resolve_init(preset("demo"), _parent(tmp_path / "p", **config))
    assert init == "fresh" and why in reason


def test_the_demo_adapters_are_refreshed_from_scratch(demo_model: Path, tmp_path: Path) -> None:
    """DESIGN.md: the demo adapters are rank 8 on attention; the demo preset cannot continue them."""
    from switchyard.demo import build_demo_adapter

    parent = build_demo_adapter(demo_model, tmp_path / "support-bot", seed=1)
    init, reason = resolve_init(preset("demo"), parent)
    assert init == "fresh" and "rank 8" in reason


def test_fresh_when_asked_or_without_a_parent(tmp_path: Path) -> None:
    parent = _parent(tmp_path / "p")
    assert resolve_init(preset("demo", init_from="fresh"), parent) == ("fresh", "init_from is 'fresh'")
    assert resolve_init(preset("demo"), None)[0] == "fresh"


def test_an_unreadable_parent_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        resolve_init(Hyperparameters(), tmp_path / "missing")


def _config(tmp_path: Path, **changes: Any) -> TrainingConfig:
    return TrainingConfig(base_model="base", dataset=tmp_path / "data", output_dir=tmp_path / "out", **changes)


def test_sft_arguments_per_device(tmp_path: Path) -> None:
    config = _config(tmp_path, hyperparameters=preset("demo"))
    cpu = config.sft_kwargs(on_gpu=False, has_holdout=True)
    assert (cpu["bf16"], cpu["use_cpu"]) == (False, True)
    assert cpu["eval_strategy"] == cpu["save_strategy"] == "epoch" and cpu["load_best_model_at_end"]
    assert cpu["max_length"] is None and cpu["padding_free"]  # the runner drops over-long rows itself
    assert cpu["warmup_steps"] == 0.03 and cpu["learning_rate"] == 3e-3
    gpu = config.sft_kwargs(on_gpu=True, has_holdout=False)
    assert (gpu["bf16"], gpu["use_cpu"], gpu["eval_strategy"], gpu["load_best_model_at_end"]) == (
        True,
        False,
        "no",
        False,
    )
    packed = _config(tmp_path, hyperparameters=Hyperparameters(packing=True), checkpoint_steps=5)
    kwargs = packed.sft_kwargs(on_gpu=False, has_holdout=True)
    assert kwargs["max_length"] == 1024
    assert (kwargs["save_strategy"], kwargs["save_steps"], kwargs["eval_steps"]) == ("steps", 5, 5)


def test_trl_accepts_the_sft_arguments(tmp_path: Path) -> None:
    from trl import SFTConfig

    args = SFTConfig(**_config(tmp_path, hyperparameters=preset("demo")).sft_kwargs(on_gpu=False, has_holdout=True))
    assert args.completion_only_loss and args.lr_scheduler_type == "cosine"


def test_the_fingerprint_ignores_what_a_restart_may_change(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.fingerprint() == _config(tmp_path, max_steps=10, logging_steps=5).fingerprint()
    assert config.fingerprint() != _config(tmp_path, hyperparameters=Hyperparameters(seed=1)).fingerprint()


def test_events_survive_the_line_protocol() -> None:
    event = TrainingEvent(type="step", step=3, loss=1.5, tokens_per_s=100.0)
    assert TrainingEvent.from_line(event.to_line()) == event
    assert TrainingEvent.from_line("Loading weights: 100%") is None
    assert TrainingEvent.from_line('{"type": "nonsense"}') is None
    assert TrainingEvent.from_line("[1, 2]") is None
