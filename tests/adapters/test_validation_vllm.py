"""Validation refuses what vLLM cannot load, and accepts what it can.

Config cases are checked against vLLM's own ``PEFTHelper`` (``from_dict`` + ``validate_legal``),
so the two stay in step; weight cases are the ones vLLM's loader crashes on or loads wrongly.
Every refusal is an ``InvalidAdapter`` with a ``param`` and no filesystem path in its message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from adapters.base_model import BaseModelSpec
from adapters.exceptions import InvalidAdapter
from adapters.validation import EngineLimits, validate_adapter_dir
from tests.utils.adapters import edit_config, edit_weights, good_adapter, peft_adapter

LIMITS = EngineLimits(max_lora_rank=16, max_adapter_bytes=10 * 1024 * 1024)
Tensors = dict[str, torch.Tensor]


def _drop(half: str) -> Callable[[Tensors], Tensors]:
    def transform(tensors: Tensors) -> Tensors:
        key = next(k for k in sorted(tensors) if f"lora_{half}" in k)
        return {k: v for k, v in tensors.items() if k != key}

    return transform


def _first(tensors: Tensors, half: str = "A") -> str:
    return next(k for k in sorted(tensors) if f"lora_{half}" in k)


def _poison(tensors: Tensors) -> Tensors:
    key = _first(tensors)
    poisoned = tensors[key].clone()
    poisoned[0, 0] = float("nan")
    return {**tensors, key: poisoned}


def _as_int8(tensors: Tensors) -> Tensors:
    key = _first(tensors)
    return {**tensors, key: tensors[key].to(torch.int8)}


def _named_adapter_keys(tensors: Tensors) -> Tensors:
    return {k.replace(".weight", ".default.weight"): v for k, v in tensors.items()}


def _twice(tensors: Tensors) -> Tensors:
    key = _first(tensors)
    return {**tensors, key.removeprefix("base_model.model."): tensors[key].clone()}


def _raw_config(text: str) -> Callable[[Path], object]:
    return lambda f: (f / "adapter_config.json").write_text(text)


# (case, breaker, message, vLLM's PEFTHelper refuses it too)
CONFIG_CASES: list[tuple[str, Callable[[Path], object], str, bool]] = [
    ("pissa", lambda f: edit_config(f, init_lora_weights="pissa"), "init_lora_weights='pissa'", True),
    ("pissa_niter", lambda f: edit_config(f, init_lora_weights="pissa_niter_4"), "init_lora_weights", True),
    ("olora", lambda f: edit_config(f, init_lora_weights="olora"), "init_lora_weights='olora'", True),
    ("loftq", lambda f: edit_config(f, init_lora_weights="loftq"), "init_lora_weights='loftq'", True),
    ("corda", lambda f: edit_config(f, init_lora_weights="corda"), "init_lora_weights='corda'", True),
    ("dora", lambda f: edit_config(f, use_dora=True), "DoRA", True),
    ("bias all", lambda f: edit_config(f, bias="all"), "bias='all'", True),
    ("bias lora_only", lambda f: edit_config(f, bias="lora_only"), "bias='lora_only'", True),
    ("lora_bias", lambda f: edit_config(f, lora_bias=True), "lora_bias", True),
    ("modules_to_save", lambda f: edit_config(f, modules_to_save=["lm_head"]), "modules_to_save", True),
    ("alora", lambda f: edit_config(f, alora_invocation_tokens=[1, 2]), "Activated LoRA", True),
    ("layer_replication", lambda f: edit_config(f, layer_replication=[[0, 1]]), "layer_replication", True),
    ("qalora", lambda f: edit_config(f, use_qalora=True), "QALoRA", True),
    ("rank_pattern too big", lambda f: edit_config(f, rank_pattern={"q_proj": 32}), "max_lora_rank=16", True),
    ("rank_pattern zero", lambda f: edit_config(f, rank_pattern={"q_proj": 0}), "rank_pattern", True),
    ("rank too high", lambda f: edit_config(f, r=10**30), "exceeds the engine's max_lora_rank", True),
    ("rank negative", lambda f: edit_config(f, r=-3), "r must be a positive integer", True),
    ("lora_alpha missing", lambda f: _drop_key(f, "lora_alpha"), "lora_alpha is missing", True),
    ("target_modules missing", lambda f: _drop_key(f, "target_modules"), "target_modules is missing", True),
    # Stricter than vLLM, which would load these and compute nonsense or ignore the flag.
    ("fan_in_fan_out", lambda f: edit_config(f, fan_in_fan_out=True), "fan_in_fan_out", False),
    ("rank bool", lambda f: edit_config(f, r=True), "r must be a positive integer", False),
    ("alpha bool", lambda f: edit_config(f, lora_alpha=True), "lora_alpha must be a positive number", False),
    ("alpha zero", lambda f: edit_config(f, lora_alpha=0), "lora_alpha must be a positive number", False),
    ("alpha NaN", _raw_config('{"peft_type": "LORA", "r": 8, "lora_alpha": NaN}'), "not valid JSON", False),
    ("rslora not bool", lambda f: edit_config(f, use_rslora="yes"), "use_rslora", False),
    ("bad regex", lambda f: edit_config(f, target_modules="(q_proj"), "not a valid regular expression", False),
    ("bad rank_pattern regex", lambda f: edit_config(f, rank_pattern={"(q": 4}), "not a valid regular", False),
    ("target entries", lambda f: edit_config(f, target_modules=["q_proj", 7]), "every entry", False),
    ("target dict", lambda f: edit_config(f, target_modules={"q_proj": 1}), "must name at least one", False),
    ("unknown init", lambda f: edit_config(f, init_lora_weights=3), "init_lora_weights=3", False),
    ("nested", _raw_config("[" * 100_000 + "]" * 100_000), "nested too deeply", False),
    ("huge integer", _raw_config('{"r": 1' + "0" * 5000 + "}"), "not valid JSON", False),
    ("not utf-8", lambda f: (f / "adapter_config.json").write_bytes(b"\xff\xfe{"), "UTF-8", False),
    ("too big", _raw_config(" " * (2 << 20) + "{}"), "over 1048576 bytes", False),
]

WEIGHT_CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("A without B", lambda f: edit_weights(f, _drop("B")), "has no lora_B weight"),
    ("B without A", lambda f: edit_weights(f, _drop("A")), "has no lora_A weight"),
    ("NaN", lambda f: edit_weights(f, _poison), "NaN or infinite"),
    ("int8", lambda f: edit_weights(f, _as_int8), "has dtype I8"),
    ("adapter-named keys", lambda f: edit_weights(f, _named_adapter_keys), "unexpected tensor"),
    ("same tensor twice", lambda f: edit_weights(f, _twice), "twice"),
    ("regex matches none", lambda f: edit_config(f, target_modules="q_proj"), "not in target_modules"),
    ("rank_pattern vs shapes", lambda f: edit_config(f, rank_pattern={"q_proj": 4}), "expected [4, 128]"),
]


def _drop_key(folder: Path, key: str) -> Path:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.pop(key, None)
    path.write_text(json.dumps(config))
    return folder


def _refusal(folder: Path, base: BaseModelSpec) -> InvalidAdapter:
    with pytest.raises(InvalidAdapter) as info:
        validate_adapter_dir(folder, base=base, limits=LIMITS)
    assert info.value.param == "source"
    assert str(folder) not in info.value.message and str(folder.parent) not in info.value.message
    return info.value


@pytest.mark.parametrize(("case", "breaker", "message", "vllm_refuses"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_vllm_cannot_load_is_refused(
    demo_model: Path,
    base_spec: BaseModelSpec,
    tmp_path: Path,
    case: str,
    breaker: Callable,
    message: str,
    vllm_refuses: bool,
) -> None:
    folder = good_adapter(demo_model, tmp_path / "a")
    breaker(folder)
    assert message in _refusal(folder, base_spec).message
    if vllm_refuses:
        from vllm.config.lora import LoRAConfig
        from vllm.lora.peft_helper import PEFTHelper

        with pytest.raises(ValueError):
            PEFTHelper.from_dict(json.loads((folder / "adapter_config.json").read_text())).validate_legal(
                LoRAConfig(max_lora_rank=LIMITS.max_lora_rank)
            )


@pytest.mark.parametrize(("case", "breaker", "message"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_weights_vllm_cannot_load_are_refused(
    demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path, case: str, breaker: Callable, message: str
) -> None:
    folder = good_adapter(demo_model, tmp_path / "a")
    breaker(folder)
    assert message in _refusal(folder, base_spec).message


def _vllm_load(folder: Path, helper: Any) -> Any:
    """vLLM's adapter loader, called as its LoRA worker calls it, without an engine."""
    from vllm.lora.lora_model import LoRAModel

    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    return LoRAModel.from_local_checkpoint(
        str(folder), projections, helper, lora_model_id=1, device="cpu", dtype=torch.float32
    )


