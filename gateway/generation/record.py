"""One traffic-log row, filled in as a request progresses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span

from gateway.auth.models import Principal
from gateway.error_responses import CLIENT_CLOSED, error_payload
from gateway.routing import RouteTarget

SAMPLING_KNOBS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "stream_options",
    }
)
"""Request parameters that carry no content, kept when a key opts out of content logging.
An allowlist on purpose: ``user``, ``stop`` and ``response_format`` (a schema) can all carry
what the client wrote, and so can any field added later until someone decides otherwise."""


def content_free(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` reduced to the sampling knobs, each a number, a flag or a dict of flags."""

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(v, bool) for v in value.values())  # stream_options
        return value is None or isinstance(value, bool | int | float)

    return {name: value for name, value in params.items() if name in SAMPLING_KNOBS and plain(value)}


@dataclass
class RequestRecord:
    request_id: str
    endpoint: str
    principal: Principal
    model: str
    stream: bool
    content: Any
    params: dict[str, Any]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    target: RouteTarget | None = None
    status: int = CLIENT_CLOSED
    error: str | None = None
    error_type: str | None = None
    """The error's code (``model_not_found``, ``engine_unavailable``, …): low-cardinality, for traces."""
    span: Span | None = None
    """The request's trace span, ended when its row is written."""
    texts: dict[int, list[str]] = field(default_factory=dict)
    finish_reasons: dict[int, str | None] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    _started: float = field(default_factory=time.perf_counter)
    _first_token_at: float | None = None

    @property
    def created(self) -> int:
        return int(self.created_at.timestamp())

    @property
    def served_model(self) -> str:
        """The exact model that answered: ``alias@version`` for an adapter."""
        if self.target is not None and self.target.version is not None:
            return self.target.version.qualified_name
        return self.model

    def on_tokens(self, index: int, text: str, token_count: int, finish_reason: str | None) -> None:
        if self._first_token_at is None and token_count:
            self._first_token_at = time.perf_counter()
        self.texts.setdefault(index, []).append(text)
        self.completion_tokens += token_count
        if finish_reason is not None:
            self.finish_reasons[index] = finish_reason

    def succeed(self) -> None:
        self.status = 200

    def fail(self, exc: BaseException) -> None:
        status, body = error_payload(exc) if isinstance(exc, Exception) else (CLIENT_CLOSED, None)
        self.status = status
        self.error_type = body["error"]["code"] if body is not None else "client_closed_request"
        if body is None:
            self.error = "client closed the connection"
        elif self.principal.log_content:
            self.error = body["error"]["message"]
        else:  # engine and template messages may quote the request (a schema, a message)
            self.error = f"{body['error']['code']} (message withheld: the key does not log content)"

    def to_row(self) -> dict[str, Any]:
        now = time.perf_counter()
        version = self.target.version if self.target else None
        keep = self.principal.log_content
        texts = {i: "".join(parts) for i, parts in sorted(self.texts.items())}
        choices = [
            {"index": i, "text": t if keep else None, "finish_reason": self.finish_reasons.get(i)}
            for i, t in texts.items()
        ]
        return {
            "id": self.request_id,
            "created_at": self.created_at.isoformat(),
            "endpoint": self.endpoint,
            "key_id": self.principal.key_id,
            "tenant": self.principal.tenant,
            "model": self.model,
            "adapter": version.adapter if version else None,
            "adapter_version": version.version if version else None,
            "adapter_version_id": version.version_id if version else None,
            "stream": self.stream,
            "request": self.content if keep else None,
            "params": self.params if keep else content_free(self.params),
            "output": texts.get(0) if keep else None,
            "choices": choices if len(choices) > 1 else None,
            "finish_reason": self.finish_reasons.get(0),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens if self.prompt_tokens is not None else None,
            "latency_ms": round((now - self._started) * 1000, 3),
            "ttft_ms": round((self._first_token_at - self._started) * 1000, 3) if self._first_token_at else None,
            "status": self.status,
            "error": self.error,
        }
