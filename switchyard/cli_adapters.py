"""``switchyard adapters …``: registry operations straight on the database.

A running gateway picks every change up within its registry poll interval (it warms new
versions before moving its routes), so the CLI never needs the gateway to be reachable.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlmodel import Session

from adapters import lifecycle
from adapters.base_model import BaseModelSpec
from adapters.config import artifact_store, engine_limits
from adapters.importer import import_version
from adapters.models import AdapterVersionPublic
from adapters.registry import describe, list_adapters, list_events, require_adapter
from adapters.sources import source_from_uri
from switchyard.cli_settings import run_in_database, settings_of

app = typer.Typer(help="Manage adapters and their versions.", no_args_is_help=True, pretty_exceptions_show_locals=False)


def _echo(payload: Any) -> None:
    typer.echo(json.dumps(payload.model_dump(mode="json") if hasattr(payload, "model_dump") else payload, indent=2))


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every adapter with its active and canary versions."""

    def work(session: Session) -> None:
        rows, _ = list_adapters(session=session)
        for adapter in rows:
            view = describe(session=session, adapter=adapter, with_versions=False)
            canary = f" canary=v{view.canary_version} ({view.canary_weight:.0%})" if view.canary_version else ""
            owner = "shared" if adapter.shared else (adapter.tenant or "-")
            typer.echo(f"{adapter.name}\tactive=v{view.active_version}{canary}\t{owner}\t{adapter.description}")

    run_in_database(ctx, work)


@app.command()
def show(ctx: typer.Context, name: str) -> None:
    """One adapter with all its versions."""
    run_in_database(ctx, lambda s: _echo(describe(session=s, adapter=require_adapter(session=s, name=name))))


@app.command()
def events(ctx: typer.Context, name: str) -> None:
    """The adapter's audit trail: every lifecycle change, oldest first."""

    def work(session: Session) -> None:
        rows, _ = list_events(session=session, adapter=require_adapter(session=session, name=name))
        for event in rows:
            version = "-" if event.version is None else f"v{event.version}"
            typer.echo(f"{event.created_at.isoformat()}\t{event.action}\t{version}\t{json.dumps(event.detail)}")

    run_in_database(ctx, work)


@app.command("import")
def import_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter (alias) name.")],
    source: Annotated[str, typer.Argument(help="Folder, .tar.gz/.zip archive, or hf://org/name[@rev].")],
    description: Annotated[str, typer.Option()] = "",
    tenant: Annotated[str | None, typer.Option(help="Owner tenant, for a new adapter.")] = None,
    shared: Annotated[bool, typer.Option(help="Visible to every tenant, for a new adapter.")] = False,
    parent_version: Annotated[int | None, typer.Option(help="Lineage: trained from this version.")] = None,
    dataset_snapshot_id: Annotated[str | None, typer.Option(help="Lineage: trained on this snapshot.")] = None,
) -> None:
    """Validate and register a new candidate version."""
    settings = settings_of(ctx)
    base = BaseModelSpec.load(settings.resolved_base_model)
    version = run_in_database(
        ctx,
        lambda s: AdapterVersionPublic.model_validate(
            import_version(
                session=s,
                store=artifact_store(settings),
                name=name,
                source=source_from_uri(source, max_bytes=settings.registry.max_adapter_bytes),
                base=base,
                limits=engine_limits(settings),
                scratch_dir=settings.scratch_dir,
                reserved_names=frozenset({settings.served_model_name}),
                description=description,
                tenant=tenant,
                shared=shared,
                parent_version=parent_version,
                dataset_snapshot_id=dataset_snapshot_id,
            )
        ),
    )
    typer.echo(f"registered {name}@{version.version} as a candidate (sha256 {version.sha256[:12]})")


@app.command()
def promote(ctx: typer.Context, name: str, version: int) -> None:
    """Make a version the alias's active version."""
    run_in_database(ctx, lambda s: lifecycle.promote(session=s, name=name, version=version))
    typer.echo(f"{name} -> v{version}")


@app.command()
def rollback(ctx: typer.Context, name: str) -> None:
    """Return the alias to its previous active version."""
    view = run_in_database(
        ctx, lambda s: describe(session=s, adapter=lifecycle.rollback(session=s, name=name), with_versions=False)
    )
    typer.echo(f"{name} -> v{view.active_version}")


@app.command()
def canary(
    ctx: typer.Context,
    name: str,
    version: int,
    weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of traffic, 0 ends the canary.")] = 0.1,
) -> None:
    """Split the alias's traffic with a version (sticky per OpenAI `user`)."""
    run_in_database(ctx, lambda s: lifecycle.set_canary(session=s, name=name, version=version, weight=weight))
    typer.echo(f"{name}: canary v{version} at {weight:.0%}")


@app.command()
def retire(ctx: typer.Context, name: str, version: int) -> None:
    """Retire a version that is not active."""
    run_in_database(ctx, lambda s: lifecycle.retire(session=s, name=name, version=version))
    typer.echo(f"{name}@{version} retired")


@app.command()
def reject(
    ctx: typer.Context,
    name: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rejected by an operator",
) -> None:
    """Reject a version that is not active: it is never routed or promoted again."""
    run_in_database(ctx, lambda s: lifecycle.reject(session=s, name=name, version=version, reason=reason))
    typer.echo(f"{name}@{version} rejected")
