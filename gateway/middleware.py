"""Pure ASGI middlewares (no response buffering, so streams pass untouched): request ids, and
the caller's trace context."""

from __future__ import annotations

import uuid

from opentelemetry import context, propagate
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"


class RequestIdMiddleware:
    """Gives every request a server-generated id (``request.state.request_id``) and returns it
    in ``x-request-id``. The id is never taken from the client: it keys the traffic log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class TraceContextMiddleware:
    """Continues the caller's trace: its W3C ``traceparent`` (and ``tracestate``, ``baggage``)
    headers become the current OpenTelemetry context for the whole request, stream included, so
    the spans the request starts are children of the caller's span. Which headers are read is
    OpenTelemetry's propagator setting (``OTEL_PROPAGATORS``; W3C trace context by default)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        token = context.attach(propagate.extract(headers))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
