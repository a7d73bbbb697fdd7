"""Domain exceptions of the tuner: training files, fine-tuning jobs and tuning policies."""

from __future__ import annotations

from switchyard.exceptions import SwitchyardError


class TunerError(SwitchyardError):
    """Base class of the tuner's errors."""


class InvalidTrainingFile(TunerError):
    """An uploaded training file breaks the fine-tuning format (the message names the lines)."""


class InvalidJob(TunerError):
    """A fine-tuning job request that cannot be run as asked (bad model, suffix, file, ...)."""


class TuningResourceNotFound(TunerError):
    """No such file or job, or it belongs to another tenant (the two look the same on purpose)."""


class JobConflict(TunerError):
    """The job's state forbids the request (e.g. cancelling a job that already ended)."""


class InvalidPolicy(TunerError):
    """A tuning policy that cannot be stored: unknown or out-of-range overrides, a bad schedule."""


class TrainingFailed(TunerError):
    """The training child failed: it crashed, was killed, or raised (the message says which)."""
