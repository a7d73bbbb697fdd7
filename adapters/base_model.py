"""What an adapter must fit: the served base model's architecture and module shapes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

# Projection name -> (in_features, out_features) as a function of the config, for Llama-style
# decoders (Llama, Mistral, Qwen2, ...), which is what vLLM's LoRA layers cover.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BaseModelSpec:
    architecture: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    module_shapes: dict[str, tuple[int, int]]

    @classmethod
    def from_config_dict(cls, config: dict) -> BaseModelSpec:
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
        )

    @classmethod
    def load(cls, model: str) -> BaseModelSpec:
        """Read the spec from a local folder, or through transformers' cache for a hub id."""
        path = Path(model)
        if (path / "config.json").is_file():
            return cls.from_config_dict(json.loads((path / "config.json").read_text()))
        from transformers import AutoConfig

        return cls.from_config_dict(AutoConfig.from_pretrained(model).to_dict())

    @property
    def fingerprint(self) -> str:
        """Stable hash of what an adapter depends on: architecture, sizes and vocabulary."""
        key = json.dumps([self.architecture, self.hidden_size, self.num_layers, self.vocab_size], separators=(",", ":"))
        return hashlib.sha256(key.encode()).hexdigest()[:16]
