"""Validation of a PEFT LoRA folder against the served base model and the engine's limits.

Nothing is copied, registered or loaded until :func:`validate_adapter_dir` has passed, so a
bad adapter leaves the registry, the store and the engine exactly as they were. The checks
mirror what vLLM does when it loads an adapter (``vllm/lora/peft_helper.py``:
``PEFTHelper.from_dict``, ``__post_init__`` and ``validate_legal``; ``vllm/lora/lora_model.py``:
``LoRAModel.from_local_checkpoint`` and ``from_lora_tensors``; ``vllm/lora/utils.py``:
``parse_fine_tuned_lora_name``), so that what passes here loads there. Messages never carry a
filesystem path: they reach API clients.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from adapters.base_model import LLAMA_PROJECTIONS, BaseModelSpec
from adapters.exceptions import InvalidAdapter
from adapters.models import NAME_PATTERN

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CONTRACT_FILES = (CONFIG_FILE, WEIGHTS_FILE)
MAX_CONFIG_BYTES = 1 << 20
"""PEFT writes about a kilobyte; anything near this is not a LoRA config."""
MAX_PATTERN_CHARS = 512
REGEX_TIMEOUT_S = 0.1
"""Patterns come from the adapter's author; a catastrophic one must not hang an import."""

# vLLM's parse_fine_tuned_lora_name accepts exactly ``<module>.lora_A.weight`` / ``.lora_B.weight``
# (after an optional ``base_model.model.`` prefix); PEFT's adapter-named keys (``lora_A.default.weight``)
# and lora_B biases are "unsupported LoRA weight" there. For Llama-style decoders the module is
# ``model.layers.<i>.<self_attn|mlp>.<proj>``.
_KEY = re.compile(r"^(?:base_model\.model\.)?(model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+))\.lora_(A|B)\.weight$")
_BLOCK = {proj: "self_attn" for proj in LLAMA_PROJECTIONS[:4]} | {proj: "mlp" for proj in LLAMA_PROJECTIONS[4:]}
# vLLM casts LoRA tensors to the engine's lora_dtype; only floating-point weights mean anything then.
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# PEFTHelper._init_is_supported: string inits vLLM accepts (the others rewrite the base weights).
SUPPORTED_INITS = frozenset({"gaussian", "eva", "orthogonal", "mica", "lora_ga"})
# PEFTHelper._validate_features (and PEFT options with no vLLM counterpart): each must be unset or false.
UNSUPPORTED_FEATURES = {
    "use_dora": "DoRA (use_dora) is not supported by vLLM",
    "lora_bias": "LoRA bias (lora_bias) is not supported by vLLM",
    "modules_to_save": "modules_to_save is not supported: adapters may only carry LoRA weights",
    "alora_invocation_tokens": "Activated LoRA (alora_invocation_tokens) is not supported by vLLM",
    "layer_replication": "layer_replication is not supported by vLLM",
    "use_bdlora": "block-diagonal LoRA (use_bdlora) is not supported by vLLM",
    "use_qalora": "QALoRA (use_qalora) is not supported by vLLM",
    "trainable_token_indices": "trainable_token_indices is not supported: adapters may only carry LoRA weights",
    # PEFT uses it for GPT-2-style Conv1D layers; the served projections are Linear and vLLM ignores it.
    "fan_in_fan_out": "fan_in_fan_out is not supported: the served base's projections are Linear layers",
}


@dataclass(frozen=True)
class EngineLimits:
    max_lora_rank: int
    max_adapter_bytes: int


@dataclass(frozen=True)
class ArtifactDigest:
    """sha256 of each contract file, and one digest over both that names the artifact."""

    config_sha256: str
    weights_sha256: str

    @property
    def sha256(self) -> str:
        listing = f"{CONFIG_FILE}\0{self.config_sha256}\n{WEIGHTS_FILE}\0{self.weights_sha256}\n"
        return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class AdapterManifest:
    """What validation learned about a folder; stored with the version."""

    rank: int
    """The largest rank of any module (what the engine's ``max_lora_rank`` must cover)."""
    alpha: float
    target_modules: list[str]
    digest: ArtifactDigest
    size_bytes: int

    @property
    def sha256(self) -> str:
        return self.digest.sha256