def test_vllm_crashes_on_a_missing_lora_b(demo_model: Path, tmp_path: Path) -> None:
    """Why a half pair is refused: vLLM's own loader takes it, then fails when it scales lora_b."""
    from vllm.lora.peft_helper import PEFTHelper

    folder = edit_weights(good_adapter(demo_model, tmp_path / "a"), _drop("B"))
    loaded = _vllm_load(folder, PEFTHelper.from_local_dir(str(folder), None))
    with pytest.raises(TypeError):
        for weights in loaded.loras.values():
            weights.optimize()


@pytest.mark.parametrize(
    "lora",
    [
        {"init_lora_weights": "gaussian"},
        {"use_rslora": True},
        {"rank_pattern": {"q_proj": 4}, "alpha_pattern": {"v_proj": 4}},
        {"target_modules": r".*\.(q_proj|v_proj)"},
        {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
    ],
    ids=["gaussian", "rslora", "mixed-ranks", "regex-targets", "all-linear"],
)
def test_what_vllm_loads_passes(demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path, lora: dict) -> None:
    from vllm.config.lora import LoRAConfig
    from vllm.lora.peft_helper import PEFTHelper

    folder = peft_adapter(demo_model, tmp_path / "a", **lora)
    manifest = validate_adapter_dir(folder, base=base_spec, limits=LIMITS)
    assert manifest.rank == 8
    helper = PEFTHelper.from_local_dir(str(folder), None)
    helper.validate_legal(LoRAConfig(max_lora_rank=LIMITS.max_lora_rank))
    loaded = _vllm_load(folder, helper)
    assert {name.rsplit(".", 1)[-1] for name in loaded.loras} == set(manifest.target_modules)
    for weights in loaded.loras.values():
        weights.optimize()  # where a half pair would crash


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "lora_only"}, "bias='lora_only'"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights='pissa'"),
        ({"init_lora_weights": "olora"}, "init_lora_weights='olora'"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ],
    ids=["dora", "bias", "pissa", "olora", "modules_to_save"],
)
def test_real_peft_variants_are_refused(
    demo_model: Path, base_spec: BaseModelSpec, tmp_path: Path, lora: dict, message: str
) -> None:
    folder = peft_adapter(demo_model, tmp_path / "a", **lora)
    assert message in _refusal(folder, base_spec).message
