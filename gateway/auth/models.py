"""API key tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from adapters.models import utcnow

ALL_ADAPTERS = "*"


class ApiKeyBase(SQLModel):
    name: str = Field(min_length=1, max_length=128)
    tenant: str | None = Field(default=None, max_length=128)
    allowed_adapters: list[str] = Field(default_factory=lambda: [ALL_ADAPTERS], sa_column=Column(JSON, nullable=False))
    log_content: bool = True


class ApiKeyCreate(ApiKeyBase):
    pass


class ApiKey(ApiKeyBase, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(index=True, unique=True, max_length=64)
    key_prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class ApiKeyPublic(ApiKeyBase):
    id: int
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str
    """The secret itself. It is shown only in this response and never stored."""


class ApiKeysPublic(SQLModel):
    data: list[ApiKeyPublic]
    count: int


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key, or the admin."""

    key_id: int | None
    name: str
    tenant: str | None = None
    allowed_adapters: tuple[str, ...] = (ALL_ADAPTERS,)
    log_content: bool = True
    is_admin: bool = False
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allowed", frozenset(self.allowed_adapters))

    def may_use(self, adapter: str) -> bool:
        return self.is_admin or ALL_ADAPTERS in self._allowed or adapter in self._allowed

    def owns(self, key_id: int | None) -> bool:
        return self.is_admin or (key_id is not None and key_id == self.key_id)


ADMIN = Principal(key_id=None, name="admin", is_admin=True)
