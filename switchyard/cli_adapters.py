"""``switchyard adapters …``: registry operations straight on the database.

A running gateway picks every change up within its registry poll interval (it warms new
versions before moving its routes), so the CLI never needs the gateway to be reachable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlmodel import Session

app = typer.Typer(help="Manage adapters and their versions.", no_args_is_help=True)
T = TypeVar("T")


def _run(work: Callable[[Session], T]) -> T:
    from adapters.errors import AdapterError
    from switchyard.config import Settings
    from switchyard.db import open_database

    with open_database(Settings().resolved_database_url) as session:
        try:
            return work(session)
        except AdapterError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None


def _echo(payload: Any) -> None:
    typer.echo(json.dumps(payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload, indent=2))


def _store() -> Any:
    from adapters.config import AdapterSettings
    from adapters.store import make_store
    from switchyard.config import Settings

    return make_store(AdapterSettings().artifact_store, Settings().data_dir)


@app.command("list")
def list_adapters() -> None:
    """Every adapter with its active and canary versions."""
    from adapters.registry import describe, list_adapters

    def work(session: Session) -> None:
        rows, _ = list_adapters(session=session)
        for adapter in rows:
            view = describe(session=session, adapter=adapter, with_versions=False)
            canary = f" canary=v{view.canary_version} ({view.canary_weight:.0%})" if view.canary_version else ""
            typer.echo(f"{adapter.name}\tactive=v{view.active_version}{canary}\t{adapter.description}")

    _run(work)


@app.command()
def show(name: str) -> None:
    """One adapter with all its versions."""
    from adapters.registry import describe, require_adapter

    _run(lambda s: _echo(describe(session=s, adapter=require_adapter(session=s, name=name))))


@app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="Adapter (alias) name.")],
    source: Annotated[str, typer.Argument(help="Folder, .tar.gz/.zip archive, or hf://org/name[@rev].")],
    description: Annotated[str, typer.Option()] = "",
    parent_version: Annotated[int | None, typer.Option(help="Lineage: trained from this version.")] = None,
    dataset_snapshot_id: Annotated[str | None, typer.Option(help="Lineage: trained on this snapshot.")] = None,
) -> None:
    """Validate and register a new candidate version."""
    from adapters.base_model import BaseModelSpec
    from adapters.config import AdapterSettings
    from adapters.importer import import_version
    from adapters.models import AdapterVersionPublic
    from adapters.sources import source_from_uri
    from gateway.config import GatewaySettings
    from switchyard.config import Settings

    settings = Settings()
    limits = GatewaySettings().adapter_limits(AdapterSettings())
    base = BaseModelSpec.load(settings.resolved_base_model)
    version = _run(
        lambda s: AdapterVersionPublic.model_validate(
            import_version(
                session=s,
                store=_store(),
                name=name,
                source=source_from_uri(source),
                base=base,
                limits=limits,
                scratch_dir=settings.data_dir / "scratch",
                description=description,
                parent_version=parent_version,
                dataset_snapshot_id=dataset_snapshot_id,
            )
        )
    )
    typer.echo(f"registered {name}@{version.version} as a candidate (sha256 {version.sha256[:12]})")


@app.command()
def promote(name: str, version: int) -> None:
    """Make a version the alias's active version."""
    from adapters import lifecycle

    _run(lambda s: lifecycle.promote(session=s, name=name, version=version))
    typer.echo(f"{name} -> v{version}")


@app.command()
def rollback(name: str) -> None:
    """Return the alias to its previous active version."""
    from adapters import lifecycle
    from adapters.registry import describe

    view = _run(lambda s: describe(session=s, adapter=lifecycle.rollback(session=s, name=name), with_versions=False))
    typer.echo(f"{name} -> v{view.active_version}")


@app.command()
def canary(
    name: str,
    version: int,
    weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of traffic, 0 ends the canary.")] = 0.1,
) -> None:
    """Split the alias's traffic with a version (sticky per OpenAI `user`)."""
    from adapters import lifecycle

    _run(lambda s: lifecycle.set_canary(session=s, name=name, version=version, weight=weight))
    typer.echo(f"{name}: canary v{version} at {weight:.0%}")


@app.command()
def retire(name: str, version: int) -> None:
    """Retire a version that is not active."""
    from adapters import lifecycle

    _run(lambda s: lifecycle.retire(session=s, name=name, version=version))
    typer.echo(f"{name}@{version} retired")
