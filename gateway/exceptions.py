"""Domain exceptions raised by gateway services (mapped to HTTP in :mod:`gateway.error_responses`)."""

from __future__ import annotations

from switchyard.exceptions import SwitchyardError


class GatewayError(SwitchyardError):
    """Base class of the gateway's errors."""


class ClientDisconnected(GatewayError):
    """The client left before its non-stream answer was ready: the engine request was aborted
    and the row logged with 499. Nobody reads the response this raises."""


class InvalidRequest(GatewayError):
    """The request is well-formed JSON but asks for something the gateway cannot do."""


class ModelNotFound(GatewayError):
    """No such model, or the caller's key may not use it (the two look the same on purpose)."""


class ContextLengthExceeded(GatewayError):
    """Prompt plus requested completion does not fit the model's context window."""


class AuthenticationFailed(GatewayError):
    """Missing, unknown or revoked API key."""


class PermissionDenied(GatewayError):
    """The key is valid but this route needs the admin key."""


class ResourceNotFound(GatewayError):
    """A logged request, key or other record does not exist (or is not the caller's)."""


class QueueFull(GatewayError):
    """Admission control refused the request; the client should retry later."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(GatewayError):
    """A dependency (the engine, the database) cannot serve right now; retrying later may work."""


class EngineUnavailable(ServiceUnavailable):
    """The engine is not loaded yet, or failed."""


class EngineDead(EngineUnavailable):
    """The engine died and is being restarted: what ``/health`` says meanwhile."""
