"""What one training run needs: per-adapter hyperparameters and the job's paths.

Kept free of torch, TRL and PEFT imports, so the scheduler and the API can build and validate a
configuration without loading them; the runner turns it into TRL's ``SFTConfig``
(:meth:`TrainingConfig.sft_kwargs`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, field_validator

from adapters.base_model import LLAMA_PROJECTIONS

ProjectionName = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL_LINEAR = list(LLAMA_PROJECTIONS)

MAX_EPOCHS = 50
MAX_BATCH_SIZE = 256
MAX_LR_MULTIPLIER = 10.0


class Hyperparameters(BaseModel):
    """Per-adapter training settings. Defaults follow common QLoRA practice (the QLoRA paper,
    TRL's and PEFT's examples); the ``demo`` preset (:data:`PRESETS`) is what makes the tiny
    random demo model learn (DESIGN.md, "What makes the random demo model learn")."""

    model_config = {"extra": "forbid"}

    r: int = Field(default=16, ge=1, le=256)
    """LoRA rank. Must not exceed the engine's ``max_lora_rank``, or registration refuses it."""

    lora_alpha: int = Field(default=32, ge=1, le=4096)
    """LoRA scaling numerator (the update is scaled by alpha / r)."""

    lora_dropout: float = Field(default=0.05, ge=0, lt=1)

    target_modules: list[ProjectionName] = Field(default_factory=lambda: list(ATTENTION), min_length=1)
    """Projections that get LoRA matrices; only those vLLM serves for Llama-style models."""

    learning_rate: float = Field(default=2e-4, gt=0, le=0.1)

    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"

    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Fraction of the optimizer steps spent warming the learning rate up from zero."""

    n_epochs: int = Field(default=3, ge=1, le=MAX_EPOCHS)

    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH_SIZE)
    """Examples per forward pass (per device). The effective batch is this times
    ``gradient_accumulation_steps``."""

    gradient_accumulation_steps: int = Field(default=1, ge=1, le=MAX_BATCH_SIZE)

    max_length: int = Field(default=1024, ge=16, le=131_072)
    """Longest example in tokens (prompt and completion with the chat template); longer ones are
    dropped, not cut, since cutting would train on a truncated answer."""

    early_stopping_patience: int | None = Field(default=2, ge=1, le=100)
    """Evaluations on the hold-out split without improvement before training stops; None turns
    early stopping off. Needs a hold-out split."""

    early_stopping_threshold: float = Field(default=0.0, ge=0)
    """How much the hold-out loss must fall to count as an improvement."""

    seed: int = Field(default=42, ge=0, le=2**32 - 1)

    init_from: Literal["parent", "fresh"] = "parent"
    """``parent`` continues from the parent version's weights when the job has one and its rank and
    target modules match these; otherwise (and with ``fresh``) the LoRA matrices start new."""

    completion_only_loss: bool = True
    """Loss on the assistant's completion only, not on the prompt (TRL's prompt-completion
    handling). Learning to reproduce the prompts wastes the adapter's capacity."""

    padding_free: bool = True
    """Concatenate a batch into one sequence instead of padding it (TRL's ``padding_free``;
    transformers separates the examples by their position ids, with FlashAttention or SDPA)."""

    packing: bool = False
    """Pack several examples into each ``max_length`` row (TRL's best-fit-decreasing packing).
    Fewer, fuller steps: faster on large sets, but it changes what one step is."""

    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass: less memory, about 2.5x slower on the demo."""

    @field_validator("target_modules")
    @classmethod
    def _unique_in_serving_order(cls, value: list[str]) -> list[str]:
        return [name for name in LLAMA_PROJECTIONS if name in value]


PRESETS: dict[str, Hyperparameters] = {
    "default": Hyperparameters(),
    # Verified on the demo base (DESIGN.md): the defaults learn nothing measurable there, these
    # reach held-out accuracy 1.00. Its tiny size makes checkpointing pure overhead.
    "demo": Hyperparameters(
        learning_rate=3e-3,
        n_epochs=5,
        r=16,
        lora_alpha=32,
        target_modules=ALL_LINEAR,
        completion_only_loss=True,
        gradient_checkpointing=False,
    ),
}


def preset(name: str, **overrides: Any) -> Hyperparameters:
    """A named preset, with ``overrides`` validated on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown hyperparameter preset {name!r}; known: {sorted(PRESETS)}")
    return Hyperparameters.model_validate({**PRESETS[name].model_dump(), **overrides})


