"""Validation of a PEFT LoRA folder against the served base model and the engine's limits.

Nothing is copied, registered or loaded until :func:`validate_adapter_dir` has passed, so a
bad adapter leaves the registry, the store and the engine exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from adapters.base_model import LLAMA_PROJECTIONS, BaseModelSpec
from adapters.errors import InvalidAdapter
from adapters.models import NAME_PATTERN

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# PEFT's key layout: base_model.model.model.layers.<i>.<block>.<proj>.lora_<A|B>[.<adapter>].weight
_KEY = re.compile(r"layers\.(\d+)\.[a-z_]+\.([a-z_]+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


@dataclass(frozen=True)
class EngineLimits:
    max_lora_rank: int
    max_adapter_bytes: int


@dataclass(frozen=True)
class AdapterManifest:
    """What validation learned about a folder; stored with the version."""

    rank: int
    alpha: float
    target_modules: list[str]
    sha256: str
    size_bytes: int


def validate_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidAdapter(
            f"invalid adapter name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise InvalidAdapter(f"{CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAdapter(f"{CONFIG_FILE} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidAdapter(f"{CONFIG_FILE} must hold a JSON object")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidAdapter(f"{CONFIG_FILE} describes peft_type {config.get('peft_type')!r}, not LORA")
    return config


def _check_folder(folder: Path, limits: EngineLimits) -> int:
    if not folder.is_dir():
        raise InvalidAdapter(f"adapter folder {folder.name!r} does not exist")
    size = 0
    root = folder.resolve()
    for entry in folder.rglob("*"):
        if entry.is_symlink():
            raise InvalidAdapter(f"adapter folder contains a symlink: {entry.relative_to(folder)}")
        if not entry.resolve().is_relative_to(root):
            raise InvalidAdapter(f"adapter file escapes its folder: {entry.relative_to(folder)}")
        if entry.is_file():
            size += entry.stat().st_size
    if size > limits.max_adapter_bytes:
        raise InvalidAdapter(f"adapter is {size} bytes, over the limit of {limits.max_adapter_bytes} bytes")
    return size


def _check_rank_and_targets(config: dict, limits: EngineLimits) -> tuple[int, float, list[str]]:
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise InvalidAdapter(f"{CONFIG_FILE}: r must be a positive integer, got {rank!r}")
    if rank > limits.max_lora_rank:
        raise InvalidAdapter(f"adapter rank r={rank} exceeds the engine's max_lora_rank={limits.max_lora_rank}")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        targets = [m for m in LLAMA_PROJECTIONS if re.fullmatch(targets, m) or targets == m]
    if not isinstance(targets, list) or not targets:
        raise InvalidAdapter(f"{CONFIG_FILE}: target_modules must name at least one module")
    unsupported = sorted({str(t).rsplit(".", 1)[-1] for t in targets} - set(LLAMA_PROJECTIONS))
    if unsupported:
        raise InvalidAdapter(f"unsupported target modules {unsupported}; supported: {list(LLAMA_PROJECTIONS)}")
    if config.get("modules_to_save"):
        raise InvalidAdapter("modules_to_save is not supported: adapters may only carry LoRA weights")
    alpha = config.get("lora_alpha", rank)
    if not isinstance(alpha, int | float):
        raise InvalidAdapter(f"{CONFIG_FILE}: lora_alpha must be a number, got {alpha!r}")
    return rank, float(alpha), sorted({str(t).rsplit(".", 1)[-1] for t in targets})


def _check_weights(path: Path, *, rank: int, targets: list[str], base: BaseModelSpec) -> None:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InvalidAdapter(f"{WEIGHTS_FILE} is missing")
    try:
        with safe_open(str(path), framework="numpy") as weights:
            keys = list(weights.keys())
            shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in keys}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidAdapter(f"{WEIGHTS_FILE} is not a readable safetensors file: {exc}") from None
    if not keys:
        raise InvalidAdapter(f"{WEIGHTS_FILE} holds no tensors")
    for key, shape in shapes.items():
        match = _KEY.search(key)
        if match is None:
            raise InvalidAdapter(f"{WEIGHTS_FILE}: unexpected tensor {key!r} (only LoRA A/B weights are allowed)")
        layer, module, which = int(match[1]), match[2], match[3]
        if layer >= base.num_layers:
            raise InvalidAdapter(f"tensor {key!r} targets layer {layer}, but the base has {base.num_layers}")
        if module not in targets:
            raise InvalidAdapter(f"tensor {key!r} targets {module!r}, which is not in target_modules")
        in_features, out_features = base.module_shapes[module]
        expected = (rank, in_features) if which == "A" else (out_features, rank)
        if shape != expected:
            raise InvalidAdapter(
                f"tensor {key!r} has shape {list(shape)}, expected {list(expected)} for the served base model"
            )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_adapter_dir(folder: Path, *, base: BaseModelSpec, limits: EngineLimits) -> AdapterManifest:
    """Check ``folder`` against PEFT's LoRA format, the base model and the engine's limits."""
    folder = Path(folder)
    size = _check_folder(folder, limits)
    config = _read_config(folder)
    rank, alpha, targets = _check_rank_and_targets(config, limits)
    weights = folder / WEIGHTS_FILE
    _check_weights(weights, rank=rank, targets=targets, base=base)
    return AdapterManifest(rank=rank, alpha=alpha, target_modules=targets, sha256=sha256_of(weights), size_bytes=size)
