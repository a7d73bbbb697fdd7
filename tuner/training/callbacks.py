"""Trainer callbacks of the child: progress events, and stopping at a step boundary.

Imported only by the runner, in the child process: it needs transformers.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuner.training.events import TrainingEvent
from tuner.training.stop import StopRequest

EventSink = Callable[[TrainingEvent], None]


def peak_memory(on_gpu: bool) -> tuple[int, int | None]:
    """Peak resident set size of this process, and peak GPU memory allocated by torch, in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    if not on_gpu:
        return rss, None
    import torch

    return rss, int(torch.cuda.max_memory_allocated())


class ProgressCallback(TrainerCallback):
    """Turns the trainer's logs into :class:`TrainingEvent` lines, and honours a stop request."""

    def __init__(self, emit: EventSink, stop: StopRequest, *, on_gpu: bool, started: TrainingEvent) -> None:
        self.emit = emit
        self.stop = stop
        self.on_gpu = on_gpu
        self.started = started
        self.train_summary: dict[str, float] = {}
        self._t0 = self._last_time = 0.0
        self._last_tokens: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Over the whole run (of this process)."""
        if self._last_tokens is None or self._last_time <= self._t0:
            return None
        return self._last_tokens / (self._last_time - self._t0)

    def _memory(self) -> dict[str, int | None]:
        rss, gpu = peak_memory(self.on_gpu)
        return {"peak_rss_bytes": rss, "peak_gpu_bytes": gpu}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.stop.in_loop = True
        self._t0 = self._last_time = time.monotonic()
        self.emit(self.started.model_copy(update={"step": state.global_step, "max_steps": state.max_steps}))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.stop.requested:
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        common = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch}
        if "eval_loss" in logs:
            self.emit(TrainingEvent(type="eval", eval_loss=logs["eval_loss"], **common, **self._memory()))
        elif "loss" in logs:
            rate = self._rate(logs.get("num_tokens"))
            self.emit(
                TrainingEvent(
                    type="step",
                    loss=logs["loss"],
                    learning_rate=logs.get("learning_rate"),
                    grad_norm=logs.get("grad_norm"),
                    tokens_per_s=rate,
                    **common,
                    **self._memory(),
                )
            )
        elif "train_runtime" in logs:
            self.train_summary = dict(logs)

    def _rate(self, num_tokens: float | None) -> float | None:
        """Tokens per second since the previous log. TRL logs a running ``num_tokens`` that starts
        at zero in each process, so a resumed run counts only its own work."""
        if num_tokens is None:
            return None
        now = time.monotonic()
        previous_tokens, previous_time = self._last_tokens or 0.0, self._last_time
        self._last_tokens, self._last_time = num_tokens, now
        if now <= previous_time or num_tokens < previous_tokens:
            return None
        return (num_tokens - previous_tokens) / (now - previous_time)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.emit(TrainingEvent(type="checkpoint", step=state.global_step, epoch=state.epoch, checkpoint=str(folder)))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.stop.in_loop = False
