"""Every package's tables in one metadata, for callers that create or open the whole database
(first-start preparation, the CLI, tests). It sits above every package, as composition does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

import adapters.models
import gateway.auth.models
import monitoring.drift.models
import switchyard.traffic.models
import tuner.files.models
import tuner.jobs.models
import tuner.models
import tuner.policies
from switchyard.db import make_engine, session_scope

TABLE_MODULES = (
    adapters.models,
    gateway.auth.models,
    monitoring.drift.models,
    switchyard.traffic.models,
    tuner.models,
    tuner.files.models,
    tuner.jobs.models,
    tuner.policies,
)
"""The modules that define tables (importing them registers the tables in ``SQLModel.metadata``)."""


def create_all_tables(engine: Engine) -> None:
    """Create every package's tables that do not exist yet."""
    SQLModel.metadata.create_all(engine)


@contextmanager
def open_database(url: str) -> Iterator[Session]:
    """A session on ``url`` with every table in place, for short-lived callers (the CLI, first-start
    preparation); the engine is disposed when the block ends."""
    engine = make_engine(url)
    try:
        create_all_tables(engine)
        with session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()
