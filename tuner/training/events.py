"""Progress events and the result of a training run: JSON lines from the child to its parent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tuner.training.config import Hyperparameters

EventType = Literal["loading", "started", "step", "eval", "checkpoint", "result", "error"]


class TrainingMetrics(BaseModel):
    train_loss: float | None = None
    """Mean training loss over the run (the trainer's ``train_loss``)."""
    eval_loss: float | None = None
    """Hold-out loss of the saved adapter (the best evaluation); None without a hold-out split."""
    global_step: int = 0
    epochs: float = 0.0
    runtime_s: float = 0.0
    tokens_per_s: float | None = None
    peak_rss_bytes: int = 0
    peak_gpu_bytes: int | None = None
    train_examples: int = 0
    holdout_examples: int = 0
    dropped_too_long: int = 0
    """Examples longer than ``max_length`` tokens, left out of training."""
    trainable_params: int = 0
    stopped_early: bool = False


class TrainingResult(BaseModel):
    adapter_dir: Path
    """A PEFT LoRA folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    output_dir: Path
    init: Literal["parent", "fresh"]
    init_reason: str
    resumed_from_step: int | None = None
    hyperparameters: Hyperparameters
    metrics: TrainingMetrics


class TrainingEvent(BaseModel):
    """One line of the child's event stream; fields that do not apply to the type stay None."""

    type: EventType
    time: float = Field(default_factory=time.time)
    message: str | None = None
    step: int | None = None
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    checkpoint: str | None = None
    resumed_from_step: int | None = None
    result: TrainingResult | None = None

    def to_line(self) -> str:
        return self.model_dump_json(exclude_none=True) + "\n"

    @classmethod
    def from_line(cls, line: str | bytes) -> TrainingEvent | None:
        """The event on ``line``, or None for anything else a library may have printed."""
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or "type" not in data:
            return None
        try:
            return cls.model_validate(data)
        except ValueError:
            return None
