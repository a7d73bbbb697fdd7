"""Factories for PEFT adapter folders and demo base models, good and deliberately broken."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from switchyard.demo import build_demo_adapter

_CACHE: dict[tuple[Path, int, int], Path] = {}
_PEFT_CACHE: dict[tuple[Path, str], Path] = {}


def good_adapter(base_model: Path, folder: Path, *, seed: int = 11, rank: int = 8) -> Path:
    """A valid adapter copied into ``folder`` (built once per base, seed and rank)."""
    key = (base_model, seed, rank)
    if key not in _CACHE:
        _CACHE[key] = build_demo_adapter(
            base_model, base_model.parent / f".factory-{seed}-{rank}", seed=seed, rank=rank
        )
    shutil.copytree(_CACHE[key], folder)
    return folder


def peft_adapter(base_model: Path, folder: Path, *, seed: int = 11, **lora: Any) -> Path:
    """A folder saved by PEFT itself with ``LoraConfig(**lora)`` (r 8, alpha 16 and the attention
    projections unless given), copied into ``folder``; built once per base and arguments."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    options = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]} | lora
    key = (base_model, json.dumps([seed, options], sort_keys=True, default=str))
    if key not in _PEFT_CACHE:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **options))
        built = Path(tempfile.mkdtemp(prefix=".peft-", dir=base_model.parent))
        peft_model.save_pretrained(built, safe_serialization=True)
        _PEFT_CACHE[key] = built
    shutil.copytree(_PEFT_CACHE[key], folder)
    return folder


def edit_config(folder: Path, **changes: object) -> Path:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))
    return folder


def edit_weights(folder: Path, transform: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    """Rewrite ``adapter_model.safetensors`` as ``transform`` returns its tensors."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    save_file(transform(load_file(path)), path)
    return folder


def base_variant(demo_model: Path, folder: Path, *, config: dict | None = None, swap_tokens: bool = False) -> Path:
    """A copy of the demo base, same architecture and weights, with its ``config.json`` updated
    by ``config`` and, with ``swap_tokens``, a tokenizer that maps two tokens the other way
    round (as a tokenizer retrained on other text would)."""
    shutil.copytree(demo_model, folder)
    if config:
        path = folder / "config.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | config, indent=2))
    if swap_tokens:
        path = folder / "tokenizer.json"
        tokenizer = json.loads(path.read_text())
        vocab = tokenizer["model"]["vocab"]
        first, second = sorted(vocab, key=vocab.get)[-2:]
        vocab[first], vocab[second] = vocab[second], vocab[first]
        path.write_text(json.dumps(tokenizer))
    return folder