class OpenAIHyperparameters(BaseModel):
    """OpenAI's ``hyperparameters`` of a fine-tuning job (``method.supervised.hyperparameters``)."""

    model_config = {"extra": "forbid"}

    # Strict: JSON ``true`` or ``"3"`` is a client's mistake, not 1 or 3 epochs.
    n_epochs: Literal["auto"] | StrictInt = "auto"
    batch_size: Literal["auto"] | StrictInt = "auto"
    learning_rate_multiplier: Literal["auto"] | StrictFloat = "auto"

    @field_validator("n_epochs")
    @classmethod
    def _epochs(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if value != "auto" and not 1 <= value <= MAX_EPOCHS:
            raise ValueError(f"n_epochs must be 'auto' or between 1 and {MAX_EPOCHS}")
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if value != "auto" and not 1 <= value <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 'auto' or between 1 and {MAX_BATCH_SIZE}")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _multiplier(cls, value: Literal["auto"] | float) -> Literal["auto"] | float:
        if value != "auto" and not 0 < value <= MAX_LR_MULTIPLIER:
            raise ValueError(f"learning_rate_multiplier must be 'auto' or in (0, {MAX_LR_MULTIPLIER}]")
        return value


def from_openai(requested: OpenAIHyperparameters | dict[str, Any] | None, *, base: Hyperparameters) -> Hyperparameters:
    """Apply OpenAI's job hyperparameters to the adapter's own (``base``); ``"auto"`` keeps them.

    ``batch_size`` is OpenAI's effective batch: it is split into the largest per-device batch
    that divides it and is no larger than ``base.batch_size`` (what the adapter's memory budget
    allows), times gradient accumulation, so the effective batch is exactly what was asked.
    ``learning_rate_multiplier`` scales the adapter's own learning rate.
    """
    if not isinstance(requested, OpenAIHyperparameters):
        requested = OpenAIHyperparameters.model_validate(requested or {})
    changes: dict[str, Any] = {}
    if requested.n_epochs != "auto":
        changes["n_epochs"] = requested.n_epochs
    if requested.batch_size != "auto":
        total = requested.batch_size
        micro = max(d for d in range(1, min(total, base.batch_size) + 1) if total % d == 0)
        changes |= {"batch_size": micro, "gradient_accumulation_steps": total // micro}
    if requested.learning_rate_multiplier != "auto":
        changes["learning_rate"] = base.learning_rate * requested.learning_rate_multiplier
    return Hyperparameters.model_validate({**base.model_dump(), **changes})


def to_openai(hp: Hyperparameters) -> dict[str, Any]:
    """The job object's ``hyperparameters`` as OpenAI reports them (resolved, no "auto")."""
    return {"n_epochs": hp.n_epochs, "batch_size": hp.batch_size * hp.gradient_accumulation_steps}


def resolve_init(hp: Hyperparameters, parent_adapter: Path | None) -> tuple[Literal["parent", "fresh"], str]:
    """Whether to continue from ``parent_adapter``, and why.

    Continuing needs the same rank and target modules: PEFT loads the parent's matrices into
    modules of the same shape, so a parent with rank 8 on attention cannot become rank 16 on every
    projection (the demo adapters are exactly that case). Then the run starts fresh instead of
    failing. An unreadable parent is an error, not a reason to start fresh: it means the artifact
    store lost the champion's files.
    """
    if hp.init_from == "fresh":
        return "fresh", "init_from is 'fresh'"
    if parent_adapter is None:
        return "fresh", "no parent adapter"
    try:
        parent = json.loads((Path(parent_adapter) / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"the parent adapter's adapter_config.json cannot be read: {exc}") from None
    targets = parent.get("target_modules")
    if str(parent.get("peft_type", "")).upper() != "LORA":
        return "fresh", "the parent is not a LoRA adapter"
    if not isinstance(targets, list):
        return "fresh", "the parent's target_modules is a pattern, not a list of projections"
    if parent.get("rank_pattern") or parent.get("alpha_pattern"):
        return "fresh", "the parent uses per-module ranks or alphas"
    if parent.get("r") != hp.r:
        return "fresh", f"the parent has rank {parent.get('r')}, these hyperparameters rank {hp.r}"
    parent_targets = {str(t).rsplit(".", 1)[-1] for t in targets}
    if parent_targets != set(hp.target_modules):
        return "fresh", f"the parent targets {sorted(parent_targets)}, these hyperparameters {hp.target_modules}"
    return "parent", "continuing from the parent adapter"


class TrainingConfig(BaseModel):
    """One training run: the child process reads it from a JSON file (``python -m tuner.training``)."""

    model_config = {"extra": "forbid"}

    base_model: str = Field(min_length=1)
    """Local folder or hub id of the served base model."""

    dataset: Path
    """A ``datasets.DatasetDict`` folder (``save_to_disk``) with a ``train`` and optionally a
    ``holdout`` split, rows in TRL's conversational prompt-completion format."""

    output_dir: Path
    """Holds ``checkpoints/``, the final ``adapter/`` and ``result.json``. Reusing it resumes."""

    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)

    parent_adapter: Path | None = None
    """The version this one refreshes (the champion), if any; see :func:`resolve_init`."""

    device: Literal["auto", "cpu", "cuda"] = "auto"

    checkpoint_steps: int | None = Field(default=None, ge=1)
    """Save (and evaluate on the hold-out split) every this many steps; None: once per epoch."""

    save_total_limit: int = Field(default=2, ge=1, le=100)
    """Checkpoints kept (the best one by hold-out loss is always kept as well)."""

    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps, whatever the epochs (smoke runs and tests)."""

    logging_steps: int = Field(default=1, ge=1)
    """A progress event every this many steps."""

    @property
    def checkpoints_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.output_dir / "adapter"

    @property
    def result_file(self) -> Path:
        return self.output_dir / "result.json"

    def fingerprint(self) -> str:
        """What checkpoints depend on: a restart may resume only a run with the same one."""
        fields = self.model_dump(mode="json", include={"base_model", "dataset", "hyperparameters", "parent_adapter"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def sft_kwargs(self, *, on_gpu: bool, has_holdout: bool) -> dict[str, Any]:
        """Arguments of TRL's ``SFTConfig`` for this run."""
        hp = self.hyperparameters
        # Evaluation and saving share one schedule: the trainer can only keep the best checkpoint
        # (load_best_model_at_end, which early stopping relies on) when each save has an eval.
        schedule = "steps" if self.checkpoint_steps else "epoch"
        evaluate = has_holdout
        return {
            "output_dir": str(self.checkpoints_dir),
            "num_train_epochs": hp.n_epochs,
            "max_steps": self.max_steps or -1,
            "per_device_train_batch_size": hp.batch_size,
            "per_device_eval_batch_size": hp.batch_size,
            "gradient_accumulation_steps": hp.gradient_accumulation_steps,
            "learning_rate": hp.learning_rate,
            "lr_scheduler_type": hp.lr_scheduler,
            "warmup_steps": hp.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the steps
            # Padding-free without packing does not truncate (TRL refuses max_length there); the
            # runner drops over-long examples itself, before TRL sees them.
            "max_length": hp.max_length if hp.packing or not hp.padding_free else None,
            "padding_free": hp.padding_free,
            "packing": hp.packing,
            "completion_only_loss": hp.completion_only_loss,
            "gradient_checkpointing": hp.gradient_checkpointing,
            "seed": hp.seed,
            "data_seed": hp.seed,
            "bf16": on_gpu,  # TRL turns bf16 on by default; on CPU the compute dtype is float32
            "use_cpu": not on_gpu,
            "dataloader_pin_memory": on_gpu,
            "logging_steps": self.logging_steps,
            "save_strategy": schedule,
            "save_steps": self.checkpoint_steps or 500,
            "save_total_limit": self.save_total_limit,
            "eval_strategy": schedule if evaluate else "no",
            "eval_steps": self.checkpoint_steps,
            "load_best_model_at_end": evaluate,
            "metric_for_best_model": "eval_loss" if evaluate else None,
            "greater_is_better": False if evaluate else None,
            "report_to": [],
            "disable_tqdm": True,
        }
