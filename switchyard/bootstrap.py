"""First-start preparation: data folder, tables, secrets, and the demo model with its adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session

from adapters.base_model import BaseModelSpec
from adapters.config import artifact_store, engine_limits
from adapters.registry import get_adapter, register_version
from switchyard.config import Settings
from switchyard.demo import DEMO_ADAPTERS, build_demo_adapter, build_demo_model
from switchyard.schema import open_database

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    admin_key: str
    demo_adapters: tuple[str, ...]


def _register_demo_adapters(session: Session, settings: Settings) -> tuple[str, ...]:
    base = BaseModelSpec.load(settings.resolved_base_model)
    store = artifact_store(settings)
    for demo in DEMO_ADAPTERS:
        if get_adapter(session=session, name=demo.name) is not None:
            continue
        source = build_demo_adapter(
            settings.demo_model_dir, settings.data_dir / "demo-adapters" / demo.name, seed=demo.seed, rank=demo.rank
        )
        register_version(
            session=session,
            store=store,
            name=demo.name,
            source=source,
            base=base,
            limits=engine_limits(settings),
            description=demo.description,
            shared=True,  # the demo is for everyone: any key allowed to call it may
            activate=True,
        )
        logger.info("registered demo adapter %s", demo.name)
    return tuple(d.name for d in DEMO_ADAPTERS)


def prepare(settings: Settings) -> Prepared:
    """Idempotent: safe to run at every start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    admin_key = settings.resolve_admin_key()
    settings.resolve_metrics_token()
    demo: tuple[str, ...] = ()
    with open_database(settings.resolved_database_url) as session:
        if settings.uses_demo_model:
            build_demo_model(settings.demo_model_dir)
            demo = _register_demo_adapters(session, settings)
    return Prepared(admin_key=admin_key, demo_adapters=demo)
