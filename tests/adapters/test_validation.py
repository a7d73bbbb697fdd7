"""PEFT folder validation, table-driven: every broken folder is refused with a message that names the fault."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapters.base_model import BaseModelSpec
from adapters.exceptions import InvalidAdapter
from adapters.validation import EngineLimits, validate_adapter_dir, validate_name
from tests.utils.adapters import edit_config, good_adapter

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=10 * 1024 * 1024)


def _swap_weights(folder: Path, transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> None:
    path = folder / "adapter_model.safetensors"
    save_file(transform(load_file(path)), path)


def _wrong_shape(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(k for k in tensors if "lora_B" in k)
    return {**tensors, key: torch.zeros(tensors[key].shape[0] * 2, tensors[key].shape[1])}


def _extra_layer(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(iter(tensors))
    return {**tensors, key.replace("layers.0.", "layers.9."): tensors[key].clone()}


def _lm_head(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**tensors, "base_model.model.lm_head.weight": torch.zeros(4, 4)}


CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("missing config", lambda f: (f / "adapter_config.json").unlink(), "adapter_config.json is missing"),
    ("config not json", lambda f: (f / "adapter_config.json").write_text("{nope"), "not valid JSON"),
    ("not lora", lambda f: edit_config(f, peft_type="PREFIX_TUNING"), "not LORA"),
    ("rank too high", lambda f: edit_config(f, r=64), "exceeds the engine's max_lora_rank=16"),
    ("rank not int", lambda f: edit_config(f, r="8"), "r must be a positive integer"),
    ("unsupported module", lambda f: edit_config(f, target_modules=["q_proj", "lm_head"]), "unsupported target"),
    ("modules_to_save", lambda f: edit_config(f, modules_to_save=["lm_head"]), "modules_to_save"),
    ("missing weights", lambda f: (f / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    ("corrupt weights", lambda f: (f / "adapter_model.safetensors").write_bytes(b"\x00" * 64), "not a readable"),
    ("wrong shape", lambda f: _swap_weights(f, _wrong_shape), "expected"),
    ("layer beyond base", lambda f: _swap_weights(f, _extra_layer), "targets layer 9"),
    ("non-lora tensor", lambda f: _swap_weights(f, _lm_head), "unexpected tensor"),
    ("symlink", lambda f: os.symlink("/etc/passwd", f / "notes.txt"), "symlink"),
    ("too big", lambda f: (f / "blob.bin").write_bytes(b"\x00" * (11 * 1024 * 1024)), "over the limit"),
]


def test_good_adapter_passes(demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path) -> None:
    manifest = validate_adapter_dir(good_adapter(demo_model, tmp_path / "a"), base=base_spec, limits=LIMITS)
    assert manifest.rank == 8 and manifest.alpha == 16
    assert manifest.target_modules == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert len(manifest.sha256) == 64 and manifest.size_bytes > 0


@pytest.mark.parametrize(("case", "breaker", "message"), CASES, ids=[c[0] for c in CASES])
def test_broken_adapter_is_refused(
    demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path, case: str, breaker: Callable, message: str
) -> None:
    folder = good_adapter(demo_model, tmp_path / "a")
    breaker(folder)
    with pytest.raises(InvalidAdapter) as info:
        validate_adapter_dir(folder, base=base_spec, limits=LIMITS)
    assert message in info.value.message


def test_adapter_for_another_base_is_refused(demo_model: Path, tmp_path: Path) -> None:
    other = BaseModelSpec.from_config_dict(
        {"hidden_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 1024}
    )
    with pytest.raises(InvalidAdapter, match="expected"):
        validate_adapter_dir(good_adapter(demo_model, tmp_path / "a"), base=other, limits=LIMITS)


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "a" * 65, "sp ace", "a/b", "a@1"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidAdapter) as info:
        validate_name(name)
    assert info.value.param == "name"


@pytest.mark.parametrize("name", ["a", "support-bot", "v1.2_x", "0" * 64])
def test_good_names_pass(name: str) -> None:
    assert validate_name(name) == name
