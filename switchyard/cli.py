"""The ``switchyard`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gateway.auth import crud
from gateway.auth.models import ApiKeyCreate, KeyScope
from switchyard.bootstrap import prepare
from switchyard.cli_adapters import app as adapters_app
from switchyard.cli_drift import app as drift_app
from switchyard.cli_jobs import app as jobs_app
from switchyard.cli_jobs import policy, tune
from switchyard.cli_settings import load_settings, settings_of
from switchyard.config import Settings
from switchyard.schema import open_database

app = typer.Typer(
    help="Switchyard: many LoRA adapters on one vLLM engine.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(keys_app, name="keys")
app.add_typer(adapters_app, name="adapters")
app.add_typer(jobs_app, name="jobs")
app.add_typer(drift_app, name="drift")
app.command()(tune)
adapters_app.command()(policy)  # `switchyard adapters policy NAME`: beside the other adapter commands
app.callback()(load_settings)


def _banner(host: str, port: int, settings: Settings, model_name: str, adapters: tuple[str, ...]) -> str:
    key_hint = f"$(cat {settings.admin_key_file.resolve()})" if settings.admin_key is None else "$SWITCHYARD_ADMIN_KEY"
    example_model = adapters[0] if adapters else model_name
    body = json.dumps(
        {"model": example_model, "messages": [{"role": "user", "content": "Where is car 4412?"}], "max_tokens": 32}
    )
    where = settings.admin_key_file.resolve() if settings.admin_key is None else "SWITCHYARD_ADMIN_KEY"
    return (
        f"\nSwitchyard is starting on http://{host}:{port} (the engine needs about half a minute; "
        f"GET /ready says when).\n"
        f"  base model : {model_name}\n"
        f"  adapters   : {', '.join(adapters) or '(none registered yet)'}\n"
        f"  admin key  : {where}\n\n"
        f"Try it:\n"
        f"  curl -s http://{host}:{port}/v1/chat/completions \\\n"
        f"    -H \"Authorization: Bearer {key_hint}\" -H 'Content-Type: application/json' \\\n"
        f"    -d '{body}'\n"
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: SWITCHYARD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: SWITCHYARD_PORT).")] = None,
) -> None:
    """Prepare the data folder (demo model on first run) and serve the gateway."""
    # Imported here, not at the top: the app loads vLLM and torch, which the other commands
    # (keys, adapters, openapi) never need and should not wait for.
    import uvicorn

    from gateway.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_of(ctx)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update={"server": settings.server.model_copy(update=overrides)})
    prepared = prepare(settings)
    server = settings.server
    typer.echo(_banner(server.host, server.port, settings, settings.served_model_name, prepared.demo_adapters))
    # One worker: the engine, the scheduler and the traffic-log spool live in this process.
    uvicorn.run(
        create_app(settings),
        host=server.host,
        port=server.port,
        workers=1,
        log_level="info",
        timeout_graceful_shutdown=30,
    )


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant the key acts for.")] = None,
    allow: Annotated[
        str, typer.Option(help="Comma-separated adapters the key may use, or '*' for all its tenant's.")
    ] = "",
    scope: Annotated[list[KeyScope] | None, typer.Option(help="Extra rights: evaluate, review, fine_tune.")] = None,
    log_content: Annotated[bool, typer.Option(help="Log message content for this key's requests.")] = True,
) -> None:
    """Create a key and print it (it is shown only once). By default it may call the base model only."""
    allowed = [a.strip() for a in allow.split(",") if a.strip()]
    with open_database(settings_of(ctx).resolved_database_url) as session:
        row, secret = crud.create_key(
            session=session,
            key_in=ApiKeyCreate(
                name=name, tenant=tenant, allowed_adapters=allowed, scopes=scope or [], log_content=log_content
            ),
        )
    typer.echo(f"id={row.id} name={row.name} allowed={','.join(row.allowed_adapters) or '(base model only)'}")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """List keys (never their secrets)."""
    with open_database(settings_of(ctx).resolved_database_url) as session:
        rows, _ = crud.list_keys(session=session, limit=10_000)
    for row in rows:
        state = "revoked" if row.revoked_at else "active"
        typer.echo(
            f"{row.id}\t{row.key_prefix}…\t{row.name}\t{row.tenant or '-'}\t{','.join(row.allowed_adapters) or '-'}"
            f"\t{','.join(row.scopes) or '-'}\t{state}"
        )


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[int, typer.Argument(help="Id of the key to revoke.")]) -> None:
    """Revoke a key; requests with it are refused from then on."""
    with open_database(settings_of(ctx).resolved_database_url) as session:
        row = crud.revoke_key(session=session, key_id=key_id)
    if row is None:
        typer.echo(f"no key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the contract.")] = Path("openapi.yaml"),
    check: Annotated[bool, typer.Option(help="Fail if the file differs from the app's schema.")] = False,
) -> None:
    """Write (or check) the committed OpenAPI contract."""
    from gateway.openapi import render_openapi  # loads the app, and so vLLM: only this command needs it

    rendered = render_openapi()
    if check:
        if not output.exists() or output.read_text() != rendered:
            typer.echo(f"{output} is out of date; run `switchyard openapi`", err=True)
            raise typer.Exit(1)
        return
    output.write_text(rendered)
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