@dataclass(frozen=True)
class _LoraSpec:
    rank: int
    alpha: float
    target_modules: list[str] | regex.Pattern
    rank_pattern: list[tuple[regex.Pattern, int]]


def validate_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidAdapter(
            f"invalid adapter name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_digest(folder: Path) -> ArtifactDigest:
    """Digest of the contract files in ``folder`` (raises OSError if one is missing)."""
    return ArtifactDigest(
        config_sha256=sha256_of(Path(folder) / CONFIG_FILE), weights_sha256=sha256_of(Path(folder) / WEIGHTS_FILE)
    )


def _check_folder(folder: Path, limits: EngineLimits) -> int:
    if not folder.is_dir():
        raise InvalidAdapter("the adapter folder does not exist")
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
    for filename in CONTRACT_FILES:
        if not (folder / filename).is_file():
            raise InvalidAdapter(f"{filename} is missing")
    return size


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InvalidAdapter(f"{CONFIG_FILE} is over {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidAdapter(f"{CONFIG_FILE} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise InvalidAdapter(f"{CONFIG_FILE} is not UTF-8 text") from None
    except RecursionError:
        raise InvalidAdapter(f"{CONFIG_FILE} is nested too deeply") from None
    except ValueError:  # NaN/Infinity (_refuse_constant), or an integer beyond Python's digit limit
        raise InvalidAdapter(f"{CONFIG_FILE} is not valid JSON: it holds NaN, Infinity or a number too long") from None
    if not isinstance(config, dict):
        raise InvalidAdapter(f"{CONFIG_FILE} must hold a JSON object")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidAdapter(f"{CONFIG_FILE} describes peft_type {str(config.get('peft_type'))[:40]!r}, not LORA")
    return config


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _compile(pattern: str, what: str) -> regex.Pattern:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidAdapter(f"{CONFIG_FILE}: {what} is longer than {MAX_PATTERN_CHARS} characters")
    try:
        return regex.compile(pattern)
    except (regex.error, re.error, ValueError, RecursionError):
        raise InvalidAdapter(f"{CONFIG_FILE}: {what} is not a valid regular expression") from None


def _search(pattern: regex.Pattern, text: str, what: str, *, full: bool) -> bool:
    match = pattern.fullmatch if full else pattern.match
    try:
        found = match(text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        raise InvalidAdapter(f"{CONFIG_FILE}: {what} takes too long to match module names") from None
    return found is not None


def _check_features(config: dict[str, Any]) -> None:
    for key, reason in UNSUPPORTED_FEATURES.items():
        if config.get(key):
            raise InvalidAdapter(reason)
    bias = config.get("bias", "none")
    if bias != "none":  # PEFTHelper.validate_legal: "Adapter bias is not supported."
        raise InvalidAdapter(f"{CONFIG_FILE}: bias={bias!r} is not supported by vLLM; only 'none' is")
    init = config.get("init_lora_weights", True)
    if not isinstance(init, bool) and not (isinstance(init, str) and init.lower() in SUPPORTED_INITS):
        # PiSSA, OLoRA, CorDA, LoftQ ... rewrite the base weights when PEFT loads the adapter.
        raise InvalidAdapter(
            f"init_lora_weights={init!r} is not supported by vLLM: it changes the base model's weights. "
            "Convert the adapter to a plain LoRA (PEFT's path_initial_model_for_weight_conversion)"
        )
    if not isinstance(config.get("use_rslora", False), bool):
        raise InvalidAdapter(f"{CONFIG_FILE}: use_rslora must be true or false")


def _suffix_pattern(key: object, what: str) -> regex.Pattern:
    """PEFTHelper._match_pattern's rule (PEFT's get_pattern_key): ``key`` matches a dotted suffix."""
    if not isinstance(key, str) or not key:
        raise InvalidAdapter(f"{CONFIG_FILE}: {what} keys must be module name patterns")
    return _compile(rf"(.*\.)?({key})$", f"{what} key {key[:40]!r}")


def _check_rank(config: dict[str, Any], limits: EngineLimits) -> tuple[int, list[tuple[regex.Pattern, int]]]:
    rank = config.get("r")
    if not _is_int(rank) or rank < 1:  # PEFTHelper.__post_init__
        raise InvalidAdapter(f"{CONFIG_FILE}: r must be a positive integer, got {str(rank)[:40]}")
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict):
        raise InvalidAdapter(f"{CONFIG_FILE}: rank_pattern must be an object of module pattern -> rank")
    compiled = []
    for key, value in pattern.items():
        if not _is_int(value) or value < 1:  # PEFTHelper.__post_init__
            raise InvalidAdapter(f"{CONFIG_FILE}: rank_pattern[{key[:40]!r}] must be a positive integer")
        compiled.append((_suffix_pattern(key, "rank_pattern"), value))
    # validate_legal: the largest of r and every rank_pattern value must fit max_lora_rank.
    largest = max([rank, *pattern.values()])
    if largest > limits.max_lora_rank:
        raise InvalidAdapter(
            f"adapter rank r={str(largest)[:40]} exceeds the engine's max_lora_rank={limits.max_lora_rank}"
        )
    return rank, compiled


def _check_alpha(config: dict[str, Any]) -> float:
    if "lora_alpha" not in config:  # PEFTHelper.from_dict: a required field
        raise InvalidAdapter(f"{CONFIG_FILE}: lora_alpha is missing")
    alpha = config["lora_alpha"]
    if not _is_positive_number(alpha):
        raise InvalidAdapter(f"{CONFIG_FILE}: lora_alpha must be a positive number, got {str(alpha)[:40]}")
    pattern = config.get("alpha_pattern") or {}
    if not isinstance(pattern, dict):
        raise InvalidAdapter(f"{CONFIG_FILE}: alpha_pattern must be an object of module pattern -> alpha")
    for key, value in pattern.items():
        _suffix_pattern(key, "alpha_pattern")
        if not _is_positive_number(value):
            raise InvalidAdapter(f"{CONFIG_FILE}: alpha_pattern[{key[:40]!r}] must be a positive number")
    return float(alpha)


def _check_targets(config: dict[str, Any]) -> list[str] | regex.Pattern:
    if "target_modules" not in config:  # PEFTHelper.from_dict: a required field
        raise InvalidAdapter(f"{CONFIG_FILE}: target_modules is missing")
    targets = config["target_modules"]
    if isinstance(targets, str):  # PEFT: a regular expression over the whole module name
        return _compile(targets, "target_modules")
    if not isinstance(targets, list) or not targets:
        raise InvalidAdapter(f"{CONFIG_FILE}: target_modules must name at least one module")
    if not all(isinstance(t, str) and t for t in targets):
        raise InvalidAdapter(f"{CONFIG_FILE}: every entry of target_modules must be a module name")
    unsupported = sorted({t.rsplit(".", 1)[-1] for t in targets} - set(LLAMA_PROJECTIONS))
    if unsupported:
        shown = [u[:40] for u in unsupported[:5]]
        raise InvalidAdapter(f"unsupported target modules {shown}; supported: {list(LLAMA_PROJECTIONS)}")
    return targets


def _check_config(config: dict[str, Any], limits: EngineLimits) -> _LoraSpec:
    _check_features(config)
    rank, rank_pattern = _check_rank(config, limits)
    alpha = _check_alpha(config)
    return _LoraSpec(rank=rank, alpha=alpha, target_modules=_check_targets(config), rank_pattern=rank_pattern)


def _targeted(spec: _LoraSpec, module: str) -> bool:
    """PEFT's rule: a regex string must match the whole module name; a list entry names a suffix."""
    if isinstance(spec.target_modules, list):
        return any(module == t or module.endswith("." + t) for t in spec.target_modules)
    return _search(spec.target_modules, module, "target_modules", full=True)


def _rank_of(spec: _LoraSpec, module: str) -> int:
    """PEFTHelper.get_rank_and_scaling: the first rank_pattern key that matches wins, else r."""
    for pattern, rank in spec.rank_pattern:
        if _search(pattern, module, "rank_pattern", full=False):
            return rank
    return spec.rank


def _check_tensor(
    key: str, dtype: str, shape: tuple[int, ...], spec: _LoraSpec, base: BaseModelSpec
) -> tuple[str, str, int]:
    """One tensor as vLLM's loader reads it; returns its module, its half (A or B) and its rank."""
    match = _KEY.match(key)
    if match is None:
        raise InvalidAdapter(
            f"{WEIGHTS_FILE}: unexpected tensor {key[:120]!r} (only LoRA A/B weights of "
            "model.layers.<i>.<self_attn|mlp>.<proj> are allowed)"
        )
    module, layer, block, proj, which = match[1], int(match[2]), match[3], match[4], match[5]
    if _BLOCK.get(proj) != block:
        raise InvalidAdapter(f"{WEIGHTS_FILE}: tensor {key!r} targets an unsupported module")
    if layer >= base.num_layers:
        raise InvalidAdapter(f"tensor {key!r} targets layer {layer}, but the base has {base.num_layers}")
    if not _targeted(spec, module):
        raise InvalidAdapter(f"tensor {key!r} targets {proj!r}, which is not in target_modules")
    if dtype not in FLOAT_DTYPES:
        raise InvalidAdapter(f"tensor {key!r} has dtype {dtype}; LoRA weights must be one of {sorted(FLOAT_DTYPES)}")
    rank = _rank_of(spec, module)
    in_features, out_features = base.module_shapes[proj]
    expected = (rank, in_features) if which == "A" else (out_features, rank)
    if shape != expected:
        raise InvalidAdapter(
            f"tensor {key!r} has shape {list(shape)}, expected {list(expected)} for the served base model"
        )
    return module, which, rank


def _check_weights(path: Path, spec: _LoraSpec, base: BaseModelSpec) -> tuple[list[str], int]:
    import torch
    from safetensors import SafetensorError, safe_open

    halves: dict[str, set[str]] = {}
    largest = 0
    try:
        with safe_open(str(path), framework="pt") as weights:
            keys = list(weights.keys())
            if not keys:
                raise InvalidAdapter(f"{WEIGHTS_FILE} holds no tensors")
            for key in keys:
                tensor_slice = weights.get_slice(key)
                shape = tuple(tensor_slice.get_shape())
                module, which, rank = _check_tensor(key, tensor_slice.get_dtype(), shape, spec, base)
                largest = max(largest, rank)
                if which in halves.setdefault(module, set()):
                    # With and without the base_model.model. prefix: vLLM keeps whichever comes last.
                    raise InvalidAdapter(f"{WEIGHTS_FILE} holds lora_{which} of {module!r} twice")
                halves[module].add(which)
                if not torch.isfinite(weights.get_tensor(key)).all():
                    raise InvalidAdapter(f"tensor {key!r} holds NaN or infinite values")
    except SafetensorError as exc:  # its messages name the fault, never the file's path
        raise InvalidAdapter(f"{WEIGHTS_FILE} is not a readable safetensors file: {exc}") from None
    # vLLM builds one LoRALayerWeights per module and multiplies lora_b by the scaling when it
    # loads: a module with only one of the two matrices crashes the engine's loader.
    for module, found in sorted(halves.items()):
        if found != {"A", "B"}:
            missing = "lora_B" if "A" in found else "lora_A"
            raise InvalidAdapter(f"{WEIGHTS_FILE}: {module!r} has no {missing} weight (vLLM needs both A and B)")
    return sorted({module.rsplit(".", 1)[-1] for module in halves}), largest


def validate_adapter_dir(
    folder: Path, *, base: BaseModelSpec, limits: EngineLimits, param: str = "source"
) -> AdapterManifest:
    """Check ``folder`` against PEFT's LoRA format, the base model and the engine's limits.

    The digest is taken first, so that a folder changed while it is being checked no longer
    matches it, and the store refuses the copy (``param`` names the request field at fault).
    """
    folder = Path(folder)
    try:
        size = _check_folder(folder, limits)
        digest = artifact_digest(folder)
        spec = _check_config(_read_config(folder), limits)
        modules, rank = _check_weights(folder / WEIGHTS_FILE, spec, base)
    except InvalidAdapter as exc:
        exc.param = exc.param or param
        raise
    except OSError:  # e.g. a file that cannot be read; its text would carry the path
        raise InvalidAdapter("the adapter folder could not be read", param=param) from None
    return AdapterManifest(rank=rank, alpha=spec.alpha, target_modules=modules, digest=digest, size_bytes=size)
