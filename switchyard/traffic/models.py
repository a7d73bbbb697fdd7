"""Traffic-log and feedback tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from switchyard.db import storable_text, utcnow

REQUEST_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Completion ids as the gateway makes them (``chatcmpl-<hex>``); anything else cannot be one."""


class RequestLogBase(SQLModel):
    id: str = Field(primary_key=True, max_length=64)
    """The completion id returned to the client (``chatcmpl-…`` or ``cmpl-…``)."""
    created_at: datetime = Field(default_factory=utcnow, index=True)
    endpoint: str = Field(max_length=32)
    key_id: int | None = Field(default=None, index=True)
    tenant: str | None = Field(default=None, max_length=128)
    model: str = Field(max_length=256)
    adapter: str | None = Field(default=None, index=True, max_length=64)
    adapter_version: int | None = None
    adapter_version_id: int | None = None
    stream: bool = False
    # none_as_null: an opted-out request is SQL NULL, not the JSON text "null", so IS NULL finds it.
    request: Any | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    """Messages or prompt; null when the key opted out of content logging."""
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text))
    """Text of the first choice; null when the key opted out of content logging."""
    choices: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    """Every choice (text and finish reason) when ``n`` > 1."""
    finish_reason: str | None = Field(default=None, max_length=32)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    status: int = Field(index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))


class RequestLog(RequestLogBase, table=True):
    __tablename__ = "request_log"


class FeedbackBase(SQLModel):
    score: float = Field(ge=-1.0, le=1.0)
    label: str | None = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, max_length=4000)
    corrected_completion: str | None = Field(default=None, max_length=200_000)


class FeedbackCreate(FeedbackBase):
    completion_id: str = Field(min_length=1, max_length=64, regex=REQUEST_ID_PATTERN)

    @field_validator("label", "comment", "corrected_completion")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return storable_text(value)


class Feedback(FeedbackBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="request_log.id", index=True, max_length=64)
    key_id: int | None = None
    tenant: str | None = Field(default=None, max_length=128)
    """The tenant of the key that sent it."""
    reviewer: bool = False
    """Sent by a reviewer (the admin or a key with the ``review`` scope): only a reviewer's
    ``corrected_completion`` may become training data."""
    created_at: datetime = Field(default_factory=utcnow)


class FeedbackPublic(FeedbackBase):
    id: int
    request_id: str
    tenant: str | None
    reviewer: bool
    created_at: datetime


class RequestLogPublic(RequestLogBase):
    feedback: list[FeedbackPublic] = []


class RequestLogsPublic(SQLModel):
    data: list[RequestLogBase]
    count: int
