"""API key tables, and the caller's identity that routes and services check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from switchyard.db import storable_text, utcnow

ALL_ADAPTERS = "*"
"""In an allowlist: every adapter the key's tenant may see (its own and shared ones)."""


class KeyScope(StrEnum):
    evaluate = "evaluate"
    """May call versions that are not serving (``alias@N`` of a candidate or rejected version)."""
    review = "review"
    """Its ``corrected_completion`` feedback may become training data."""
    fine_tune = "fine_tune"
    """May upload training files and run fine-tuning jobs (``/v1/files``, ``/v1/fine_tuning``) on
    its tenant's adapters."""


class ApiKeyBase(SQLModel):
    name: str = Field(min_length=1, max_length=128)
    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    """The tenant the key acts for; it sees only that tenant's adapters and shared ones."""
    allowed_adapters: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Adapters the key may call (``*``: all its tenant may see). Empty: the base model only."""
    scopes: list[KeyScope] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    log_content: bool = True


class ApiKeyCreate(ApiKeyBase):
    @field_validator("name", "tenant")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return storable_text(value)

    @field_validator("allowed_adapters")
    @classmethod
    def _storable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            storable_text(name)
        return value


class ApiKey(ApiKeyBase, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(index=True, unique=True, max_length=64)
    key_prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(
            key_id=self.id,
            name=self.name,
            tenant=self.tenant,
            allowed_adapters=tuple(self.allowed_adapters),
            scopes=frozenset(KeyScope(s) for s in self.scopes),
            log_content=self.log_content,
        )


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
    allowed_adapters: tuple[str, ...] = ()
    scopes: frozenset[KeyScope] = frozenset()
    log_content: bool = True
    is_admin: bool = False
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allowed", frozenset(self.allowed_adapters))

    def may_use(self, adapter: str, *, tenant: str | None, shared: bool) -> bool:
        """Whether this caller may see and call ``adapter`` (owned by ``tenant``)."""
        if self.is_admin:
            return True
        if not (shared or tenant == self.tenant):
            return False
        return ALL_ADAPTERS in self._allowed or adapter in self._allowed

    @property
    def may_evaluate(self) -> bool:
        return self.is_admin or KeyScope.evaluate in self.scopes

    @property
    def is_reviewer(self) -> bool:
        return self.is_admin or KeyScope.review in self.scopes

    @property
    def may_fine_tune(self) -> bool:
        return self.is_admin or KeyScope.fine_tune in self.scopes

    def owns(self, key_id: int | None) -> bool:
        return self.is_admin or (key_id is not None and key_id == self.key_id)


ADMIN = Principal(key_id=None, name="admin", is_admin=True)
