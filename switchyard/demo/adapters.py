"""Demo LoRA adapters in PEFT's folder format, with non-zero random weights.

PEFT initialises ``lora_B`` to zero, which would make an untrained adapter answer exactly like
the base. ``init_lora_weights=False`` keeps both matrices random, so each demo adapter is a
visibly different model, which is what a demo (and the routing tests) need.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoAdapter:
    name: str
    description: str
    seed: int
    rank: int = 8


DEMO_ADAPTERS: tuple[DemoAdapter, ...] = (
    DemoAdapter("support-bot", "Demo adapter: customer support tone (random weights).", seed=1),
    DemoAdapter("yard-json", "Demo adapter: structured answers (random weights).", seed=2),
)


def build_demo_adapter(base_model_dir: Path, out_dir: Path, *, seed: int, rank: int = 8) -> Path:
    """Write a PEFT LoRA adapter for ``base_model_dir`` into ``out_dir`` and return the folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    if (out_dir / "adapter_config.json").exists():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        lora_dropout=0.0,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir
