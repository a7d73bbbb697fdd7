"""QLoRA training of adapter versions, in a child process.

The parent side (this package's import) stays light: configuration, events and the process
supervisor. The runner, which needs torch, TRL, PEFT and bitsandbytes, is imported by the child
(``python -m tuner.training``) or explicitly (``tuner.training.runner``).
"""

from tuner.training.config import (
    PRESETS,
    Hyperparameters,
    OpenAIHyperparameters,
    TrainingConfig,
    from_openai,
    preset,
    resolve_init,
    to_openai,
)
from tuner.training.events import TrainingEvent, TrainingMetrics, TrainingResult
from tuner.training.process import TrainingOutcome, TrainingProcess, TrainingStatus
from tuner.training.stop import EXIT_CANCELLED

__all__ = [
    "EXIT_CANCELLED",
    "PRESETS",
    "Hyperparameters",
    "OpenAIHyperparameters",
    "TrainingConfig",
    "TrainingEvent",
    "TrainingMetrics",
    "TrainingOutcome",
    "TrainingProcess",
    "TrainingResult",
    "TrainingStatus",
    "from_openai",
    "preset",
    "resolve_init",
    "to_openai",
]
