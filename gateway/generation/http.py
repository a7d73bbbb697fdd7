"""Turning a generation result into an HTTP response (shared by both endpoint routers)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.generation.service import Completion, Disconnected, GenerationStream
from gateway.routing import RouteTarget

ADAPTER_VERSION_HEADER = "x-switchyard-adapter-version"


def version_headers(target: RouteTarget) -> dict[str, str]:
    if target.version is None:
        return {}
    return {ADAPTER_VERSION_HEADER: target.version.qualified_name}


def client_disconnected(request: Request) -> Disconnected:
    """An awaitable that returns once the client has closed its connection (vLLM's server
    listens the same way). The body has been read by then, so the only message left on the
    ASGI receive channel is ``http.disconnect``."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


class GenerationStreamResponse(StreamingResponse):
    """Server-sent events that always close their stream (slot, engine request, log row),
    even when the client is gone before the first byte and the body is never iterated."""

    def __init__(self, stream: GenerationStream) -> None:
        headers = {"Cache-Control": "no-cache", **version_headers(stream.target)}
        super().__init__(stream.body(), media_type="text/event-stream", headers=headers)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


def to_response(result: Completion | GenerationStream) -> JSONResponse | GenerationStreamResponse:
    if isinstance(result, GenerationStream):
        return GenerationStreamResponse(result)
    return JSONResponse(result.body.model_dump(mode="json"), headers=version_headers(result.target))
