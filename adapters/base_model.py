"""What an adapter must fit: the served base model's architecture, module shapes and identity."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Projection name -> (in_features, out_features) as a function of the config, for Llama-style
# decoders (Llama, Mistral, Qwen2, ...), which is what vLLM's LoRA layers cover.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# Written by whichever transformers saved the folder, or where it was loaded from: they do not
# change the checkpoint, and must not make a re-saved copy look like another model.
VOLATILE_CONFIG_KEYS = frozenset({"transformers_version", "_name_or_path", "_commit_hash"})
SAMPLED_ELEMENTS = 256


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _config_identity(config: dict[str, Any]) -> bytes:
    return _canonical({k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS})


def _file_identity(path: Path) -> bytes:
    """JSON files are compared as canonical JSON (so whitespace does not matter), others as bytes."""
    data = path.read_bytes()
    return _canonical(json.loads(data)) if path.suffix == ".json" else data


def _weights_sample(folder: Path) -> bytes:
    """Name, dtype, shape and the first elements of every tensor in the folder's safetensors.

    Reading all of a multi-gigabyte checkpoint at every start is too slow; two fine-tunes of one
    base differ in practically every tensor, so a few hundred elements of each tell them apart.
    Tensors are taken by name, so re-sharding the same weights keeps the identity.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return b""  # a config-only folder (e.g. vLLM's load_format="dummy")
    import torch
    from safetensors import safe_open

    samples: dict[str, bytes] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                part = weights.get_slice(name)
                shape = part.get_shape()
                index = (*(slice(0, 1) for _ in shape[:-1]), slice(0, SAMPLED_ELEMENTS))
                tensor = part[index] if shape else weights.get_tensor(name)
                head = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                samples[name] = _canonical([part.get_dtype(), shape]) + head
    digest = hashlib.sha256()
    for name in sorted(samples):
        digest.update(_canonical(name) + samples[name])
    return digest.digest()


@dataclass(frozen=True)
class BaseModelSpec:
    architecture: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    module_shapes: dict[str, tuple[int, int]]
    identity: str = ""
    """sha256 over what tells checkpoints of one architecture apart: the whole config, the
    tokenizer files, and the weights (a sample) or the hub id and commit."""

    @classmethod
    def from_config_dict(cls, config: dict, *, identity: str | None = None) -> BaseModelSpec:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        intermediate = int(config.get("intermediate_size") or 4 * hidden)
        shapes = {
            "q_proj": (hidden, heads * head_dim),
            "k_proj": (hidden, kv_heads * head_dim),
            "v_proj": (hidden, kv_heads * head_dim),
            "o_proj": (heads * head_dim, hidden),
            "gate_proj": (hidden, intermediate),
            "up_proj": (hidden, intermediate),
            "down_proj": (intermediate, hidden),
        }
        return cls(
            architecture=(config.get("architectures") or ["unknown"])[0],
            hidden_size=hidden,
            num_layers=int(config["num_hidden_layers"]),
            vocab_size=int(config["vocab_size"]),
            module_shapes=shapes,
            identity=identity or hashlib.sha256(_config_identity(config)).hexdigest(),
        )

    @classmethod
    def load(cls, model: str, *, revision: str | None = None) -> BaseModelSpec:
        """Read the spec from a local folder, or through the hub's cache for a hub id."""
        path = Path(model)
        if (path / "config.json").is_file():
            return cls._from_files(
                path / "config.json", [path / name for name in TOKENIZER_FILES], _weights_sample(path)
            )
        return cls._from_hub(model, revision)

    @classmethod
    def _from_files(cls, config_file: Path, tokenizer_files: list[Path], extra: bytes) -> BaseModelSpec:
        config = json.loads(config_file.read_text())
        digest = hashlib.sha256(_config_identity(config))
        for file in tokenizer_files:
            if file.is_file():
                digest.update(_canonical(file.name) + hashlib.sha256(_file_identity(file)).digest())
        digest.update(extra)
        return cls.from_config_dict(config, identity=digest.hexdigest())

    @classmethod
    def _from_hub(cls, model: str, revision: str | None) -> BaseModelSpec:
        # The commit names the weights exactly; sampling them would need the whole download first.
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        config_file = Path(hf_hub_download(model, "config.json", revision=revision))
        tokenizers = []
        for name in TOKENIZER_FILES:
            try:
                tokenizers.append(Path(hf_hub_download(model, name, revision=revision)))
            except EntryNotFoundError:
                continue
        # The hub cache keeps each file under snapshots/<commit>/.
        commit = config_file.parent.name if config_file.parent.parent.name == "snapshots" else revision
        return cls._from_files(config_file, tokenizers, _canonical([model, commit]))

    @property
    def fingerprint(self) -> str:
        """Short stable hash of what an adapter depends on: the architecture and sizes, and which
        checkpoint of it this is (two bases with one architecture but another config, tokenizer
        or weights get different fingerprints)."""
        key = _canonical([self.architecture, self.hidden_size, self.num_layers, self.vocab_size, self.identity])
        return hashlib.sha256(key).hexdigest()[:32]
